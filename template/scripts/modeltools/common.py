"""Small pieces every step uses: errors, atomic writes, hashing, URL redaction."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import urllib.parse
from pathlib import Path

CHUNK = 1 << 20


class UserError(Exception):
    """A failure the user can fix; the command line prints it without a traceback."""


def redact(url: str) -> str:
    """Hide the user-info part of a URL (tokens, licence keys) before it is printed."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"****@{host}"))


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def write_if_changed(path: Path, text: str) -> bool:
    """Write text atomically; leave the file (and its mtime) alone when it already holds it."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)
    return True


def write_private(path: Path, text: str) -> None:
    """Create a file only its owner can read (mode 600 from the start, not chmod-ed later)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: en_core_web_sm and en-core-web-sm are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


class HashCache:
    """sha256 of files, recomputed only when a file's size or mtime changes.

    Models weigh hundreds of MB and make runs these steps on every install;
    hashing every wheel each time would make a no-op install slow.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = self.entries.get(key)
        if entry and entry[:2] == stamp:
            return entry[2]
        digest = sha256_of(file)
        self.entries[key] = [*stamp, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if not self.dirty:
            return
        live = {key: value for key, value in self.entries.items() if Path(key).exists()}
        try:
            write_if_changed(self.path, json.dumps(live, indent=0, sort_keys=True) + "\n")
        except OSError:
            pass  # a read-only build/ (an image build's bind mount) only costs re-hashing
        self.dirty = False

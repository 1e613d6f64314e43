"""pip-compile's output: read it, re-pin the models to their build/ files, check it, diff it."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from modeltools.common import canonical_name
from modeltools.project import included_files

# Bump when the post-processing changes, so that older locks are compiled again.
LOCK_FORMAT = "1"
DIGEST_PREFIX = "# make lock inputs: sha256:"
SOURCE_OPTION_RE = re.compile(r"\s*(-i|-f|--index-url|--extra-index-url|--find-links|--trusted-host)\b")


@dataclass
class LockEntry:
    """One requirement of a lock: its line, its hashes and its '# via' sources."""

    requirement: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.requirement)
        return canonical_name(match.group(0) if match else self.requirement)

    @property
    def version(self) -> str:
        match = re.search(r"===?\s*([^\s;,]+)", self.requirement)
        return match.group(1) if match else ""

    def render(self) -> str:
        items = [f"--hash={h}" for h in self.hashes] + self.options
        lines = [self.requirement + (" \\" if items else "")]
        lines += [f"    {item}" + (" \\" if i < len(items) - 1 else "") for i, item in enumerate(items)]
        if len(self.via) == 1:
            lines.append(f"    # via {self.via[0]}")
        elif self.via:
            lines += ["    # via"] + [f"    #   {source}" for source in self.via]
        return "\n".join(lines) + "\n"


def parse_lock(text: str) -> list[str | LockEntry]:
    """The lock as LockEntry items and the comment or blank lines between them, in order."""
    items: list[str | LockEntry] = []
    entry: LockEntry | None = None
    in_via = False
    for line in text.splitlines():
        if line.startswith((" ", "\t")) and entry is not None:
            body = line.strip().rstrip("\\").strip()
            if body.startswith("--hash="):
                entry.hashes.append(body[len("--hash=") :])
            elif body == "# via":
                in_via = True
            elif body.startswith("# via "):
                entry.via.append(body[len("# via ") :])
            elif body.startswith("#") and in_via:
                entry.via.append(body.lstrip("#").strip())
            elif body:
                entry.options.append(body)
            continue
        in_via = False
        if line and not line.startswith(("#", "-", " ", "\t")):
            entry = LockEntry(line.rstrip("\\").strip())
            items.append(entry)
        else:
            entry = None
            items.append(line + "\n")
    return items


def render_lock(items: Iterable[str | LockEntry]) -> str:
    return "".join(item if isinstance(item, str) else item.render() for item in items)


def lock_entries(text: str) -> list[LockEntry]:
    return [item for item in parse_lock(text) if isinstance(item, LockEntry)]


def locked_versions(lock: Path) -> dict[str, str]:
    return {e.name: e.version for e in lock_entries(lock.read_text())} if lock.exists() else {}


def lock_problems(text: str) -> list[str]:
    """What would make a lock unsafe to commit or to install by hash."""
    problems = []
    for line in text.splitlines():
        if SOURCE_OPTION_RE.match(line):
            problems.append(f"it names a package source ({line.split()[0]} ...)")
        if "file://" in line or re.search(r"://[^/\s]*@", line):
            problems.append("it holds a local path or a URL with credentials")
    for entry in lock_entries(text):
        if not entry.hashes:
            problems.append(f"{entry.requirement} has no --hash")
        if "==" not in entry.requirement or "@" in entry.requirement:
            problems.append(f"{entry.requirement} is not pinned with ==")
    return problems


def repin_models(text: str, versions: dict[str, str], hashes: dict[str, str], constraints: str) -> str:
    """pip-compile's 'name @ file://…/build/…' -> 'name==version' with the build/ file's hash only."""
    items = parse_lock(text)
    for item in items:
        if isinstance(item, str) or item.name not in versions:
            continue
        item.requirement = f"{item.name}=={versions[item.name]}"
        item.hashes = [f"sha256:{hashes[item.name]}"]
        item.via = [source for source in item.via if constraints not in source]
    return render_lock(items)


def stamp_digest(text: str, digest: str) -> str:
    """Record the inputs' digest right under pip-compile's header comment."""
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(DIGEST_PREFIX)]
    header_end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    lines.insert(header_end, f"{DIGEST_PREFIX}{digest}\n")
    return "".join(lines)


def recorded_digest(lock: Path) -> str | None:
    if not lock.exists():
        return None
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX) :].strip()
    return None


def inputs_digest(requirements: Path, model_hashes: dict[str, str]) -> str:
    """What the lock depends on: the requirement files, the model wheels, the Python series."""
    digest = hashlib.sha256(f"format {LOCK_FORMAT} python {sys.version_info[:2]}\n".encode())
    for path in included_files(requirements):
        digest.update(f"{path.name}\n".encode() + path.read_bytes())
    for name in sorted(model_hashes):
        digest.update(f"{name} {model_hashes[name]}\n".encode())
    return digest.hexdigest()


def describe_changes(old: str, new: str) -> list[str]:
    """'name: old -> new' for every package whose pinned version moved, appeared or left."""
    before = {e.name: e.version for e in lock_entries(old)}
    after = {e.name: e.version for e in lock_entries(new)}
    return [
        f"  {name}: {before.get(name, '(new)')} -> {after.get(name, '(removed)')}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]

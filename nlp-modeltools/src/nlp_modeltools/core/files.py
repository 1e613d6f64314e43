"""File operations, each written once: atomic writes (umask-true modes), link-or-copy, sha256 with its cache, locks.

Locks are `filelock`'s, so macOS and Windows get what Linux gets: one make at
a time per project, one process at a time per download and per model cache.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import filelock

from nlp_modeltools.core.errors import UserError

CHUNK = 1 << 20
# 1980-01-01, the earliest time a zip file holds: every file time of what the engine builds (wheels, bundles, image
# layers), so that the same inputs give the same bytes (reproducible-builds.org's SOURCE_DATE_EPOCH).
ZIP_EPOCH = 315532800


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def replace_atomic(path: Path, write: callable, mode: int | None = None) -> None:  # type: ignore[valid-type]
    """write(temporary) next to path, then rename it onto path: a reader sees the old file or the new one.

    The file gets `mode`, else what the umask gives (0644 usually), as git and a user expect.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, mode if mode is not None else 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: Path, data: str | bytes, private: bool = False) -> None:
    """Write text or bytes atomically; private files (a build secret) are 0600."""
    content = data.encode() if isinstance(data, str) else data
    replace_atomic(path, lambda temporary: temporary.write_bytes(content), 0o600 if private else None)


def read_text(path: Path) -> str | None:
    """A small state file's text, or None when it is not there (or cannot be read)."""
    try:
        return path.read_text()
    except OSError:
        return None


def read_json(path: Path) -> dict:
    """A JSON object file's content; {} when it is missing, unreadable or not an object (a state file to redo)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_if_changed(path: Path, text: str) -> bool:
    """Write text atomically unless the file already holds it (its mtime then stays)."""
    if path.is_file() and path.read_text() == text:
        return False
    write_atomic(path, text)
    return True


def link_or_copy(source: Path, target: Path, mode: int | None = None) -> None:
    """target becomes source's bytes, hard-linked (copied across file systems), never half-written."""

    def place(temporary: Path) -> None:
        temporary.unlink()
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)

    replace_atomic(target, place, mode if mode is not None else source.stat().st_mode & 0o777)


def touch(path: Path) -> None:
    """Mark a make target as up to date (its content, if any, is left alone)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def mark_fresh(target: Path, sources: Iterable[Path]) -> None:
    """Touch a make target when one of its sources is newer, as make would; else leave what follows it fresh."""
    mtime = target.stat().st_mtime_ns if target.exists() else -1
    if any(source.exists() and source.stat().st_mtime_ns > mtime for source in sources):
        touch(target)


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """sha256 of files, recomputed whenever the file could have changed.

    Models weigh hundreds of MB, so hashes are remembered in a JSON file; the
    key holds the inode, size, mtime and ctime, and ctime cannot be set back by
    a user, so a same-size edit that restores the old mtime is still noticed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, list] = read_json(path)
        self.dirty = False

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        stamp = [stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
        key = str(file.resolve())
        entry = self.entries.get(key)
        if isinstance(entry, list) and entry[:-1] == stamp:
            return entry[-1]
        digest = sha256_of(file)
        self.entries[key] = [*stamp, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if not self.dirty:
            return
        live = {key: value for key, value in self.entries.items() if Path(key).exists()}
        with contextlib.suppress(OSError):  # a read-only directory only costs hashing again
            write_atomic(self.path, json.dumps(live, indent=0, sort_keys=True) + "\n")
        self.dirty = False


@contextlib.contextmanager
def locked(path: Path, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on path (a file lock: processes and threads wait for each other)."""
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if waiting:
            print(waiting, file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def is_locked(path: Path) -> bool:
    """Whether another process holds the lock on path right now."""
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return True
    lock.release()
    return False


@contextlib.contextmanager
def project_lock(build: Path) -> Iterator[None]:
    """One make at a time writes build/, the lock and .venv: a second one waits, then finds nothing to do."""
    writable_dir(build)
    with locked(build / ".lock", "waiting for another make in this project to finish ..."):
        yield


def writable_dir(directory: Path, setting: str | None = None) -> None:
    """Create a directory or say, in one line, why it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-").close()
    except OSError as error:
        raise UserError(describe_os_error(error, directory, setting)) from None


def describe_os_error(error: OSError, where: Path, setting: str | None = None) -> str:
    """A local file-system failure, named for what it is, with what to do (setting: a variable that moves it)."""
    elsewhere = f", or set {setting} to a directory you can write" if setting else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full writing {where}: free space there (make clean removes build/wheels){elsewhere}"
    if error.errno == errno.EROFS:
        return f"{where} is on a read-only file system: run make from a writable copy{elsewhere}"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"{where} is not writable (permission denied): fix its permissions{elsewhere}"
    return f"cannot write in {where} ({error.strerror or error}): check that the path can be created{elsewhere}"

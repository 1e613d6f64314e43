"""Files: atomic writes that keep git's view of modes, a hash cache that cannot be fooled, one lock per project."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from modeltools.errors import UserError

CHUNK = 1 << 20


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomic(path: Path, data: str | bytes, private: bool = False) -> None:
    """Write through a temporary file and a rename: a reader sees the old file or the new one.

    Files users commit get the mode the umask gives (0644 usually); only
    private files (a build secret) are 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o600 if private else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_if_changed(path: Path, text: str) -> bool:
    """Write text atomically unless the file already holds it (its mtime then stays)."""
    if path.is_file() and path.read_text() == text:
        return False
    write_atomic(path, text)
    return True


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
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """sha256 of files, recomputed whenever the file could have changed.

    Models weigh hundreds of MB, so hashes are remembered; the key holds the
    inode, size, mtime and ctime, and ctime cannot be set back by a user, so a
    same-size edit that restores the old mtime is still noticed.
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
        with contextlib.suppress(OSError):  # a read-only build/ only costs hashing again
            write_atomic(self.path, json.dumps(live, indent=0, sort_keys=True) + "\n")
        self.dirty = False


@contextlib.contextmanager
def project_lock(build: Path) -> Iterator[None]:
    """One make at a time writes build/, the lock and .venv: a second one waits, then finds nothing to do."""
    writable_dir(build)
    with (build / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for another make in this project to finish ...", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def writable_dir(directory: Path) -> None:
    """Create a directory or say, in one line, why it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-")
        probe.close()
    except OSError as error:
        raise UserError(describe_os_error(error, directory)) from None


def describe_os_error(error: OSError, where: Path) -> str:
    """A local file-system failure, named for what it is, with what to do."""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device holding {where}: free some space (make clean removes build/wheels)"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{where} is not writable ({error.strerror}): make it writable, or run make from a writable copy"
    return f"cannot write {where}: {error.strerror or error}"

"""core/files.py: atomic writes, freshness for make, the hash cache, and the project lock (filelock, for real)."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import (
    HashCache,
    describe_os_error,
    is_locked,
    link_or_copy,
    mark_fresh,
    project_lock,
    read_json,
    replace_atomic,
    sha256_of,
    writable_dir,
    write_atomic,
    write_if_changed,
)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "requirements.txt"
    target.write_text("old\n")

    def half_then_fail(temporary: Path) -> None:
        temporary.write_text("half a lo")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_atomic(target, half_then_fail)
    assert target.read_text() == "old\n" and names(tmp_path) == ["requirements.txt"]


def test_committed_files_follow_the_umask_and_private_ones_do_not(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "requirements.txt", "x\n")
        write_atomic(tmp_path / "secret", "x\n", private=True)
        os.umask(0o002)
        write_atomic(tmp_path / "group-writable", b"x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "requirements.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "group-writable").stat().st_mode) == 0o664
    assert names(tmp_path) == ["group-writable", "requirements.txt", "secret"], "no temporary file left"


def test_write_if_changed_leaves_an_unchanged_file_and_its_mtime(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "requirements-model.in"
    assert write_if_changed(path, "a==1\n") is True
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_if_changed(path, "a==1\n") is False and path.stat().st_mtime_ns == 1_000_000_000
    assert write_if_changed(path, "a==2\n") is True and path.read_text() == "a==2\n"


def test_mark_fresh_touches_the_target_only_when_a_source_is_newer(tmp_path: Path) -> None:
    source, target = tmp_path / "requirements-model.in.url", tmp_path / "requirements-model.in"
    source.write_text("x\n")
    target.write_text("kept\n")
    os.utime(source, ns=(10**18, 10**18))
    os.utime(target, ns=(2 * 10**18, 2 * 10**18))
    mark_fresh(target, [source, tmp_path / "missing"])
    assert target.stat().st_mtime_ns == 2 * 10**18, "older sources leave it alone"
    os.utime(source, ns=(3 * 10**18, 3 * 10**18))
    mark_fresh(target, [source])
    assert target.stat().st_mtime_ns > 10**18 and target.read_text() == "kept\n"
    created = tmp_path / "build" / "models.json"
    mark_fresh(created, [source])
    assert created.read_text() == "", "a missing target is made, as make would want it"


def test_link_or_copy_hard_links_with_the_source_s_mode(tmp_path: Path) -> None:
    source = tmp_path / "entry"
    source.write_bytes(b"wheel")
    source.chmod(0o444)
    link_or_copy(source, tmp_path / "build" / "m.whl")
    placed = tmp_path / "build" / "m.whl"
    assert placed.stat().st_ino == source.stat().st_ino and stat.S_IMODE(placed.stat().st_mode) == 0o444
    assert names(placed.parent) == ["m.whl"]


def test_the_hash_cache_sees_a_same_size_edit_with_the_old_mtime(tmp_path: Path) -> None:
    path = tmp_path / "model.whl"
    path.write_bytes(b"A" * 1000)
    cache = HashCache(tmp_path / "cache.json")
    first = cache.sha256(path)
    stamp = path.stat()
    time.sleep(0.01)
    with path.open("r+b") as handle:
        handle.write(b"B")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size == stamp.st_size and path.stat().st_mtime_ns == stamp.st_mtime_ns
    assert cache.sha256(path) != first


def test_the_hash_cache_trusts_its_record_while_the_file_s_stamp_is_unchanged(tmp_path: Path) -> None:
    path, cache_file = tmp_path / "model.whl", tmp_path / "cache.json"
    path.write_bytes(b"model bytes")
    cache = HashCache(cache_file)
    assert cache.sha256(path) == sha256_of(path)
    cache.save()
    record = json.loads(cache_file.read_text())
    record[str(path.resolve())][-1] = "f" * 64  # what a cache says is believed, as long as the file looks the same
    cache_file.write_text(json.dumps(record))
    assert HashCache(cache_file).sha256(path) == "f" * 64
    path.write_bytes(b"other bytes, longer")
    assert HashCache(cache_file).sha256(path) == sha256_of(path)


def test_the_hash_cache_saves_only_when_it_learned_something_and_forgets_deleted_files(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache.json"
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    kept.write_bytes(b"1")
    gone.write_bytes(b"2")
    cache = HashCache(cache_file)
    cache.save()
    assert not cache_file.exists(), "nothing learned, nothing written"
    cache.sha256(kept)
    cache.sha256(gone)
    gone.unlink()
    cache.save()
    assert list(json.loads(cache_file.read_text())) == [str(kept.resolve())]


def test_read_json_gives_an_empty_object_for_what_is_not_one(tmp_path: Path) -> None:
    for text in ("[1, 2]", "not json", '"text"'):
        (tmp_path / "state.json").write_text(text)
        assert read_json(tmp_path / "state.json") == {}
    assert read_json(tmp_path / "missing.json") == {}


HOLDER = """
import sys, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_make_waits_for_the_first_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build = tmp_path / "build"
    build.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(build / ".lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    acquired = threading.Event()

    def second_make() -> None:
        with project_lock(build):
            acquired.set()

    second = threading.Thread(target=second_make)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert is_locked(build / ".lock")
        second.start()
        said, deadline = "", time.monotonic() + 10
        while "waiting" not in said and time.monotonic() < deadline:
            said += capsys.readouterr().err
            time.sleep(0.02)
        assert said == "waiting for another make in this project to finish ...\n"
        time.sleep(0.1)
        assert not acquired.is_set(), "it waits while the first one holds the lock"
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
        second.join(timeout=10)
    finally:
        holder.kill()
        holder.wait()
    assert acquired.is_set() and not is_locked(build / ".lock")


def test_the_project_lock_is_taken_at_once_when_free(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with project_lock(tmp_path / "new" / "build"):
        assert is_locked(tmp_path / "new" / "build" / ".lock")
    assert capsys.readouterr().err == ""


def test_a_directory_that_cannot_be_made_is_named_with_the_setting_that_moves_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError) as refused:
        writable_dir(tmp_path / "file" / "cache", "NLP_MODELS_CACHE")
    assert str(refused.value) == (
        f"cannot write in {tmp_path / 'file' / 'cache'} (Not a directory): check that the path can be created, "
        "or set NLP_MODELS_CACHE to a directory you can write"
    )


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (errno.ENOSPC, "disk full writing /p: free space there (make clean removes build/wheels)"),
        (errno.EROFS, "/p is on a read-only file system: run make from a writable copy"),
        (errno.EACCES, "/p is not writable (permission denied): fix its permissions"),
    ],
)
def test_disk_failures_are_named_for_what_they_are(number: int, message: str) -> None:
    assert describe_os_error(OSError(number, os.strerror(number)), Path("/p")) == message

"""models/store.py: the machine's model cache and its downloads, against real loopback servers.

Every test serves real bytes from a loopback server (conftest.py's `served`) and
reads its request log; disk faults are real too (a tiny tmpfs, a read-only bind
mount, in a private mount namespace). HTTP is requests', for real.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pty
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import pytest

import nlp_modeltools
from nlp_modeltools.core import http
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.http import Session
from nlp_modeltools.models import store as store_module
from nlp_modeltools.models.store import Fetched, ModelStore, default_cache_dir
from nlp_modeltools.models.wheels import read_metadata

PAYLOAD = 300_000  # bytes of incompressible padding: big enough to cut, resume and report progress
CUT = 100_000
SRC = Path(nlp_modeltools.__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, make_wheel) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("wheels")
    return {
        "big": make_wheel(directory / "a", "tiny_store_model", "1.0.0", payload=PAYLOAD, seed=1),
        "other": make_wheel(directory / "b", "tiny_store_model", "1.0.0", payload=PAYLOAD, seed=2),  # other bytes
        "small": make_wheel(directory / "c", "small_store_model", "1.0.0"),
    }


def add_download(served, wheel: Path) -> str:
    """Serve a wheel under GitHub's release layout (download/<name>-<version>/<file>); returns its URL."""
    name, version = wheel.name.split("-")[:2]
    return served.add_file(f"/download/{name}-{version}/{wheel.name}", wheel)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "cache")


@pytest.fixture
def session() -> Session:
    """A download session with no credentials configured (~/.netrc aside, as in pip)."""
    return Session({})


@pytest.fixture
def url(served, wheels: dict[str, Path]) -> str:
    """Where the loopback server serves the big wheel."""
    return add_download(served, wheels["big"])


def interrupt(store: ModelStore, session: Session, served, url: str, **fault: object) -> None:
    """A download cut after CUT bytes, not retried: it leaves a resumable partial."""
    served.fault(url, cut_after=CUT, **fault)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "ATTEMPTS", 1)
        with pytest.raises(UserError, match=r"connection (broke|ended) after .* run the command again: it resumes"):
            store.fetch(session, url)


def downloads(served, mark: int = 0) -> list:
    return [r for r in served.since(mark) if r.path.startswith("/download/")]


def partial_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.part*")) if directory.exists() else []


# ---- the cache


def test_fetch_stores_a_verified_read_only_entry(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    fetched = store.fetch(session, url, sha256=sha256(wheels["big"]))
    assert fetched.path == store.root / "sha256" / sha256(wheels["big"])
    assert fetched.path.read_bytes() == wheels["big"].read_bytes()
    assert fetched.downloaded == wheels["big"].stat().st_size
    assert fetched.path.stat().st_mode & 0o777 == 0o444
    assert "127.0.0.1" not in (store.root / "urls.json").read_text(), "no URL (so no credential) on disk"
    assert partial_files(store.root / "partial") == []


def test_cache_hit_makes_no_request(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    store.fetch(session, url)
    mark = served.mark()
    by_hash = ModelStore(store.root).fetch(session, url, sha256=sha256(wheels["big"]))
    by_url = ModelStore(store.root).fetch(session, url)  # the URL's remembered hash
    assert (by_hash.downloaded, by_url.downloaded) == (0, 0) and by_hash.path == by_url.path
    assert served.since(mark) == []


def test_corrupted_entry_is_detected_and_fetched_again(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    digest = store.fetch(session, url).sha256
    entry = store.get(digest)
    assert entry is not None
    before = entry.stat()
    entry.chmod(0o644)
    with entry.open("r+b") as stream:  # same size, one byte flipped, old mtime put back
        stream.seek(CUT)
        stream.write(bytes([stream.read(1)[0] ^ 0xFF]))
    os.utime(entry, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert store.get(digest) is None
    assert not entry.exists(), "a corrupted entry is deleted"
    mark = served.mark()
    assert store.fetch(session, url, sha256=digest).downloaded == wheels["big"].stat().st_size
    assert len(downloads(served, mark)) == 1
    assert sha256(store.root / "sha256" / digest) == digest


def test_concurrent_fetches_download_once(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    served.fault(url, rate=1_000_000)  # slow enough that the fetches overlap
    results: list[Fetched] = []
    threads = [threading.Thread(target=lambda: results.append(store.fetch(Session({}), url))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(downloads(served)) == 1
    assert sorted(r.downloaded for r in results) == [0, 0, 0, wheels["big"].stat().st_size]
    assert {r.sha256 for r in results} == {sha256(wheels["big"])}


# ---- resumable downloads


def test_a_cut_connection_is_resumed_with_range(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    served.fault(url, cut_after=CUT)
    fetched = store.fetch(session, url, sha256=sha256(wheels["big"]))
    first, second = downloads(served)
    assert (first.range, first.sent) == (None, CUT)
    assert (second.range, second.status) == (f"bytes={CUT}-", 206)
    assert fetched.downloaded == wheels["big"].stat().st_size, "no byte fetched twice"
    assert sha256(fetched.path) == sha256(wheels["big"])


def test_an_interrupted_download_resumes_in_the_next_run(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    interrupt(store, session, served, url)
    part = next((store.root / "partial").glob("*.part"))
    assert part.stat().st_size == CUT
    mark = served.mark()
    fetched = store.fetch(session, url, sha256=sha256(wheels["big"]))
    assert [r.range for r in downloads(served, mark)] == [f"bytes={CUT}-"]
    assert fetched.downloaded == wheels["big"].stat().st_size - CUT
    assert partial_files(store.root / "partial") == []


def test_a_server_without_range_support_restarts_cleanly(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    served.fault(url, cut_after=CUT, ranges=False)
    fetched = store.fetch(session, url, sha256=sha256(wheels["big"]))
    _, second = downloads(served)
    assert second.range == f"bytes={CUT}-" and second.status == 200
    assert second.sent == wheels["big"].stat().st_size
    assert sha256(fetched.path) == sha256(wheels["big"])


def test_a_changed_file_restarts_instead_of_resuming(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    interrupt(store, session, served, url)
    served.files = {key: wheels["other"] for key in served.files}  # republished: another ETag
    mark = served.mark()
    fetched = store.fetch(session, url)
    (request,) = downloads(served, mark)
    assert request.headers.get("If-Range") and request.status == 200
    assert fetched.sha256 == sha256(wheels["other"]), "old and new bytes are never spliced"


def test_a_refused_range_restarts(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    interrupt(store, session, served, url, etag='"same"')
    served.files = {key: wheels["small"] for key in served.files}  # shorter than the part, same ETag
    mark = served.mark()
    assert store.fetch(session, url).sha256 == sha256(wheels["small"])
    assert [r.status for r in downloads(served, mark)] == [416, 200]


def test_ctrl_c_leaves_only_the_resumable_part(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    served.fault(url, rate=25_000)  # slow enough that a loaded machine still interrupts it midway
    child = subprocess.Popen(
        [sys.executable, "-c", FETCH_SCRIPT, str(store.root), url],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    partial = store.root / "partial"
    deadline = time.monotonic() + 20
    while not any(p.stat().st_size > 20_000 for p in partial.glob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=20)
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr
    part, sidecar = partial_files(partial)
    assert sidecar == f"{part}.json" and part.endswith(".part")
    assert not (store.root / "sha256").exists() or not any((store.root / "sha256").iterdir())
    done = next(partial.glob("*.part")).stat().st_size
    served.faults.clear()
    mark = served.mark()
    assert store.fetch(session, url).sha256 == sha256(wheels["big"])
    assert [r.range for r in downloads(served, mark)] == [f"bytes={done}-"]


FETCH_SCRIPT = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(SRC)!r})
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.http import Session
from nlp_modeltools.models.store import ModelStore
try:
    ModelStore(Path(sys.argv[1])).fetch(Session({{}}), sys.argv[2])
except UserError as error:
    print(error, file=sys.stderr)
    sys.exit(1)
"""


# ---- refusals


def test_a_sha256_mismatch_is_refused_and_nothing_kept(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    wrong = "0" * 64
    with pytest.raises(UserError) as refused:
        store.fetch(session, url, sha256=wrong)
    message = str(refused.value)
    assert url in message and wrong in message and sha256(wheels["big"]) in message and "make upgrade" in message
    assert partial_files(store.root / "partial") == [] and store.info() == []


def test_a_refusing_check_deletes_the_partial(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    seen: list[str] = []

    def refuse(path: Path) -> None:
        seen.append(read_metadata(path).name)
        raise UserError("tiny_store_model is not the model the URL names")

    with pytest.raises(UserError, match="not the model the URL names"):
        store.fetch(session, url, check=refuse)
    assert seen == ["tiny_store_model"]
    assert partial_files(store.root / "partial") == [] and store.info() == []


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_an_html_page_is_not_a_wheel(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], content_type: str, url: str
) -> None:
    served.fault(url, body=b"<!DOCTYPE html><html><body>Sign in</body></html>", content_type=content_type)
    with pytest.raises(UserError, match=r"returned an HTML page, not a model .a login page.*credentials"):
        store.fetch(session, url)
    assert len(downloads(served)) == 1, "not retried"
    assert partial_files(store.root / "partial") == []


def test_404_asks_about_the_name_and_version(store: ModelStore, session: Session, served) -> None:
    url = f"{served.url}/download/xx_missing-1.0.0/xx_missing-1.0.0-py3-none-any.whl"
    with pytest.raises(UserError, match=r"HTTP 404 .* is the name and version right"):
        store.fetch(session, url)
    assert len(served.since(0)) == 1, "a 404 is not retried"


@pytest.mark.parametrize(("status", "retry_after"), [(503, "0"), (500, None), (429, "0")])
def test_server_errors_are_retried(
    store: ModelStore,
    session: Session,
    served,
    wheels: dict[str, Path],
    status: int,
    retry_after: str | None,
    url: str,
) -> None:
    served.fault(url, fail=2, fail_status=status, retry_after=retry_after)
    assert store.fetch(session, url).sha256 == sha256(wheels["big"])
    assert [r.status for r in downloads(served)] == [status, status, 200]


def test_a_server_that_keeps_failing_is_given_up(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    served.fault(url, fail=10)
    with pytest.raises(UserError, match=r"HTTP 503 .*: try again later"):
        store.fetch(session, url)
    assert len(downloads(served)) == 1 + http.RETRY.total, "urllib3's Retry: the first request and its retries"


def test_a_stalled_server_times_out(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    served.fault(url, delay=1.5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "TIMEOUT", 0.3)
        patch.setattr(http, "TIMEOUT", 0.3)
        with pytest.raises(UserError, match=r"did not answer within 0.3 s"):
            store.fetch(session, url)


def test_offline_uses_the_cache_only(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], url: str
) -> None:
    with pytest.raises(UserError, match="OFFLINE=1 forbids downloading it"):
        store.fetch(session, url, offline=True)
    assert served.since(0) == []
    store.fetch(session, url)
    assert store.fetch(session, url, offline=True).downloaded == 0


# ---- where the cache is


def test_default_cache_dir_follows_the_environment(tmp_path: Path) -> None:
    assert default_cache_dir({"NLP_MODELS_CACHE": str(tmp_path)}) == tmp_path
    assert default_cache_dir({"NLP_MODELS_CACHE": "", "XDG_CACHE_HOME": "/x"}) == Path("/x/nlp-template/models")
    assert default_cache_dir({}) == Path.home() / ".cache" / "nlp-template" / "models"


# ---- local faults, for real


def test_a_full_disk_is_named_and_not_retried(tmp_path: Path, served, url: str, run_with_mounts, mounts) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    result = run_with_mounts(
        [mounts["tiny_tmpfs"](cache, "64k")], [sys.executable, "-c", FETCH_SCRIPT, str(cache), url]
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"disk full writing {cache}/partial: free space")
    assert "NLP_MODELS_CACHE" in result.stderr and "Traceback" not in result.stderr
    assert len(downloads(served)) == 1, "a full disk is not a network error"


def test_a_read_only_cache_is_named(tmp_path: Path, served, url: str, run_with_mounts, mounts) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    result = run_with_mounts([mounts["read_only"](cache)], [sys.executable, "-c", FETCH_SCRIPT, str(cache), url])
    assert result.returncode == 1, result.stderr
    assert (
        f"{cache}/partial is on a read-only file system:" in result.stderr and "set NLP_MODELS_CACHE" in result.stderr
    )
    assert "Traceback" not in result.stderr and served.since(0) == []


# ---- link, info, prune


def test_link_hard_links_into_a_project(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], tmp_path: Path
) -> None:
    digest = store.fetch(session, add_download(served, wheels["big"])).sha256
    dest = store.link(digest, tmp_path / "proj" / "build" / wheels["big"].name)
    assert dest.stat().st_ino == (store.root / "sha256" / digest).stat().st_ino
    assert store.link(digest, dest) == dest, "linking again is harmless"
    assert [p.name for p in dest.parent.iterdir()] == [dest.name], "no temporary file left"


def other_file_system(than: Path) -> Path:
    """A writable directory on another file system than `than` (tmpfs, usually); skips only outside CI."""
    candidates = [Path("/dev/shm"), Path("/run"), Path(tempfile.gettempdir())]  # noqa: S108 (private dirs inside)
    for directory in candidates:
        if directory.is_dir() and os.access(directory, os.W_OK) and directory.stat().st_dev != than.stat().st_dev:
            return directory
    reason = f"none of {', '.join(map(str, candidates))} is another writable file system here"
    if os.environ.get("CI"):
        pytest.fail(f"CI=true, but {reason}: the copy across file systems cannot be tested")
    pytest.skip(reason)


def test_link_copies_across_file_systems(
    store: ModelStore, session: Session, wheels: dict[str, Path], url: str
) -> None:
    digest = store.fetch(session, url).sha256
    with tempfile.TemporaryDirectory(dir=other_file_system(store.root)) as directory:
        dest = store.link(digest, Path(directory) / wheels["big"].name)
        assert sha256(dest) == digest and dest.stat().st_dev != store.root.stat().st_dev


def test_a_partial_on_another_file_system_is_copied_into_the_store(
    store: ModelStore, session: Session, wheels: dict[str, Path], url: str
) -> None:
    with tempfile.TemporaryDirectory(dir=other_file_system(store.root.parent)) as directory:
        fetched = store.fetch(session, url, partial_dir=Path(directory))
        assert list(Path(directory).glob("*.part*")) == []
    assert sha256(fetched.path) == sha256(wheels["big"]) and fetched.path.stat().st_mode & 0o777 == 0o444
    assert [p.name for p in fetched.path.parent.iterdir()] == [fetched.sha256], "no temporary file left"


def test_info_and_prune(store: ModelStore, session: Session, served, wheels: dict[str, Path], tmp_path: Path) -> None:
    big = store.fetch(session, add_download(served, wheels["big"])).sha256
    small = store.fetch(session, add_download(served, wheels["small"])).sha256
    assert {(e.sha256, e.size) for e in store.info()} == {
        (big, wheels["big"].stat().st_size),
        (small, wheels["small"].stat().st_size),
    }
    stale = store.root / "partial" / f"{'f' * 64}.part"
    stale.write_bytes(b"x" * 1000)
    old = time.time() - 30 * 86400
    os.utime(stale, (old, old))
    os.utime(store.root / "used" / small, (old, old))
    assert store.prune(older_than_days=7) == wheels["small"].stat().st_size + 1000
    assert [e.sha256 for e in store.info()] == [big] and not stale.exists()
    store.link(big, tmp_path / "build" / "big.whl")
    assert store.prune(keep=set()) == 0, "bytes a project still links are not freed"
    assert store.info() == [] and store.sha256_for_url(add_download(served, wheels["big"])) is None


# ---- progress


def test_progress_without_a_terminal_is_one_line_per_file(
    store: ModelStore, session: Session, served, wheels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store.fetch(session, add_download(served, wheels["big"]))
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"Downloading {wheels['big'].name} (301") and f"kB) from {served.url}/download/" in line


def test_progress_on_a_terminal_is_a_bar_redrawn(store: ModelStore, served, url: str) -> None:
    served.fault(url, rate=400_000)  # about a second: several redraws
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    child = subprocess.Popen([sys.executable, "-c", FETCH_SCRIPT, str(store.root), url], stderr=terminal)
    os.close(terminal)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
        while chunk := os.read(controller, 4096):
            shown += chunk
    os.close(controller)
    assert child.wait(timeout=30) == 0
    redraws = [part for part in shown.decode().split("\r") if "B/s" in part]
    assert len(redraws) >= 2 and all("\n" not in part for part in redraws), shown
    assert "tiny_store_model-1.0.0" in redraws[-1] and "%|" in redraws[-1], "tqdm's bar: name, percent, rate"

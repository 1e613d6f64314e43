"""The machine's model cache and its downloads (nlp_modeltools/store.py), against real loopback servers.

Every test serves real bytes from the local mirror (tests/support/mirror.py) and
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
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from nlp_modeltools.core import http
from nlp_modeltools.core.errors import UserError, mask
from nlp_modeltools.core.http import Credential, Session, origin
from nlp_modeltools.models import store as store_module
from nlp_modeltools.models.inputs import GITHUB_RELEASES, mirror_url
from nlp_modeltools.models.store import Fetched, ModelStore, default_cache_dir
from nlp_modeltools.models.wheels import read_metadata
from tests.support.mirror import Mirror, MirrorServer, hostile_servers
from tests.support.project import REPO
from tests.support.sandbox import read_only, run_with_mounts, tiny_tmpfs
from tests.support.wheels import build_plain_wheel

PAYLOAD = 300_000  # bytes of incompressible padding: big enough to cut, resume and report progress
CUT = 100_000


def padded_wheel(directory: Path, name: str, version: str, seed: int) -> Path:
    """A real (pure-Python) wheel with PAYLOAD random bytes inside, so it is big and incompressible."""
    wheel = build_plain_wheel(name, version, directory)
    with zipfile.ZipFile(wheel, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{name}/payload.bin", hashlib.shake_256(bytes([seed])).digest(PAYLOAD))
    return wheel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("wheels")
    return {
        "big": padded_wheel(directory / "a", "tiny_store_model", "1.0.0", seed=1),
        "other": padded_wheel(directory / "b", "tiny_store_model", "1.0.0", seed=2),  # same name, other bytes
        "small": build_plain_wheel("small_store_model", "1.0.0", directory / "c"),
    }


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    """A fresh pair of loopback servers per test, so faults and logs never leak between tests."""
    with hostile_servers() as served:
        yield served


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "cache")


@pytest.fixture
def session() -> Session:
    """A download session with no credentials configured (~/.netrc aside, as in pip)."""
    return Session({})


@pytest.fixture
def url(mirror: Mirror, wheels: dict[str, Path]) -> str:
    """Where the mirror serves the big wheel."""
    return mirror.add_download(wheels["big"])


def interrupt(store: ModelStore, session: Session, mirror: Mirror, url: str, **fault: object) -> None:
    """A download cut after CUT bytes, not retried: it leaves a resumable partial."""
    mirror.fault(url, cut_after=CUT, **fault)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "ATTEMPTS", 1)
        with pytest.raises(UserError, match=r"connection (broke|ended) after .* run the command again: it resumes"):
            store.fetch(session, url)


def downloads(mirror: Mirror, mark: int = 0) -> list:
    return [r for r in mirror.since(mark) if "/download/" in r.path or "/cdn/" in r.path]


def partial_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.part*")) if directory.exists() else []


# ---- the cache


def test_fetch_stores_a_verified_read_only_entry(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    fetched = store.fetch(session, url, sha256=sha256(wheels["big"]))
    assert fetched.path == store.root / "sha256" / sha256(wheels["big"])
    assert fetched.path.read_bytes() == wheels["big"].read_bytes()
    assert fetched.downloaded == wheels["big"].stat().st_size
    assert fetched.path.stat().st_mode & 0o777 == 0o444
    assert "127.0.0.1" not in (store.root / "urls.json").read_text(), "no URL (so no credential) on disk"
    assert partial_files(store.root / "partial") == []


def test_cache_hit_makes_no_request(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    store.fetch(session, url)
    mark = mirror.mark()
    by_hash = ModelStore(store.root).fetch(session, url, sha256=sha256(wheels["big"]))
    by_url = ModelStore(store.root).fetch(session, url)  # the URL's remembered hash
    assert (by_hash.downloaded, by_url.downloaded) == (0, 0) and by_hash.path == by_url.path
    assert mirror.since(mark) == []


def test_corrupted_entry_is_detected_and_fetched_again(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
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
    mark = mirror.mark()
    assert store.fetch(session, url, sha256=digest).downloaded == wheels["big"].stat().st_size
    assert len(downloads(mirror, mark)) == 1
    assert sha256(store.root / "sha256" / digest) == digest


def test_concurrent_fetches_download_once(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    mirror.fault(url, rate=1_000_000)  # slow enough that the fetches overlap
    results: list[Fetched] = []
    threads = [threading.Thread(target=lambda: results.append(store.fetch(Session({}), url))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(downloads(mirror)) == 1
    assert sorted(r.downloaded for r in results) == [0, 0, 0, wheels["big"].stat().st_size]
    assert {r.sha256 for r in results} == {sha256(wheels["big"])}


# ---- resumable downloads


def test_a_cut_connection_is_resumed_with_range(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    mirror.fault(url, cut_after=CUT)
    fetched = store.fetch(session, url, sha256=sha256(wheels["big"]))
    first, second = downloads(mirror)
    assert (first.range, first.sent) == (None, CUT)
    assert (second.range, second.status) == (f"bytes={CUT}-", 206)
    assert fetched.downloaded == wheels["big"].stat().st_size, "no byte fetched twice"
    assert sha256(fetched.path) == sha256(wheels["big"])


def test_an_interrupted_download_resumes_in_the_next_run(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    interrupt(store, session, mirror, url)
    part = next((store.root / "partial").glob("*.part"))
    assert part.stat().st_size == CUT
    mark = mirror.mark()
    fetched = store.fetch(session, url, sha256=sha256(wheels["big"]))
    assert [r.range for r in downloads(mirror, mark)] == [f"bytes={CUT}-"]
    assert fetched.downloaded == wheels["big"].stat().st_size - CUT
    assert partial_files(store.root / "partial") == []


def test_a_server_without_range_support_restarts_cleanly(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    mirror.fault(url, cut_after=CUT, ranges=False)
    fetched = store.fetch(session, url, sha256=sha256(wheels["big"]))
    _, second = downloads(mirror)
    assert second.range == f"bytes={CUT}-" and second.status == 200
    assert second.sent == wheels["big"].stat().st_size
    assert sha256(fetched.path) == sha256(wheels["big"])


def test_a_changed_file_restarts_instead_of_resuming(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    interrupt(store, session, mirror, url)
    mirror.downloads = {key: wheels["other"] for key in mirror.downloads}  # republished: another ETag
    mark = mirror.mark()
    fetched = store.fetch(session, url)
    (request,) = downloads(mirror, mark)
    assert request.headers.get("If-Range") and request.status == 200
    assert fetched.sha256 == sha256(wheels["other"]), "old and new bytes are never spliced"


def test_a_refused_range_restarts(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    interrupt(store, session, mirror, url, etag='"same"')
    mirror.downloads = {key: wheels["small"] for key in mirror.downloads}  # shorter than the part, same ETag
    mark = mirror.mark()
    assert store.fetch(session, url).sha256 == sha256(wheels["small"])
    assert [r.status for r in downloads(mirror, mark)] == [416, 200]


def test_ctrl_c_leaves_only_the_resumable_part(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    mirror.fault(url, rate=100_000)
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
    mirror.faults.clear()
    mark = mirror.mark()
    assert store.fetch(session, url).sha256 == sha256(wheels["big"])
    assert [r.range for r in downloads(mirror, mark)] == [f"bytes={done}-"]


FETCH_SCRIPT = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(REPO / "nlp-modeltools" / "src")!r})
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
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    wrong = "0" * 64
    with pytest.raises(UserError) as refused:
        store.fetch(session, url, sha256=wrong)
    message = str(refused.value)
    assert url in message and wrong in message and sha256(wheels["big"]) in message and "make upgrade" in message
    assert partial_files(store.root / "partial") == [] and store.info() == []


def test_a_refusing_check_deletes_the_partial(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
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
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], content_type: str, url: str
) -> None:
    mirror.fault(url, body=b"<!DOCTYPE html><html><body>Sign in</body></html>", content_type=content_type)
    with pytest.raises(UserError, match=r"returned an HTML page, not a model .a login page.*credentials"):
        store.fetch(session, url)
    assert len(downloads(mirror)) == 1, "not retried"
    assert partial_files(store.root / "partial") == []


def test_wheel_metadata_refuses_what_is_not_a_wheel(tmp_path: Path) -> None:
    not_zip = tmp_path / "x-1.0-py3-none-any.whl"
    not_zip.write_text("<html></html>")
    with pytest.raises(UserError, match="is not a wheel"):
        read_metadata(not_zip)
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as archive:
        archive.writestr("x/__init__.py", "")
    with pytest.raises(UserError, match=r"holds 0 .*METADATA"):
        read_metadata(tmp_path / "empty.whl")


def test_404_asks_about_the_name_and_version(store: ModelStore, session: Session, mirror: Mirror) -> None:
    url = f"{mirror.download_base}/xx_missing-1.0.0/xx_missing-1.0.0-py3-none-any.whl"
    with pytest.raises(UserError, match=r"HTTP 404 .* is the name and version right"):
        store.fetch(session, url)
    assert len(mirror.since(0)) == 1, "a 404 is not retried"


@pytest.mark.parametrize(("status", "retry_after"), [(503, "0"), (500, None), (429, "0")])
def test_server_errors_are_retried(
    store: ModelStore,
    session: Session,
    mirror: Mirror,
    wheels: dict[str, Path],
    status: int,
    retry_after: str | None,
    url: str,
) -> None:
    mirror.fault(url, fail=2, fail_status=status, retry_after=retry_after)
    assert store.fetch(session, url).sha256 == sha256(wheels["big"])
    assert [r.status for r in downloads(mirror)] == [status, status, 200]


def test_a_server_that_keeps_failing_is_given_up(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    mirror.fault(url, fail=10)
    with pytest.raises(UserError, match=r"HTTP 503 .*: try again later"):
        store.fetch(session, url)
    assert len(downloads(mirror)) == 1 + http.RETRY.total, "urllib3's Retry: the first request and its retries"


def test_a_stalled_server_times_out(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    mirror.fault(url, delay=1.5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "TIMEOUT", 0.3)
        patch.setattr(http, "TIMEOUT", 0.3)
        with pytest.raises(UserError, match=r"did not answer within 0.3 s"):
            store.fetch(session, url)


def test_offline_uses_the_cache_only(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    with pytest.raises(UserError, match="OFFLINE=1 forbids downloading it"):
        store.fetch(session, url, offline=True)
    assert mirror.since(0) == []
    store.fetch(session, url)
    assert store.fetch(session, url, offline=True).downloaded == 0


# ---- credentials


def hub_session(mirror: Mirror, token: str | None) -> Session:
    """The session make models uses for a Hub at mirror.url: HF_TOKEN for it alone, and the advice for a 401."""
    hub = origin(mirror.url)
    credentials = {hub: Credential(f"Bearer {token}", "HF_TOKEN in .env")} if token else {}
    return Session(credentials, {hub: "set HF_TOKEN in .env to a token with access to this repository"})


def test_401_names_the_host_and_the_variable_never_the_token(
    store: ModelStore, mirror: Mirror, wheels: dict[str, Path]
) -> None:
    mirror.hub_token = "hf_right"
    url = mirror.add_hub_file("acme", "models", "main", wheels["big"])
    with pytest.raises(UserError, match=r"HTTP 401 from 127.0.0.1:\d+: set HF_TOKEN in .env"):
        store.fetch(hub_session(mirror, None), url)
    with pytest.raises(UserError, match=r"refused the credentials from HF_TOKEN in .env") as refused:
        store.fetch(hub_session(mirror, "hf_wrong_secret"), url)
    assert "hf_wrong_secret" not in str(refused.value)
    assert len(mirror.since(0)) == 2, "a 401 is not retried"


def test_a_hub_token_never_reaches_the_cdn(store: ModelStore, mirror: Mirror, wheels: dict[str, Path]) -> None:
    mirror.hub_token = "hf_secret"
    url = mirror.add_hub_file("acme", "models", "main", wheels["big"], "tiny_store_model-1.0.0-py3-none-any.whl")
    assert store.fetch(hub_session(mirror, "hf_secret"), url).sha256 == sha256(wheels["big"])
    (hub,) = mirror.requests_to(mirror.url)
    (cdn,) = mirror.requests_to(mirror.cdn_url)
    assert hub.authorization == "Bearer hf_secret" and hub.status == 302
    assert cdn.authorization is None and cdn.status == 200


def bearer(tokens: dict[str, str]) -> Session:
    return Session({origin(url): Credential(f"Bearer {token}", "a test token") for url, token in tokens.items()})


def test_basic_credentials_are_dropped_on_a_cross_origin_redirect(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path]
) -> None:
    target = mirror.add_download(wheels["big"]).replace(mirror.url, mirror.cdn_url)
    mirror.add_redirect("/start", target)
    netloc = mirror.url.split("//", 1)[1]
    store.fetch(session, f"http://team:s3cret@{netloc}/start")
    (start,) = mirror.requests_to(mirror.url)
    (other,) = mirror.requests_to(mirror.cdn_url)
    assert start.authorization and start.authorization.startswith("Basic ")
    assert other.authorization is None


def test_a_bearer_token_is_dropped_on_a_cross_origin_redirect(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path]
) -> None:
    target = mirror.add_download(wheels["big"]).replace(mirror.url, mirror.cdn_url)
    url = mirror.add_redirect("/start", target)
    store.fetch(bearer({mirror.url: "ghp_token"}), url)
    assert [r.authorization for r in mirror.requests_to(mirror.url)] == ["Bearer ghp_token"]
    assert [r.authorization for r in mirror.requests_to(mirror.cdn_url)] == [None]


def test_credentials_are_kept_on_a_same_origin_redirect(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path]
) -> None:
    url = mirror.add_redirect("/start", mirror.add_download(wheels["big"]))
    netloc = mirror.url.split("//", 1)[1]
    store.fetch(session, url.replace(netloc, f"team:s3cret@{netloc}"))
    first, second = mirror.since(0)
    assert first.authorization == second.authorization and first.authorization.startswith("Basic ")


def test_the_other_origin_gets_its_own_credentials(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path]
) -> None:
    target = mirror.add_download(wheels["big"]).replace(mirror.url, mirror.cdn_url)
    url = mirror.add_redirect("/start", target)
    store.fetch(bearer({mirror.url: "for-main", mirror.cdn_url: "for-cdn"}), url)
    assert [r.authorization for r in mirror.since(0)] == ["Bearer for-main", "Bearer for-cdn"]


def test_redirect_loops_and_chains_end_in_a_clear_error(store: ModelStore, session: Session, mirror: Mirror) -> None:
    mirror.add_redirect("/a", f"{mirror.url}/b")
    url = mirror.add_redirect("/b", f"{mirror.url}/a")
    with pytest.raises(UserError, match=r"redirects more than 10 times .a loop"):
        store.fetch(session, url)
    for number in range(12):
        mirror.add_redirect(f"/hop{number}", f"{mirror.url}/hop{number + 1}")
    with pytest.raises(UserError, match="redirects more than 10 times"):
        store.fetch(session, f"{mirror.url}/hop0")


def test_mask_hides_user_info_everywhere() -> None:
    text = "from http://user:p%40ss@host:8080/x and https://tok@other/y, not http://host/a@b"
    assert mask(text) == "from http://****@host:8080/x and https://****@other/y, not http://host/a@b"


def test_mirror_url_rewrites_github_release_downloads_only() -> None:
    github = GITHUB_RELEASES + "en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl"
    assert mirror_url(github, "http://m/models/") == "http://m/models/en_core_web_sm-3.8.0/" + github.rsplit("/")[-1]
    assert mirror_url(github, None) == github
    assert mirror_url("https://huggingface.co/a/b/resolve/main/x.whl", "http://m") == (
        "https://huggingface.co/a/b/resolve/main/x.whl"
    )


def test_default_cache_dir_follows_the_environment(tmp_path: Path) -> None:
    assert default_cache_dir({"NLP_MODELS_CACHE": str(tmp_path)}) == tmp_path
    assert default_cache_dir({"NLP_MODELS_CACHE": "", "XDG_CACHE_HOME": "/x"}) == Path("/x/nlp-template/models")
    assert default_cache_dir({}) == Path.home() / ".cache" / "nlp-template" / "models"


# ---- local faults, for real


def test_a_full_disk_is_named_and_not_retried(
    tmp_path: Path, mirror: Mirror, wheels: dict[str, Path], url: str
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    result = run_with_mounts([tiny_tmpfs(cache, "64k")], [sys.executable, "-c", FETCH_SCRIPT, str(cache), url])
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"disk full writing {cache}/partial: free space")
    assert "NLP_MODELS_CACHE" in result.stderr and "Traceback" not in result.stderr
    assert len(downloads(mirror)) == 1, "a full disk is not a network error"


def test_a_read_only_cache_is_named(tmp_path: Path, mirror: Mirror, wheels: dict[str, Path], url: str) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    result = run_with_mounts([read_only(cache)], [sys.executable, "-c", FETCH_SCRIPT, str(cache), url])
    assert result.returncode == 1, result.stderr
    assert (
        f"{cache}/partial is on a read-only file system:" in result.stderr and "set NLP_MODELS_CACHE" in result.stderr
    )
    assert "Traceback" not in result.stderr and mirror.since(0) == []


# ---- link, info, prune


def test_link_hard_links_into_a_project(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], tmp_path: Path
) -> None:
    digest = store.fetch(session, mirror.add_download(wheels["big"])).sha256
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


def test_info_and_prune(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], tmp_path: Path
) -> None:
    big = store.fetch(session, mirror.add_download(wheels["big"])).sha256
    small = store.fetch(session, mirror.add_download(wheels["small"])).sha256
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
    assert store.info() == [] and store.sha256_for_url(mirror.add_download(wheels["big"])) is None


# ---- progress


def test_progress_without_a_terminal_is_one_line_per_file(
    store: ModelStore, session: Session, mirror: Mirror, wheels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store.fetch(session, mirror.add_download(wheels["big"]))
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"Downloading {wheels['big'].name} (301") and f"kB) from {mirror.url}/download/" in line


def test_progress_on_a_terminal_is_a_bar_redrawn(store: ModelStore, mirror: Mirror, url: str) -> None:
    mirror.fault(url, rate=400_000)  # about a second: several redraws
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


def test_the_mirror_helpers_keep_their_old_interface(wheels: dict[str, Path]) -> None:
    """MirrorServer alone still serves plain downloads, whole, with status 200."""
    mirror = Mirror()
    with MirrorServer(mirror):
        url = mirror.add_download(wheels["small"])
        assert requests.get(url, timeout=30).content == wheels["small"].read_bytes()
    (request,) = mirror.since(0)
    assert (request.status, request.sent, request.range) == (200, wheels["small"].stat().st_size, None)

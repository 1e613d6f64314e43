"""Faults and hostile input against a rendered project: each ends in one line, nothing half-written.

Two makes at once, a refused download, a read-only or full build/, a model URL
whose server redirects elsewhere: the outcome is checked on disk, in the
mirror's request log and in what make printed. None of these needs a resolver.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import FAST
from tests.support.mirror import Mirror, hostile_servers
from tests.support.project import make, make_argv, make_env
from tests.support.sandbox import read_only, run_with_mounts, tiny_tmpfs

SM_WHEEL = "en_core_web_sm-3.8.0-py3-none-any.whl"


def test_two_installs_at_once_download_once_and_both_succeed(
    project: Path, mirror: Mirror, fresh_cache: dict, tmp_path: Path
) -> None:
    shutil.rmtree(project / "build")  # a fresh clone: everything is to be fetched
    mark = mirror.mark()
    env = {**FAST, **fresh_cache}
    runs = [subprocess.Popen(make_argv(project, "install"), env=make_env(env), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    downloads = [r for r in mirror.since(mark) if r.path.endswith(SM_WHEEL)]
    assert len(downloads) == 1, "the second make waited, then found the model there"
    assert "Traceback" not in "".join(outputs)
    assert (project / ".venv" / ".installed").is_file()


def test_a_download_that_is_another_package_is_refused_and_not_kept(
    project: Path, mirror: Mirror, wheels: dict
) -> None:
    impostor = "en_core_web_xl-3.8.0-py3-none-any.whl"
    key = f"en_core_web_xl-3.8.0/{impostor}"
    mirror.downloads[key] = wheels["md-3.8.0"]  # md's bytes under xl's name
    (project / "requirements-model.in.url").write_text(f"{mirror.download_base}/{key}\n")
    try:
        for _ in range(2):  # refused each time: nothing stays behind to be trusted later
            mark = mirror.mark()
            result = make(project, "models", env=FAST, check=False)
            assert result.returncode != 0
            assert "the file is en_core_web_md 3.8.0, not en-core-web-xl 3.8.0; nothing was kept" in result.stderr
            assert [r for r in mirror.since(mark) if r.path.endswith(impostor)], "asked again, not taken from build/"
            assert not list((project / "build").glob("en_core_web_xl*"))
            assert not list((project / "build").glob("*md*.whl"))
    finally:
        del mirror.downloads[key]


def test_a_read_only_build_is_named_not_a_traceback(project: Path) -> None:
    build = project / "build"
    command = make_argv(project, "models")
    result = run_with_mounts([read_only(build)], command, env=make_env(FAST))
    assert result.returncode != 0
    assert "build is on a read-only file system" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_full_disk_is_named_and_not_retried(project: Path, mirror: Mirror, fresh_cache: dict) -> None:
    (project / "build" / SM_WHEEL).unlink()
    cache = Path(fresh_cache["NLP_MODELS_CACHE"])
    cache.mkdir(parents=True)
    mark = mirror.mark()
    command = make_argv(project, "models")
    result = run_with_mounts([tiny_tmpfs(cache, "1m")], command, env=make_env({**FAST, **fresh_cache}))
    assert result.returncode != 0
    assert "disk full" in result.stderr or "no space left" in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len([r for r in mirror.since(mark) if r.path.endswith(SM_WHEEL)]) == 1, "a full disk is not retried"


def test_credentials_in_spacy_models_url_stay_on_their_host_and_out_of_output(project: Path, wheels: dict) -> None:
    secret = "S3CRET-models-url-0a9f"
    with hostile_servers() as servers:
        servers.add_download(wheels["md-3.8.0"])
        name = wheels["md-3.8.0"].name
        path = f"/protected/en_core_web_md-3.8.0/{name}"
        servers.add_redirect(path, f"{servers.cdn_url}/download/en_core_web_md-3.8.0/{name}")
        netloc = servers.url.split("//")[1]
        (project / ".env").write_text(f"SPACY_MODELS_URL=http://models:{secret}@{netloc}/protected\n")
        (project / "requirements-model.in.url").write_text(f"en_core_web_md-3.8.0/{name}\n")
        outputs = [make(project, "-n", "models"), make(project, "--debug", "models", env=FAST)]
        first = servers.requests_to(servers.url)
        other = servers.requests_to(servers.cdn_url)
    assert first and all(r.authorization and r.authorization.startswith("Basic ") for r in first)
    assert other and all(r.authorization is None for r in other), "credentials followed a redirect to another host"
    for result in outputs:
        assert secret not in result.output
    assert (project / "build" / name).is_file()


def test_a_cut_download_is_resumed_by_the_next_make_models(
    project: Path, mirror: Mirror, fresh_cache: dict, wheels: dict
) -> None:
    (project / "build" / SM_WHEEL).unlink()
    url = f"{mirror.download_base}/en_core_web_sm-3.8.0/{SM_WHEEL}"
    mirror.fault(url, cut_after=2_000_000, cuts=4)  # every attempt of the first make is cut at 2 MB
    try:
        first = make(project, "models", env={**FAST, **fresh_cache}, check=False)
        assert first.returncode != 0 and "Traceback" not in first.output
        (part,) = (project / "build" / ".partial").glob("*.part")  # kept, to be resumed
        kept = part.stat().st_size
        assert 0 < kept < wheels["sm-3.8.0"].stat().st_size
        mirror.faults.clear()
        mark = mirror.mark()
        make(project, "models", env={**FAST, **fresh_cache})
    finally:
        mirror.faults.clear()
    asked = [r for r in mirror.since(mark) if r.path.endswith(SM_WHEEL) and r.method == "GET"]
    assert [r.range for r in asked] == [f"bytes={kept}-"] and asked[0].status == 206
    assert asked[0].sent == wheels["sm-3.8.0"].stat().st_size - kept, "only the missing bytes were fetched"
    assert (project / "build" / SM_WHEEL).read_bytes() == wheels["sm-3.8.0"].read_bytes()


def test_a_server_without_ranges_restarts_cleanly(
    project: Path, mirror: Mirror, fresh_cache: dict, wheels: dict
) -> None:
    (project / "build" / SM_WHEEL).unlink()
    url = f"{mirror.download_base}/en_core_web_sm-3.8.0/{SM_WHEEL}"
    mirror.fault(url, cut_after=2_000_000, cuts=4, ranges=False)
    try:
        assert make(project, "models", env={**FAST, **fresh_cache}, check=False).returncode != 0
        mirror.fault(url, ranges=False)
        mark = mirror.mark()
        make(project, "models", env={**FAST, **fresh_cache})
    finally:
        mirror.faults.clear()
    asked = [r for r in mirror.since(mark) if r.path.endswith(SM_WHEEL) and r.method == "GET"]
    assert [r.status for r in asked] == [200] and asked[0].sent == wheels["sm-3.8.0"].stat().st_size
    assert (project / "build" / SM_WHEEL).read_bytes() == wheels["sm-3.8.0"].read_bytes()


def test_a_wheelhouse_without_a_lock_says_make_lock_before_fetching_a_model(
    project: Path, mirror: Mirror, fresh_cache: dict
) -> None:
    (project / "requirements.txt").unlink()
    for wheel in (project / "build").glob("*.whl"):
        wheel.unlink()
    mark = mirror.mark()
    result = make(project, "wheelhouse", env={**FAST, **fresh_cache}, check=False)
    assert result.returncode != 0 and "error: requirements.txt is missing: run make lock" in result.stderr
    assert mirror.since(mark) == [] and not list((project / "build").glob("*.whl")), "no model fetched first"
    assert "Traceback" not in result.output

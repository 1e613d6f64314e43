"""The generated project's core flow, run for real: models, lock, wheelhouse, install, test, clean."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Installed
from tests.support.mirror import Mirror
from tests.support.project import copy_project, make, venv_python

SM_WHEEL = "en_core_web_sm-3.8.0-py3-none-any.whl"
SENTENCE = "Apple is looking at buying U.K. startup for $1 billion"


def wheel_downloads(requests: list) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in requests if r.path.endswith(".whl")]


def pinned(lock: str) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^ ;\\]+)", lock, flags=re.MULTILINE))


def set_model_urls(project: Path, mirror: Mirror, *wheels: str) -> None:
    lines = [f"{mirror.download_base}/{'-'.join(w.split('-')[:2])}/{w}" for w in wheels]
    (project / "requirements-model.in.url").write_text("# models\n" + "\n".join(lines) + "\n")


def test_first_install_downloads_locks_and_installs(installed: Installed) -> None:
    project = installed.path
    assert wheel_downloads(installed.requests) == [SM_WHEEL]
    assert (project / "build" / SM_WHEEL).is_file()
    assert not list((project / "build").glob(".*.part"))
    assert "en_core_web_sm==3.8.0" in (project / "requirements-model.in").read_text().splitlines()
    out = venv_python(project, "import spacy; nlp = spacy.load('en_core_web_sm'); print(nlp.meta['version'])")
    assert out.strip() == "3.8.0"


def test_the_lock_pins_everything_by_hash_and_names_no_source(installed: Installed) -> None:
    lock = (installed.path / "requirements.txt").read_text()
    assert "make lock" in lock
    requirement_lines = [line for line in lock.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    assert len(requirement_lines) > 30
    for line in requirement_lines:
        assert re.match(r"^[a-z0-9][a-z0-9._-]*==\S+ \\$", line), f"not an exact pin followed by hashes: {line}"
    blocks = re.split(r"\n(?=[a-z0-9])", lock)
    assert all("--hash=sha256:" in block for block in blocks if re.match(r"[a-z0-9]", block))
    for forbidden in ("file://", "--find-links", "--index-url", "--extra-index-url", "127.0.0.1", str(installed.path)):
        assert forbidden not in lock
    model_block = next(block for block in blocks if block.startswith("en-core-web-sm=="))
    assert model_block.count("--hash=") == 1, "the model must carry only the hash of the wheel in build/"
    assert pinned(lock)["en-core-web-sm"] == "3.8.0"
    assert "spacy" in pinned(lock)


def test_a_second_install_does_nothing(installed: Installed, mirror: Mirror) -> None:
    project = installed.path
    lock_mtime = (project / "requirements.txt").stat().st_mtime_ns
    stamp_mtime = (project / ".venv" / ".installed").stat().st_mtime_ns
    mark = mirror.mark()
    started = time.monotonic()
    result = make(project, "install")
    elapsed = time.monotonic() - started
    assert mirror.since(mark) == [], "a warm install must not touch the network"
    assert "pip-compile" not in result.output and "Downloading" not in result.output
    assert (project / "requirements.txt").stat().st_mtime_ns == lock_mtime
    assert (project / ".venv" / ".installed").stat().st_mtime_ns == stamp_mtime
    print(f"second make install: {elapsed:.2f} s")


def test_the_generated_tests_and_entry_point_run(installed: Installed) -> None:
    result = make(installed.path, "test")
    assert re.search(r"\d+ passed", result.stdout)
    out = venv_python(installed.path, f"from my_nlp_project.__main__ import main; main([{SENTENCE!r}])")
    assert "Apple (ORG)" in out and "U.K. (GPE)" in out and "$1 billion (MONEY)" in out


def test_editing_the_model_list_updates_exactly_what_changed(
    project: Path, mirror: Mirror, wheels: dict, shared_tools: dict
) -> None:
    md_380, md_381 = wheels["md-3.8.0"].name, wheels["md-3.8.1"].name

    set_model_urls(project, mirror, SM_WHEEL, md_380)
    mark = mirror.mark()
    make(project, "install", env=shared_tools)
    assert wheel_downloads(mirror.since(mark)) == [md_380]
    assert (project / "requirements-model.in").read_text().splitlines()[1:] == [
        "en_core_web_md==3.8.0",
        "en_core_web_sm==3.8.0",
    ]
    lock = (project / "requirements.txt").read_text()
    assert pinned(lock)["en-core-web-md"] == "3.8.0"
    assert (
        venv_python(project, "import en_core_web_md; print(en_core_web_md.load().meta['version'])").strip() == "3.8.0"
    )

    set_model_urls(project, mirror, SM_WHEEL, md_381)
    mark = mirror.mark()
    make(project, "install", env=shared_tools)
    assert wheel_downloads(mirror.since(mark)) == [md_381]
    assert pinned((project / "requirements.txt").read_text())["en-core-web-md"] == "3.8.1"
    assert (
        venv_python(project, "import en_core_web_md; print(en_core_web_md.load().meta['version'])").strip() == "3.8.1"
    )

    set_model_urls(project, mirror, SM_WHEEL)
    mark = mirror.mark()
    make(project, "install", env=shared_tools)
    assert mirror.since(mark) == []
    assert "en-core-web-md" not in pinned((project / "requirements.txt").read_text())
    assert (project / "requirements-model.in").read_text().splitlines()[1:] == ["en_core_web_sm==3.8.0"]
    installed_models = venv_python(
        project,
        "from importlib import metadata; print(sorted(e.name for e in metadata.entry_points(group='spacy_models')))",
    )
    assert installed_models.strip() == "['en_core_web_sm']"


def test_a_tampered_model_is_refused_and_the_venv_survives(
    tmp_path: Path, installed: Installed, shared_tools: dict
) -> None:
    project = copy_project(installed.path, tmp_path / "proj")
    make(project, "install", env=shared_tools)
    wheel = project / "build" / SM_WHEEL
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.unlink()  # the copy shares the file with other tests (a hard link): break it first
    wheel.write_bytes(bytes(data))

    result = make(project, "install", env=shared_tools, check=False)
    assert result.returncode != 0
    assert f"build/{SM_WHEEL} does not match requirements.txt" in result.stderr
    assert "make install" in result.stderr
    assert "Traceback" not in result.output
    assert venv_python(project, "import spacy; print(len(spacy.load('en_core_web_sm').pipe_names))").strip() != "0"


def test_a_sha256_fragment_is_verified_and_nothing_partial_is_kept(project: Path, mirror: Mirror, wheels: dict) -> None:
    md = wheels["md-3.8.0"]
    url = f"{mirror.download_base}/en_core_web_md-3.8.0/{md.name}"
    (project / "requirements-model.in.url").write_text(f"{url}#sha256={'0' * 64}\n")
    result = make(project, "models", check=False)
    assert result.returncode != 0
    assert f"{md.name} from {url} has sha256" in result.stderr and "Nothing was kept" in result.stderr
    assert not (project / "build" / md.name).exists()
    assert not [p for p in (project / "build").iterdir() if p.name.endswith(".part")]

    import hashlib

    (project / "requirements-model.in.url").write_text(f"{url}#sha256={hashlib.sha256(md.read_bytes()).hexdigest()}\n")
    make(project, "models")
    assert (project / "build" / md.name).read_bytes() == md.read_bytes()
    assert (project / "requirements-model.in").read_text().splitlines()[1:] == ["en_core_web_md==3.8.0"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "{mirror}/download/en_core_web_lg-3.8.0/en_core_web_lg-3.8.0-py3-none-any.whl",
            "HTTP 404 Not Found from {url}",
        ),
        ("http://127.0.0.1:9/en_core_web_lg-3.8.0/en_core_web_lg-3.8.0-py3-none-any.whl", "cannot reach {url}"),
        ("{mirror}/download/en_core_web_lg-3.8.0/notes.txt", "is not a wheel file name"),
    ],
    ids=["404", "unreachable", "not-a-wheel"],
)
def test_a_failed_download_names_the_url(project: Path, mirror: Mirror, url: str, message: str) -> None:
    url = url.format(mirror=mirror.url)
    (project / "requirements-model.in.url").write_text(url + "\n")
    before = sorted(p.name for p in (project / "build").iterdir())
    result = make(project, "models", check=False)
    assert result.returncode != 0
    assert message.format(url=url) in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (project / "build").iterdir()) == before


def test_spacy_models_url_points_github_urls_at_a_mirror(tmp_path: Path, mirror: Mirror) -> None:
    from tests.support.project import render

    project = render(tmp_path / "proj")  # default answers: GitHub, which these machines cannot reach
    assert "https://github.com/explosion/spacy-models" in (project / "requirements-model.in.url").read_text()
    mark = mirror.mark()
    make(project, "models", f"SPACY_MODELS_URL={mirror.download_base}")
    assert wheel_downloads(mirror.since(mark)) == [SM_WHEEL]


def test_offline_uses_only_build(project: Path, mirror: Mirror, shared_tools: dict) -> None:
    mark = mirror.mark()
    make(project, "install", "OFFLINE=1", env=shared_tools)
    assert mirror.since(mark) == []
    assert (project / ".venv" / ".installed").exists()

    os.remove(project / "build" / SM_WHEEL)
    result = make(project, "models", "OFFLINE=1", check=False)
    assert result.returncode != 0 and f"OFFLINE=1, but build/{SM_WHEEL} is missing" in result.stderr


def test_a_missing_or_wrong_python_is_named(project: Path) -> None:
    result = make(project, "install", "PYTHON=python9.9", check=False)
    assert result.returncode != 0
    assert "python9.9 not found: install Python 3.11 or run make PYTHON=/path/to/python3.11" in result.stderr
    wrong = subprocess.run(
        [sys.executable, str(project / "scripts/models.py"), "check-python", "3.99"], capture_output=True, text=True
    )
    assert wrong.returncode == 1
    assert f"{sys.executable} is Python 3.11, but this project is set up for Python 3.99" in wrong.stderr
    assert "make PYTHON=python3.99" in wrong.stderr


def test_clean_keeps_models_and_distclean_removes_build(project: Path, shared_tools: dict) -> None:
    make(project, "install", env=shared_tools)
    (project / "build" / "tools").mkdir()
    make(project, "clean")
    assert not (project / ".venv").exists() and not (project / "build" / "wheels").exists()
    assert not (project / "build" / "tools").exists()
    assert (project / "build" / SM_WHEEL).exists()
    assert (project / "requirements.txt").exists() and (project / "requirements-model.in").exists()
    make(project, "distclean")
    assert not (project / "build").exists()


def test_a_fresh_clone_installs_from_the_committed_lock_without_compiling(
    tmp_path: Path, installed: Installed, mirror: Mirror, shared_tools: dict
) -> None:
    """What CI does: a clone holds requirements.txt but no build/; nothing is re-resolved."""
    origin = copy_project(installed.path, tmp_path / "origin")
    subprocess.run(["git", "add", "-A"], cwd=origin, check=True)
    subprocess.run(["git", "commit", "--quiet", "-m", "project"], cwd=origin, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(origin), str(clone)], check=True)
    assert not (clone / "build").exists() and (clone / "requirements.txt").exists()
    lock = (clone / "requirements.txt").read_text()
    (clone / "requirements.in").touch()  # a checkout may leave the lock older than its inputs
    mark = mirror.mark()
    result = make(clone, "install", env=shared_tools)
    assert wheel_downloads(mirror.since(mark)) == [SM_WHEEL]
    assert "pip-compile skipped" in result.stdout and "lock: pip-compile" not in result.stdout
    assert (clone / "requirements.txt").read_text() == lock
    assert venv_python(clone, "import en_core_web_sm; print(en_core_web_sm.__name__)").strip() == "en_core_web_sm"

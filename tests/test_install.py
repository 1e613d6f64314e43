"""The generated project's core flow, run for real: models, lock, wheelhouse, install, test, clean.

Tests about locking and installing run once per installer (pip-tools, uv); the
others reuse one installed project and its lock, installed with uv (seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST, THIN_WHEEL, Installed, InstalledProjects
from tests.support.mirror import Mirror
from tests.support.project import copy_project, make, render, venv_python
from tests.support.wheels import TinyModel, build_tiny

SM_WHEEL = "en_core_web_sm-3.8.0-py3-none-any.whl"
SENTENCE = "Apple is looking at buying U.K. startup for $1 billion"


def wheel_downloads(requests: list) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in requests if r.path.endswith(".whl") and r.method == "GET"]


def pinned(lock: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", lock, flags=re.MULTILINE))


def set_model_urls(project: Path, mirror: Mirror, *wheels: str) -> None:
    lines = [f"{mirror.download_base}/{'-'.join(w.split('-')[:2])}/{w}" for w in wheels]
    (project / "requirements-model.in.url").write_text("# models\n" + "\n".join(lines) + "\n")


def break_link(path: Path) -> bytearray:
    """The file's bytes, after giving it an inode of its own (project copies hard-link wheels)."""
    data = bytearray(path.read_bytes())
    path.unlink()
    path.write_bytes(bytes(data))
    return data


def flip_a_byte(path: Path) -> None:
    data = break_link(path)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_first_install_downloads_locks_and_installs(installed_with: Installed) -> None:
    project = installed_with.path
    assert wheel_downloads(installed_with.requests) == [SM_WHEEL]
    assert (project / "build" / SM_WHEEL).is_file()
    assert not list((project / "build").rglob("*.part"))
    assert "en_core_web_sm==3.8.0" in (project / "requirements-model.in").read_text().splitlines()
    out = venv_python(project, "import spacy; nlp = spacy.load('en_core_web_sm'); print(nlp.meta['version'])")
    assert out.strip() == "3.8.0"
    expected_tool = "uv pip compile --universal" if installed_with.installer == "uv" else "pip-compile"
    assert f"lock: {expected_tool} (models from build/ only)" in installed_with.result.stdout


def test_the_lock_pins_everything_by_hash_and_names_no_source(installed_with: Installed) -> None:
    lock = (installed_with.path / "requirements.txt").read_text()
    assert "#    make lock" in lock
    requirement_lines = [line for line in lock.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    assert len(requirement_lines) > 30
    for line in requirement_lines:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+( ; .+)? \\$", line), f"not an exact pin with hashes: {line}"
    for forbidden in (
        "file:",
        "--find-links",
        "--index-url",
        "--extra-index-url",
        "127.0.0.1",
        str(installed_with.path),
    ):
        assert forbidden not in lock
    models = lock[lock.index("# Models:") :]
    wheel = installed_with.path / "build" / SM_WHEEL
    assert models.splitlines()[1:] == [
        "en_core_web_sm==3.8.0 \\",
        f"    --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}",
        "    # via -r requirements-model.in",
    ], "the model must carry only the hash of its file in build/"
    assert "spacy" in pinned(lock)
    assert stat.S_IMODE((installed_with.path / "requirements.txt").stat().st_mode) == 0o644, "files users commit"


def test_a_warm_install_runs_nothing(installed_with: Installed, mirror: Mirror, tmp_path: Path) -> None:
    project = installed_with.path
    chosen = f"INSTALLER={installed_with.installer}"
    lock_mtime = (project / "requirements.txt").stat().st_mtime_ns
    assert make(project, "-q", "install", chosen, check=False).returncode == 0
    assert "nlp-models" not in make(project, "-n", "install", chosen).output
    shims = tmp_path / "bin"
    shims.mkdir()
    for name in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        (shims / name).write_text("#!/bin/sh\necho 'python ran' >&2\nexit 97\n")
        (shims / name).chmod(0o755)
    mark = mirror.mark()
    started = time.monotonic()
    result = make(project, "install", chosen, env={"PATH": f"{shims}:{os.environ['PATH']}"})
    elapsed = time.monotonic() - started
    assert mirror.since(mark) == [], "a warm install must not touch the network"
    assert "python ran" not in result.output and "nlp-models" not in result.output
    remade = re.findall(r"Must remake target '([^']+)'", make(project, "-d", "install", chosen).output)
    assert remade == ["install"], "only the phony verb itself; no file was out of date"
    assert (project / "requirements.txt").stat().st_mtime_ns == lock_mtime
    print(f"warm make install: {elapsed * 1000:.0f} ms")


def test_switching_the_installer_makes_the_venv_again(tmp_path: Path, thin_projects: InstalledProjects) -> None:
    project = copy_project(thin_projects.get("uv").path, tmp_path / "proj")
    make(project, "install", "INSTALLER=uv")
    result = make(project, "install", "INSTALLER=pip-tools")
    assert "was made with uv; making it again with pip-tools" in result.stdout
    assert (project / ".venv" / ".installer-pip-tools").exists() and not (project / ".venv" / ".installer-uv").exists()
    assert venv_python(project, "import pip, en_thin_model; print('ok')").strip() == "ok"
    assert make(project, "-q", "install", "INSTALLER=pip-tools", check=False).returncode == 0


def test_the_generated_tests_and_entry_point_run(installed: Installed) -> None:
    result = make(installed.path, "test")
    assert re.search(r"\d+ passed", result.stdout)
    out = venv_python(installed.path, f"from my_nlp_project.__main__ import main; main([{SENTENCE!r}])")
    assert "Apple (ORG)" in out and "U.K. (GPE)" in out and "$1 billion (MONEY)" in out


def test_editing_the_model_list_updates_exactly_what_changed(
    project: Path, mirror: Mirror, wheels: dict, fresh_cache: dict[str, str]
) -> None:
    md_380, md_381 = wheels["md-3.8.0"].name, wheels["md-3.8.1"].name
    fast = {**FAST, **fresh_cache}  # counts downloads: an empty machine cache of its own

    set_model_urls(project, mirror, SM_WHEEL, md_380)
    mark = mirror.mark()
    make(project, "install", env=fast)
    assert wheel_downloads(mirror.since(mark)) == [md_380]
    assert (project / "requirements-model.in").read_text().splitlines()[2:] == [
        "en_core_web_md==3.8.0",
        "en_core_web_sm==3.8.0",
    ]
    assert pinned((project / "requirements.txt").read_text())["en_core_web_md"] == "3.8.0"
    version = "import en_core_web_md; print(en_core_web_md.load().meta['version'])"
    assert venv_python(project, version).strip() == "3.8.0"

    set_model_urls(project, mirror, SM_WHEEL, md_381)
    mark = mirror.mark()
    make(project, "install", env=fast)
    assert wheel_downloads(mirror.since(mark)) == [md_381]
    assert venv_python(project, version).strip() == "3.8.1"

    set_model_urls(project, mirror, SM_WHEEL)
    mark = mirror.mark()
    make(project, "install", env=fast)
    assert mirror.since(mark) == []
    assert "en_core_web_md" not in pinned((project / "requirements.txt").read_text())
    entry_points = (
        "from importlib import metadata; print(sorted(e.name for e in metadata.entry_points(group='spacy_models')))"
    )
    assert venv_python(project, entry_points).strip() == "['en_core_web_sm']"

    (project / "requirements-model.in.url").unlink()  # make sees no prerequisite change, only one fewer
    make(project, "install", env=fast)
    assert "en_core_web_sm" not in pinned((project / "requirements.txt").read_text())
    assert venv_python(project, entry_points).strip() == "[]"
    assert make(project, "-q", "install", env=fast, check=False).returncode == 0


def test_a_tampered_model_is_refused_and_the_advice_fixes_it(tmp_path: Path, thin_installed_with: Installed) -> None:
    project = copy_project(thin_installed_with.path, tmp_path / "proj", with_venvs=True)
    settings = [f"INSTALLER={thin_installed_with.installer}"]
    wheel = project / "build" / THIN_WHEEL
    flip_a_byte(wheel)
    (project / "requirements.in").touch()  # make must look at the lock again

    result = make(project, "install", *settings, check=False)
    assert result.returncode != 0
    assert f"build/{THIN_WHEEL} does not match requirements.txt" in result.stderr
    assert f"rm build/{THIN_WHEEL}" in result.stderr and "make models" in result.stderr
    assert "Traceback" not in result.output
    assert venv_python(project, "import en_thin_model; print(en_thin_model.__version__)").strip() == "1.0.0"

    wheel.unlink()  # the advice, followed once
    make(project, "models", *settings)
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in (project / "requirements.txt").read_text()
    make(project, "install", *settings)


def test_a_replaced_model_is_locked_by_the_upgrade_the_error_names(project: Path) -> None:
    make(project, "install", env=FAST)
    wheel = project / "build" / SM_WHEEL
    republished = TinyModel("en_core_web_sm", "3.8.0")  # the same version published again, other bytes
    wheel.unlink()
    wheel.write_bytes(build_tiny(republished).read_bytes())
    result = make(project, "install", env=FAST, check=False)
    assert result.returncode != 0 and "make upgrade to lock it" in result.stderr
    make(project, "upgrade", env=FAST)  # the other advice, followed once
    make(project, "install", env=FAST)
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in (project / "requirements.txt").read_text()
    assert venv_python(project, "import spacy; print(spacy.load('en_core_web_sm')('Acme').ents[0].label_)").strip() == (
        republished.marker
    )


def test_a_tampered_wheelhouse_file_is_replaced_by_make_wheelhouse(project: Path) -> None:
    make(project, "install", env=FAST)
    spacy_wheel = next((project / "build" / "wheels").glob("spacy-*.whl"))
    flip_a_byte(spacy_wheel)
    result = make(project, "docker", "CONTAINER_ENGINE=true", env=FAST, check=False)
    assert result.returncode != 0 and "run make wheelhouse" in result.stderr
    make(project, "wheelhouse", env=FAST)  # the advice, followed once
    lock = (project / "requirements.txt").read_text()
    assert hashlib.sha256(next((project / "build" / "wheels").glob("spacy-*.whl")).read_bytes()).hexdigest() in lock


def test_a_sha256_fragment_is_verified_and_nothing_partial_is_kept(project: Path, mirror: Mirror, wheels: dict) -> None:
    md = wheels["md-3.8.0"]
    url = f"{mirror.download_base}/en_core_web_md-3.8.0/{md.name}"
    (project / "requirements-model.in.url").write_text(f"{url}#sha256={'0' * 64}\n")
    result = make(project, "models", env=FAST, check=False)
    assert result.returncode != 0
    assert "requirements-model.in.url:1" in result.stderr and "sha256" in result.stderr
    assert "Traceback" not in result.output
    assert not (project / "build" / md.name).exists()
    assert not [p for p in (project / "build").rglob("*") if p.name.endswith(".part")]

    (project / "requirements-model.in.url").write_text(f"{url}#sha256={hashlib.sha256(md.read_bytes()).hexdigest()}\n")
    make(project, "models", env=FAST)
    assert (project / "build" / md.name).read_bytes() == md.read_bytes()
    assert (project / "requirements-model.in").read_text().splitlines()[2:] == ["en_core_web_md==3.8.0"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("{mirror}/download/en_core_web_lg-3.8.0/en_core_web_lg-3.8.0-py3-none-any.whl", "404"),
        ("http://127.0.0.1:9/en_core_web_lg-3.8.0/en_core_web_lg-3.8.0-py3-none-any.whl", "127.0.0.1:9"),
        ("{mirror}/download/en_core_web_lg-3.8.0/notes.txt", "is neither a wheel"),
        ("{mirror}/download/x/..%2F..%2F..%2Fevil-1.0-py3-none-any.whl", "is not a plain file name"),
        ("{mirror}/download/x/en core-1.0-py3-none-any.whl", "a URL has no spaces"),
    ],
    ids=["404", "unreachable", "not-a-wheel", "path-traversal", "space"],
)
def test_a_failed_download_names_the_url_and_leaves_build_alone(
    project: Path, mirror: Mirror, url: str, message: str
) -> None:
    url = url.format(mirror=mirror.url)
    (project / "requirements-model.in.url").write_text(url + "\n")

    def files() -> list[str]:
        return sorted(p.name for p in (project / "build").iterdir() if p.name != ".partial")

    before = files()
    result = make(project, "models", env=FAST, check=False)
    assert result.returncode != 0
    assert message in result.stderr and "requirements-model.in.url:1" in result.stderr
    assert "Traceback" not in result.output
    assert files() == before
    assert not list(project.parent.rglob("evil*"))


def test_spacy_models_url_points_github_urls_at_a_mirror(tmp_path: Path, mirror: Mirror, fresh_cache: dict) -> None:
    project = render(tmp_path / "proj")  # default answers: GitHub, which these machines cannot reach
    assert "https://github.com/explosion/spacy-models" in (project / "requirements-model.in.url").read_text()
    mark = mirror.mark()
    make(project, "models", f"SPACY_MODELS_URL={mirror.download_base}", env=fresh_cache)
    assert wheel_downloads(mirror.since(mark)) == [SM_WHEEL]


def test_offline_uses_only_build(
    tmp_path: Path, thin_installed_with: Installed, mirror: Mirror, fresh_cache: dict
) -> None:
    project = copy_project(thin_installed_with.path, tmp_path / "proj")
    settings = {"INSTALLER": thin_installed_with.installer, **fresh_cache}
    mark = mirror.mark()
    make(project, "install", "OFFLINE=1", env=settings)
    assert mirror.since(mark) == []
    assert (project / ".venv" / ".installed").exists()

    os.remove(project / "build" / THIN_WHEEL)
    result = make(project, "models", "OFFLINE=1", env=settings, check=False)
    assert result.returncode != 0 and "OFFLINE=1" in result.stderr and THIN_WHEEL in result.stderr
    assert mirror.since(mark) == []


def test_a_missing_or_wrong_python_is_named(project: Path, tmp_path: Path) -> None:
    env = {"TOOLS": str(tmp_path / "tools")}
    result = make(project, "install", "PYTHON=python9.9", env=env, check=False)
    assert result.returncode != 0
    assert "python9.9 not found: install Python 3.11 or run make PYTHON=/path/to/python3.11" in result.stderr
    result = make(project, "install", "PYTHON_VERSION=3.99", f"PYTHON={sys.executable}", env=env, check=False)
    assert result.returncode != 0
    assert "is not Python 3.99, which this project is set up for: run make PYTHON=python3.99" in result.stderr


def test_clean_keeps_models_and_distclean_removes_build(project: Path) -> None:
    make(project, "install", env=FAST)
    (project / "build" / ".partial").mkdir(exist_ok=True)
    (project / "build" / ".partial" / "0123.part").write_text("half a download")
    (project / "build" / "tools").mkdir()
    make(project, "clean", "TOOLS=build/tools")  # this project's tools venv, not the suite's shared one
    assert not (project / ".venv").exists() and not (project / "build" / "wheels").exists()
    assert not (project / "build" / "tools").exists()
    assert not (project / "build" / ".partial").exists()
    assert (project / "build" / SM_WHEEL).exists()
    assert (project / "requirements.txt").exists() and (project / "requirements-model.in").exists()
    make(project, "distclean", "TOOLS=build/tools")
    assert [p.name for p in (project / "build").iterdir()] == ["README.md"], "the committed README stays"


def test_a_fresh_clone_installs_from_the_committed_lock_without_resolving(
    tmp_path: Path, thin_installed_with: Installed, mirror: Mirror, fresh_cache: dict
) -> None:
    """What CI does: a clone holds requirements.txt but no build/; nothing is re-resolved."""
    origin = copy_project(thin_installed_with.path, tmp_path / "origin")
    subprocess.run(["git", "add", "-A"], cwd=origin, check=True)
    subprocess.run(["git", "commit", "--quiet", "-m", "project"], cwd=origin, check=True)
    settings = [f"INSTALLER={thin_installed_with.installer}"]
    for attempt in ("first", "second"):
        clone = tmp_path / f"clone-{attempt}"
        subprocess.run(["git", "clone", "--quiet", str(origin), str(clone)], check=True)
        lock = (clone / "requirements.txt").read_text()
        (clone / "requirements.in").touch()  # a checkout may leave the lock older than its inputs
        mark = mirror.mark()
        result = make(clone, "install", *settings, env=fresh_cache)
        downloads = wheel_downloads(mirror.since(mark))
        assert downloads == ([THIN_WHEEL] if attempt == "first" else []), "the machine's cache serves the second clone"
        assert "nothing to resolve" in result.stdout and "compile" not in result.stdout
        assert (clone / "requirements.txt").read_text() == lock
        assert venv_python(clone, "import en_thin_model; print(en_thin_model.__version__)").strip() == "1.0.0"


def test_the_runtime_manifest_follows_the_lock(tmp_path: Path, mirror: Mirror) -> None:
    project = render(tmp_path / "proj", spacy_models_url=mirror.download_base, runtime_install=True)
    make(project, "lock", env=FAST)
    manifest = json.loads((project / "src" / "my_nlp_project" / "models.lock.json").read_text())
    lock = (project / "requirements.txt").read_text()
    (model,) = manifest["models"]
    assert model["name"] == "en_core_web_sm" and model["version"] == "3.8.0" and model["filename"] == SM_WHEEL
    assert f"--hash=sha256:{model['sha256']}" in lock and model["url"].endswith(SM_WHEEL)
    assert manifest["spacy"] == pinned(lock)["spacy"] and model["requires_spacy"]
    assert {"installer", "filelock"} <= set(pinned(lock)), "the runtime's own dependencies are locked by hash"
    for name in ("requirements.txt", "requirements-model.in", "src/my_nlp_project/models.lock.json"):
        assert stat.S_IMODE((project / name).stat().st_mode) == 0o644, f"{name} is committed: the umask's mode"

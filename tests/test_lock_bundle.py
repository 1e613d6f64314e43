"""One lock for every machine (uv's universal lock), wheelhouses for other targets from it, and `make bundle`.

Real resolvers, real pip downloads for another platform, a real offline install in a network
namespace with no network (`unshare -n`), pylock.toml read back by packaging, pip and uv.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import tomllib
from packaging.pylock import Pylock
from packaging.utils import parse_wheel_filename

from tests.conftest import FAST, InstalledProjects
from tests.support.project import copy_project, make

MARKERS = 'tomli ; sys_platform == "linux"\ncolorama ; sys_platform == "win32"\n'
ARM = ["PLATFORM=linux/arm64", "IMAGE_PYTHON=3.12"]


@pytest.fixture
def uv_project(tmp_path: Path, installed_projects: InstalledProjects) -> Path:
    """The project installed with uv: its requirements.txt is a universal lock."""
    return copy_project(installed_projects.get("uv").path, tmp_path / "proj")


def with_markers(project: Path) -> None:
    text = (project / "requirements.in").read_text()
    (project / "requirements.in").write_text(text.replace("# Tests (`make test`).", MARKERS + "# Tests (`make test`)."))


# ---- markers


def test_a_universal_lock_keeps_every_requirement_with_its_marker(uv_project: Path) -> None:
    assert "# make lock: for every platform" in (uv_project / "requirements.txt").read_text()
    with_markers(uv_project)
    result = make(uv_project, "lock", "INSTALLER=uv")
    lock = (uv_project / "requirements.txt").read_text()
    assert re.search(r"^tomli==\S+ ; sys_platform == 'linux'", lock, re.MULTILINE), lock
    assert re.search(r"^colorama==\S+ ; sys_platform == 'win32'", lock, re.MULTILINE), lock
    assert "left out" not in result.output


def test_a_pip_tools_lock_keeps_markers_and_names_what_it_leaves_out(project: Path) -> None:
    with_markers(project)
    result = make(project, "lock", "INSTALLER=pip-tools")
    lock = (project / "requirements.txt").read_text()
    assert re.search(r"^tomli==\S+ ; sys_platform == \"linux\"", lock, re.MULTILINE), lock
    assert not re.search(r"^colorama==", lock, re.MULTILINE)
    (line,) = [line for line in result.stdout.splitlines() if "left out" in line]
    assert line.startswith("lock: colorama (requirements.in:") and 'sys_platform == "win32"' in line
    assert "INSTALLER=uv locks for every platform" in line
    assert f"# make lock: for {sys.platform} " in lock and "only (pip-compile" in lock


# ---- another target's wheelhouse, from the lock itself


def fits(wheel: str, arch: str, python: str) -> bool:
    tags = parse_wheel_filename(wheel)[3]
    abi = f"cp{python.replace('.', '')}"
    return all(t.platform == "any" or arch in t.platform for t in tags) and any(
        t.interpreter in (abi, "py3", "cp3") or t.abi in ("abi3", "none", abi) for t in tags
    )


def test_a_universal_lock_gives_another_targets_wheelhouse_with_no_resolver(uv_project: Path) -> None:
    before = sorted(p.name for p in (uv_project / "build" / "wheels").iterdir())
    result = make(uv_project, "wheelhouse", *ARM, env=FAST)
    assert "pip compile" not in result.output and "resolving it again" not in result.output
    assert not (uv_project / "build" / "image" / "linux-arm64-py3.12" / "resolve").exists(), "no resolver ran"
    house = uv_project / "build" / "image" / "linux-arm64-py3.12" / "wheels"
    lock = (uv_project / "requirements.txt").read_text()
    files = [p for p in house.iterdir() if p.suffix == ".whl"]
    assert files and all(hashlib.sha256(p.read_bytes()).hexdigest() in lock for p in files)
    assert all(fits(p.name, "aarch64", "3.12") for p in files), [
        p.name for p in files if not fits(p.name, "aarch64", "3.12")
    ]
    assert sorted(p.name for p in (uv_project / "build" / "wheels").iterdir()) == before, "build/wheels left as it was"


def test_an_unsupported_target_is_refused_by_name(uv_project: Path) -> None:
    result = make(uv_project, "wheelhouse", "PLATFORM=windows/amd64", env=FAST, check=False)
    assert result.returncode != 0 and "PLATFORM=windows/amd64 is not supported" in result.stderr


# ---- make bundle


def unpack(archive: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    with tarfile.open(archive) as kit:
        kit.extractall(into, filter="data")
    return into


def offline(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """argv in a network namespace with no network (unshare -n: root; CI runs as root)."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("CI=true, but unshare -n is not allowed here (it needs root)")
        pytest.skip("unshare -n is not allowed here (it needs root); with CI=true this fails")
    return subprocess.run(["unshare", "-n", *argv], capture_output=True, text=True, env=env)


def test_a_bundle_installs_with_no_network_and_is_reproducible(uv_project: Path, tmp_path: Path) -> None:
    make(uv_project, "bundle", env=FAST)
    (archive,) = (uv_project / "build" / "bundle").glob("*.tar.gz")
    assert (
        archive.name == f"my-nlp-project-linux-{'arm64' if os.uname().machine == 'aarch64' else 'amd64'}-py3.11.tar.gz"
    )
    first = archive.read_bytes()
    make(uv_project, "bundle", env=FAST)
    assert archive.read_bytes() == first, "the same inputs give the same bytes"

    kit = unpack(archive, tmp_path / "kit")
    names = sorted(str(p.relative_to(kit)) for p in kit.rglob("*") if p.is_file())
    assert {"install.sh", "requirements.txt", "pylock.toml", "SHA256SUMS"} <= set(names)
    assert any(name.startswith("wheels/en_core_web_sm-3.8.0") for name in names)
    pylock = Pylock.from_dict(tomllib.loads((kit / "pylock.toml").read_text()))  # valid PEP 751
    model = next(p for p in pylock.packages if p.name == "en-core-web-sm")
    assert model.tool == {"nlp-template": {"model": True, "source": model.tool["nlp-template"]["source"]}}
    pins = (kit / "requirements.txt").read_text().count("--hash=sha256:")  # one hash a pin: its file's
    assert pins == len(pylock.packages)

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no uv on PATH: pip from requirements.txt
    venv = tmp_path / "venv"
    result = offline("sh", str(kit / "install.sh"), str(venv), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    code = "import spacy; print(spacy.load('en_core_web_sm')('Apple is buying a startup').ents[0].label_)"
    loaded = offline(str(venv / "bin" / "python"), "-c", code)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "ORG", loaded.stderr


def test_a_bundles_pylock_installs_with_pip_and_uv(uv_project: Path, tmp_path: Path) -> None:
    make(uv_project, "bundle", env=FAST)
    kit = unpack(next((uv_project / "build" / "bundle").glob("*.tar.gz")), tmp_path / "kit")
    code = "import spacy; print(spacy.load('en_core_web_sm').meta['version'])"
    for installer in ("pip", "uv"):
        venv = tmp_path / installer
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        tools, python, pylock = (
            Path(os.environ["TOOLS"]) / "bin",
            str(venv / "bin" / "python"),
            str(kit / "pylock.toml"),
        )
        if installer == "pip":  # the tools venv's pip is 26.x: it reads pylock.toml
            command = [str(tools / "python"), "-m", "pip", "--python", python, "install", "--quiet", "--no-index",
                       "-r", pylock]  # fmt: skip
        else:
            command = [str(tools / "uv"), "pip", "sync", "--quiet", "--offline", "--python", python, pylock]
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1"}
        done = offline(*command, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        loaded = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
        assert loaded.stdout.strip() == "3.8.0", loaded.stderr


def test_a_bundle_for_another_platform_holds_its_wheels(uv_project: Path, tmp_path: Path) -> None:
    make(uv_project, "bundle", *ARM, env=FAST)
    archive = uv_project / "build" / "bundle" / "my-nlp-project-linux-arm64-py3.12.tar.gz"
    kit = unpack(archive, tmp_path / "kit")
    wheels = [p.name for p in (kit / "wheels").iterdir()]
    assert wheels and all(fits(name, "aarch64", "3.12") for name in wheels)
    Pylock.from_dict(tomllib.loads((kit / "pylock.toml").read_text()))

"""Real machines, as users have them: a copied or moved project, a --user pip, no writable HOME, a full TMPDIR,
a deleted model file. Each asserts the exit code, the one line and the files left, and follows the advice once.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import FAST, THIN_WHEEL, Installed, InstalledProjects
from tests.support.mirror import Mirror
from tests.support.project import copy_project, make, make_argv, make_env, venv_python
from tests.support.sandbox import read_only, run_with_mounts, tiny_tmpfs

WHERE_SRC = "import my_nlp_project, pathlib; print(pathlib.Path(my_nlp_project.__file__).resolve().parent.parent)"


def installed_copy(thin_projects: InstalledProjects, tmp_path: Path, name: str = "p") -> Path:
    """A copy of the installed thin uv project with its .venv, the way cp -a would leave it (the .venv made there)."""
    source = thin_projects.get("uv").path
    project = copy_project(source, tmp_path / name)
    make(project, "install", env=FAST)  # a .venv made for this very directory
    return project


def test_a_copied_project_makes_its_venv_again(tmp_path: Path, thin_projects: InstalledProjects) -> None:
    original = installed_copy(thin_projects, tmp_path)
    copy = tmp_path / "p-copy"
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
    assert make(copy, "-q", "install", env=FAST, check=False).returncode == 1, "make -q sees the copy is not installed"
    result = make(copy, "install", env=FAST)
    assert f"install: .venv was made for {original}, and this project is {copy}: making it again" in result.stdout
    assert venv_python(copy, WHERE_SRC).strip() == str(copy / "src")
    assert make(copy, "-q", "install", env=FAST, check=False).returncode == 0


def test_a_moved_project_makes_its_venv_and_tools_again(tmp_path: Path, thin_projects: InstalledProjects) -> None:
    original = installed_copy(thin_projects, tmp_path)
    own_tools = ["TOOLS=build/tools"]
    make(original, "install", *own_tools, env=FAST)
    moved = tmp_path / "renamed project"  # a space too
    original.rename(moved)
    asked = make(moved, "-q", "install", *own_tools, env=FAST, check=False)
    assert asked.returncode == 1  # (make remakes what it includes first: the tools venv, here)
    result = make(moved, "install", *own_tools, env=FAST)
    assert "tools: creating build/tools" in asked.output + result.output and "making it again" in result.stdout
    assert str(moved / "build" / "tools") in (moved / "build" / "tools" / ".made-for.mk").read_text()
    assert venv_python(moved, WHERE_SRC).strip() == str(moved / "src")
    assert subprocess.run([str(moved / "build/tools/bin/nlp-models"), "--version"], capture_output=True).returncode == 0


def test_a_user_pip_never_reaches_a_venv(tmp_path: Path, thin_projects: InstalledProjects) -> None:
    """PIP_USER=1 and a pip configuration with user = true: the tools venv and pip-sync's .venv install all the same."""
    project = copy_project(thin_projects.get("pip-tools").path, tmp_path / "proj")
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nuser = true\n[install]\nuser = true\n")
    env = {"PIP_USER": "1", "PIP_CONFIG_FILE": str(config)}
    result = make(project, "install", "INSTALLER=pip-tools", "TOOLS=build/tools", env=env)
    assert "Traceback" not in result.output
    assert venv_python(project, "import en_thin_model; print(en_thin_model.__version__)").strip() == "1.0.0"


def test_no_writable_home_works_once_the_model_cache_is_set(tmp_path: Path, thin_projects: InstalledProjects) -> None:
    """A service account: HOME read-only. The first message names NLP_MODELS_CACHE; set, make install succeeds and
    uv's cache goes beside the model cache."""
    project = copy_project(thin_projects.get("uv").path, tmp_path / "proj")
    for made in (project / "build" / THIN_WHEEL, project / "build" / "models.json"):  # a clone: make models must run
        made.unlink()
    home = tmp_path / "home"
    home.mkdir()
    env = make_env(FAST)
    unset = ["env", "-u", "NLP_MODELS_CACHE", "-u", "UV_CACHE_DIR", "-u", "XDG_CACHE_HOME"]  # the machine's defaults
    command = [*unset, *make_argv(project, "install", "INSTALLER=uv")]
    first = run_with_mounts([read_only(home)], command, env={**env, "HOME": str(home)})
    assert first.returncode != 0
    (line,) = [x for x in first.stderr.splitlines() if x.startswith("error:")]
    assert "NLP_MODELS_CACHE" in line and "Traceback" not in first.stdout + first.stderr
    cache = tmp_path / "model-cache"
    stuck = ["env", "-u", "XDG_CACHE_HOME", *make_argv(project, "install", "INSTALLER=uv", f"NLP_MODELS_CACHE={cache}")]
    # uv told to keep its cache under the read-only HOME: the message reads uv's own words
    refused = run_with_mounts([read_only(home)], stuck, env={**env, "HOME": str(home), "UV_CACHE_DIR": f"{home}/uv"})
    assert refused.returncode != 0
    line = [x for x in refused.stderr.splitlines() if x.startswith("error:")][-1]  # after uv's own lines
    assert f"could not install .venv: uv cannot write its cache at {home / 'uv'}: UV_CACHE_DIR names it" in line
    command = [*unset[:1], *unset[3:], *make_argv(project, "install", "INSTALLER=uv", f"NLP_MODELS_CACHE={cache}")]
    then = run_with_mounts([read_only(home)], command, env={**env, "HOME": str(home)})
    assert then.returncode == 0, then.stdout + then.stderr
    assert (cache / "uv").is_dir(), "uv's cache went beside the model cache"


def test_a_full_tmpdir_is_named_and_another_one_fixes_it(tmp_path: Path, installed: Installed) -> None:
    project = copy_project(installed.path, tmp_path / "proj")
    small = tmp_path / "tmp"
    small.mkdir()
    tools = make_argv(project, "build/tools/.installed", "TOOLS=build/tools")
    full = run_with_mounts([tiny_tmpfs(small, "2m")], tools, env={**make_env(), "TMPDIR": str(small)}, timeout=600)
    assert full.returncode != 0 and "Traceback" not in full.stderr
    (line,) = [x for x in full.stderr.splitlines() if x.startswith("error:")]
    assert f"setting up build/tools failed: {small} has " in line and "set TMPDIR to a directory on a disk" in line
    assert not (project / "build" / "tools" / ".installed").exists()
    make(project, "build/tools/.installed", "TOOLS=build/tools", env={"TMPDIR": str(tmp_path)})  # the advice, once

    shutil.rmtree(project / "build" / "wheels")
    house = make_argv(project, "wheelhouse", "TOOLS=build/tools")
    refused = run_with_mounts([tiny_tmpfs(small, "2m")], house, env={**make_env(), "TMPDIR": str(small)}, timeout=600)
    assert refused.returncode != 0
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert "no space left on device" in line and f"TMPDIR={small}" in line and "requirements.in" not in line
    make(project, "wheelhouse", "TOOLS=build/tools", env={"TMPDIR": str(tmp_path)})


def test_a_deleted_model_file_is_noticed_and_fetched_again(
    tmp_path: Path, thin_projects: InstalledProjects, mirror: Mirror
) -> None:
    project = copy_project(thin_projects.get("uv").path, tmp_path / "proj")
    env = {**FAST, "NLP_MODELS_CACHE": str(tmp_path / "model-cache")}  # this machine's cache: empty yet
    make(project, "install", env=env)
    wheel = project / "build" / THIN_WHEEL
    for fetched_from_source in (1, 0):  # from its source once, then from the machine's cache
        wheel.unlink()
        assert make(project, "-q", "install", env=env, check=False).returncode == 1, "make sees the file is gone"
        mark = mirror.mark()
        make(project, "install", env=env)
        assert wheel.is_file()
        assert len([r for r in mirror.since(mark) if r.path.endswith(THIN_WHEEL)]) == fetched_from_source
    assert make(project, "-q", "install", env=env, check=False).returncode == 0


def test_a_proxy_that_refuses_is_named_never_a_requirements_line(
    tmp_path: Path, thin_projects: InstalledProjects
) -> None:
    project = copy_project(thin_projects.get("uv").path, tmp_path / "proj")
    (project / ".env").write_text("HTTPS_PROXY=http://127.0.0.1:9\nHTTP_PROXY=http://127.0.0.1:9\n")
    requirements = project / "requirements.in"
    requirements.write_text(requirements.read_text() + "six==1.17.0\n")  # a relock, through the proxy
    result = make(project, "lock", "INSTALLER=uv", env={"NO_PROXY": "", "no_proxy": ""}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "failed: the proxy http://127.0.0.1:9 did not carry the request to" in line
    assert "HTTPS_PROXY" in line and "requirements.in:" not in line
    (project / ".env").write_text("")  # the advice followed: the proxy fixed (here: none)
    make(project, "lock", "INSTALLER=uv")

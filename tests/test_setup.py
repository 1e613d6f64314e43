"""Set-up on machines unlike this one: the pip Python bundles, and a make too old for the Makefiles.

A complete lock is installed without resolving anything, so a release published on the index
after the lock was made cannot break it (issue: pip 23.2 resolved weasel's smart-open[http] to
the index's newest release and refused it). make 3.81 (macOS) and 3.82 are refused before anything
runs, in one line naming gmake.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import InstalledProjects
from tests.support.pips import OLDEST_DEV_PIP, OLDEST_PROJECT_PIP, extra_trap, index_env, python_bundling_pip
from tests.support.project import REPO, copy_project, make, venv_python

OLD_MAKE = ["MAKE_VERSION=3.81", ".FEATURES=target-specific order-only second-expansion else-if archives jobserver "
            "check-symlink"]  # fmt: skip


def bundled_pip() -> str:
    """The pip this machine's Python puts into a new venv."""
    import ensurepip

    return ensurepip.version()


@pytest.mark.parametrize("pip_version", [OLDEST_DEV_PIP, bundled_pip()])
def test_the_dev_venv_installs_exactly_its_lock_whatever_the_index_holds(tmp_path: Path, pip_version: str) -> None:
    """The root Makefile's dev venv, with a newer release of an extra's base package on the index."""
    links = tmp_path / "index"
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "requirements-dev.txt").write_text(extra_trap(links))
    python = python_bundling_pip(pip_version, tmp_path / "bin")
    env = index_env(links)
    result = make(tmp_path, ".venv/.installed", f"PYTHON={python}", env=env)
    assert "No broken requirements found" in result.output
    listed = venv_python(tmp_path, "import importlib.metadata as m; print(m.version('extra-base'))")
    assert listed.strip() == "1.0"


def test_the_tools_venv_installs_exactly_its_lock_whatever_the_index_holds(tmp_path: Path, rendered: Path) -> None:
    """A generated project's tools venv (it reads the index): the same trap, the oldest pip a project supports."""
    project = copy_project(rendered, tmp_path / "proj")
    links = tmp_path / "index"
    (project / "scripts" / "tools.txt").write_text(extra_trap(links))
    # the .env check runs the real helper: mark it done, this test is about the tools recipe alone
    stamp = project / "build" / "lock" / "env.checked"
    stamp.parent.mkdir(parents=True)
    stamp.touch()
    python = python_bundling_pip(OLDEST_PROJECT_PIP, tmp_path / "bin")
    make(project, "build/t/.installed", "TOOLS=build/t", f"PYTHON={python}", env=index_env(links))
    version = subprocess.run([str(project / "build/t/bin/python"), "-c",
                              "import importlib.metadata as m; print(m.version('extra-base'))"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert version.strip() == "1.0"
    assert sorted(p.name for p in (project / "build/t/wheels").iterdir())[0].startswith("extra_base-1.0-")


def test_a_project_installs_with_the_oldest_pip_python_bundles(
    tmp_path: Path, thin_projects: InstalledProjects
) -> None:
    """Python 3.10.0's pip (21.2) makes the tools venv and .venv of a clone with its committed lock; pip-sync needs
    22.2, so .venv's is upgraded. (Resolving runs in the tools venv, with the pip its lock pins: test_install's.)"""
    project = copy_project(thin_projects.get("pip-tools").path, tmp_path / "proj")
    python = python_bundling_pip(OLDEST_PROJECT_PIP, tmp_path / "bin")
    # a tools venv of this project's own, made by the old pip (the session's shared one is made by this one)
    result = make(project, "install", "INSTALLER=pip-tools", "TOOLS=build/tools", f"PYTHON={python}")
    assert "is older than 22.2, which pip-sync needs: upgrading it from build/tools/wheels" in result.output
    assert venv_python(project, "import pip; print(pip.__version__)").strip() != OLDEST_PROJECT_PIP
    assert venv_python(project, "import en_thin_model; print(en_thin_model.__version__)").strip() == "1.0.0"
    assert make(project, "-q", "install", "INSTALLER=pip-tools", "TOOLS=build/tools", f"PYTHON={python}",
                check=False).returncode == 0  # fmt: skip


@pytest.mark.parametrize("version", ["3.81", "3.82"])
def test_the_repository_makefile_refuses_an_old_make(tmp_path: Path, version: str) -> None:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "requirements-dev.txt", tmp_path / "requirements-dev.txt")
    old = [f"MAKE_VERSION={version}", *OLD_MAKE[1:]]
    result = make(tmp_path, *old, "demo", check=False)
    assert result.returncode != 0
    (line,) = result.output.strip().splitlines()
    assert f"GNU make {version} is too old" in line and "brew install make" in line and "gmake demo" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "requirements-dev.txt"]


def test_a_generated_makefile_refuses_an_old_make(tmp_path: Path, rendered: Path) -> None:
    project = copy_project(rendered, tmp_path / "proj")
    before = sorted(p.name for p in project.iterdir())
    result = make(project, *OLD_MAKE, "install", check=False)
    assert result.returncode != 0
    (line,) = result.output.strip().splitlines()
    assert "GNU make 3.81 is too old" in line and "brew install make" in line and "gmake install" in line
    assert sorted(p.name for p in project.iterdir()) == before
    assert [p.name for p in (project / "build").iterdir()] == ["README.md"] and not (project / ".venv").exists()

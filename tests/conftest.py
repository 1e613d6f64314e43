"""Session fixtures: model wheels, the local mirror, one rendering and one installed project.

Expensive things are built once per run and copied per test (see STYLE.md,
"render once per test run, copy per test"): the model wheels (cached across
runs under build/test-cache), the mirror server, a default rendering and a
project whose `make install` has run, so other tests start from its lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mirror import Mirror, MirrorServer
from tests.support.project import MakeResult, copy_project, make, render
from tests.support.wheels import TinyModel, build_real_sm, build_tiny

TINY_MODELS = {
    "md-3.8.0": TinyModel("en_core_web_md", "3.8.0"),
    "md-3.8.1": TinyModel("en_core_web_md", "3.8.1"),
    "sm-3.7.1": TinyModel("en_core_web_sm", "3.7.1", spacy_range=">=3.7.0,<3.8.0"),
}


@pytest.fixture(autouse=True, scope="session")
def isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Shield the suite from the developer's git and copier settings."""
    home = tmp_path_factory.mktemp("config")
    gitconfig = home / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Test\n\temail = test@example.invalid\n[init]\n\tdefaultBranch = main\n")
    os.environ["GIT_CONFIG_GLOBAL"] = str(gitconfig)
    settings = home / "copier-settings.yml"
    settings.write_text("{}\n")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    for name in [n for n in os.environ if n.startswith("GIT_") and n != "GIT_CONFIG_GLOBAL"]:
        del os.environ[name]
    for name in ("OFFLINE", "VENV", "PYTHON", "IMAGE", "SPACY_MODELS_URL", "GITHUB_TOKEN", "MAKEFLAGS"):
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def wheels() -> dict[str, Path]:
    """Real model wheels: the trained en_core_web_sm 3.8.0 and the tiny ones."""
    built = {key: build_tiny(model) for key, model in TINY_MODELS.items()}
    built["sm-3.8.0"] = build_real_sm()
    return built


@pytest.fixture(scope="session")
def mirror(wheels: dict[str, Path]) -> Mirror:
    """GitHub-shaped downloads of every wheel, served on 127.0.0.1."""
    served = Mirror()
    with MirrorServer(served):
        for wheel in wheels.values():
            served.add_download(wheel)
        yield served


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory, mirror: Mirror) -> Path:
    """The template with default answers, its models pointed at the mirror. Read-only."""
    return render(tmp_path_factory.mktemp("rendered") / "proj", spacy_models_url=mirror.download_base)


@dataclass
class Installed:
    """A project after its first `make install`, and what that run did."""

    path: Path
    result: MakeResult
    requests: list

    @property
    def tools(self) -> Path:
        return self.path / "build" / "tools"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory, rendered: Path, mirror: Mirror) -> Installed:
    """`make install` on a fresh rendering: the real first run (lock, wheelhouse, sync)."""
    project = copy_project(rendered, tmp_path_factory.mktemp("installed") / "proj")
    mark = mirror.mark()
    result = make(project, "install")
    return Installed(project, result, mirror.since(mark))


@pytest.fixture
def project(tmp_path: Path, installed: Installed) -> Path:
    """A copy of the installed project without its venvs: its lock and build/ are reused."""
    return copy_project(installed.path, tmp_path / "proj")


@pytest.fixture
def shared_tools(installed: Installed) -> dict[str, str]:
    """make variables that reuse the installed project's pip-tools venv instead of making one."""
    return {"TOOLS": str(installed.tools)}

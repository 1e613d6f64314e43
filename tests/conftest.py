"""Session fixtures: model wheels, the local mirror, the tools venv, one rendering and installed projects.

Expensive things are built once per run and copied per test (STYLE.md, "render
once per test run, copy per test"): the model wheels (cached across runs under
build/test-cache), the mirror server, the tools venv every project shares
(TOOLS), a default rendering, and one installed project per installer, whose
lock and build/ later tests reuse. The machine's model cache is a temporary
one per session (NLP_MODELS_CACHE); a test that counts downloads gets its own.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import prefetch
from tests.support.containers import configure_podman, ensure_base_image, find_engine, remove_image
from tests.support.mirror import Mirror, MirrorServer
from tests.support.package_index import PackageIndex
from tests.support.project import OUTPUTS, REPO, SEPARATOR, MakeResult, copy_project, make, render
from tests.support.wheels import CACHE_DIR, TinyModel, build_plain_wheel, build_real_sm, build_tiny, cache_lock

TINY_MODELS = {
    "md-3.8.0": TinyModel("en_core_web_md", "3.8.0"),
    "md-3.8.1": TinyModel("en_core_web_md", "3.8.1"),
    "sm-3.7.1": TinyModel("en_core_web_sm", "3.7.1", spacy_range=">=3.7.0,<3.8.0"),
}
INSTALLERS = ["pip-tools", "uv"]


@pytest.fixture(autouse=True, scope="session")
def isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Shield the suite from the developer's git, copier and cache settings."""
    home = tmp_path_factory.mktemp("config")
    gitconfig = home / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Test\n\temail = test@example.invalid\n[init]\n\tdefaultBranch = main\n")
    os.environ["GIT_CONFIG_GLOBAL"] = str(gitconfig)
    settings = home / "copier-settings.yml"
    settings.write_text("{}\n")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    for name in [n for n in os.environ if n.startswith("GIT_") and n != "GIT_CONFIG_GLOBAL"]:
        del os.environ[name]
    for name in ("OFFLINE", "VENV", "PYTHON", "IMAGE", "SPACY_MODELS_URL", "SPACY_MODELS_API", "SPACY_MODELS_INDEX",
                 "GITHUB_TOKEN", "HF_TOKEN", "HF_ENDPOINT", "MAKEFLAGS", "INSTALLER", "PLATFORM", "VERBOSE",
                 "NLP_MODELS_AUTO_INSTALL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy", "NETRC"):  # fmt: skip
        os.environ.pop(name, None)
    os.environ["NLP_MODELS_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    os.environ["UV_CACHE_DIR"] = str(tmp_path_factory.mktemp("uv-cache"))
    # Python's default: a module is compiled once and its bytecode kept. With PYTHONDONTWRITEBYTECODE (set on some
    # machines), every `import spacy` in a venv uv filled (uv compiles nothing) compiles spaCy's stack again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # pip writes no bytecode at install (as uv): a pip-sync of spaCy's stack takes 7.5 s instead of 14-18 s here, and
    # the modules a test imports are compiled then. The images' own pip is not touched.
    os.environ["PIP_COMPILE"] = "0"


@pytest.fixture(autouse=True)
def own_uv_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A uv cache per test, deleted with it: uv unpacks a local wheel once per path, so a shared cache
    would gain a copy of spaCy and its dependencies (hundreds of MB) for every project a test installs."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))


@pytest.fixture(autouse=True, scope="session")
def engine_wheel(isolated_environment: None) -> Path:
    """The engine's wheel, built from this checkout (make dist) and offered to every tools venv (TOOLS_FIND_LINKS)."""
    (wheel,) = (REPO / "dist").glob("nlp_modeltools-*.whl")  # built by pytest_configure, before any worker
    os.environ["TOOLS_FIND_LINKS"] = str(wheel.parent)
    return wheel


@pytest.fixture(autouse=True, scope="session")
def shared_tools(engine_wheel: Path) -> Path:
    """One tools venv (nlp-modeltools, pip-tools, uv) for every project of the run, exported as TOOLS.

    Made as the generated Makefile makes it (pip, every file by hash), again whenever tools.txt or the engine
    changes. The engine is this checkout's, even when tools.txt pins an older build of it (a change not yet
    locked): test_engine_package fails then, naming make lock, while the rest of the suite tests the change.
    """
    tools = CACHE_DIR / f"tools-py{sys.version_info[0]}{sys.version_info[1]}"
    requirements = REPO / "template" / "scripts" / "tools.txt"
    stamp, built = tools / ".installed", tools / ".engine-sha256"
    digest = hashlib.sha256(engine_wheel.read_bytes()).hexdigest()
    with cache_lock("tools"):
        if not stamp.is_file() or stamp.read_bytes() != requirements.read_bytes() or _read(built) != digest:
            shutil.rmtree(tools, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True)
            pip = [str(tools / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
            others = tools / "others.txt"  # tools.txt without the engine: it comes from dist/, as built
            others.write_text(re.sub(r"^nlp-modeltools==.*?(?=^\S)", "", requirements.read_text(), flags=re.M | re.S))
            locked = ["--require-hashes", "--no-deps", "--requirement", str(others)]
            subprocess.run([*pip, "download", "--dest", str(tools / "wheels"), *locked], check=True)
            subprocess.run([*pip, "install", "--no-index", "--find-links", str(tools / "wheels"), *locked], check=True)
            subprocess.run([*pip, "install", "--no-deps", "--no-index", str(engine_wheel)], check=True)
            shutil.copyfile(requirements, stamp)
            built.write_text(digest)
        made_for = tools / ".made-for.mk"  # as the Makefile records where it made the venv
        if _read(made_for) != f"tools_made_for := {tools}\n":
            made_for.write_text(f"tools_made_for := {tools}\n")
    os.environ["TOOLS"] = str(tools)
    return tools


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


@pytest.fixture
def fresh_cache(tmp_path: Path) -> dict[str, str]:
    """make variables for an empty machine-wide model cache: what a new machine has."""
    return {"NLP_MODELS_CACHE": str(tmp_path / "model-cache")}


@pytest.fixture(scope="session")
def wheels() -> dict[str, Path]:
    """Real model wheels: the trained en_core_web_sm 3.8.0 and the tiny ones."""
    built = {key: build_tiny(model) for key, model in TINY_MODELS.items()}
    built["sm-3.8.0"] = build_real_sm()
    return built


@pytest.fixture(scope="session")
def mirror(wheels: dict[str, Path]) -> Iterator[Mirror]:
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
    installer: str
    result: MakeResult
    requests: list


class InstalledProjects:
    """One installed project per installer, made the first time a test asks for it."""

    def __init__(self, factory: pytest.TempPathFactory, source: Path, mirror: Mirror, label: str = "installed") -> None:
        self.factory, self.source, self.mirror, self.label = factory, source, mirror, label
        self.done: dict[str, Installed] = {}

    def get(self, installer: str) -> Installed:
        if installer not in self.done:
            project = copy_project(self.source, self.factory.mktemp(f"{self.label}-{installer}") / "proj")
            cache = {"NLP_MODELS_CACHE": str(self.factory.mktemp(f"{self.label}-cache-{installer}"))}
            if self.label == "thin":  # thin's lock is uv's: each installer installs the lock it makes itself
                (project / "requirements.txt").unlink()
            mark = self.mirror.mark()
            result = make(project, "install", f"INSTALLER={installer}", env=cache)
            self.done[installer] = Installed(project, installer, result, self.mirror.since(mark))
        return self.done[installer]


@pytest.fixture(scope="session")
def installed_projects(tmp_path_factory: pytest.TempPathFactory, rendered: Path, mirror: Mirror) -> InstalledProjects:
    return InstalledProjects(tmp_path_factory, rendered, mirror)


@pytest.fixture(scope="session")
def installed(installed_projects: InstalledProjects) -> Installed:
    """`make install` on a fresh rendering with the default installer (pip-tools): the real first run."""
    return installed_projects.get("pip-tools")


@pytest.fixture(params=INSTALLERS)
def installer(request: pytest.FixtureRequest) -> str:
    """For tests about locking, installing, credentials and images: each runs once per installer."""
    return request.param


@pytest.fixture
def installed_with(installer: str, installed_projects: InstalledProjects) -> Installed:
    return installed_projects.get(installer)


@pytest.fixture
def project(tmp_path: Path, installed: Installed) -> Path:
    """A copy of the installed project without its venv: its lock and build/ are reused."""
    return copy_project(installed.path, tmp_path / "proj")


FAST = {"INSTALLER": "uv"}  # for tests not about the installer: the same lock, installed in a second


THIN_WHEEL = "en_thin_model-1.0.0-py3-none-any.whl"  # thin's one model, a plain wheel with a module and no spaCy


@pytest.fixture(scope="session")
def thin(tmp_path_factory: pytest.TempPathFactory, rendered: Path, mirror: Mirror) -> Path:
    """A project whose only locked package is one small model wheel (no spaCy), locked, its wheelhouse made.

    For the image tests that never load a model (identity across machines, model layers across a bump, pushes,
    docker-verify): a model layer is a model layer whatever the wheel holds, and spaCy's stack would only make each
    build, compression and push of those tests ~700 MB. The tests that load models in an image use `installed`.
    """
    with cache_lock("thin"):
        wheel = build_plain_wheel("en_thin_model", "1.0.0", CACHE_DIR / "thin")
    project = copy_project(rendered, tmp_path_factory.mktemp("thin") / "proj")
    (project / "requirements-model.in.url").write_text(f"{mirror.add_download(wheel)}\n")
    (project / "requirements.in").write_text("-r requirements-model.in\n")
    make(project, "lock", "wheelhouse", env=FAST)
    return project


@pytest.fixture(scope="session")
def thin_projects(tmp_path_factory: pytest.TempPathFactory, thin: Path, mirror: Mirror) -> InstalledProjects:
    """`thin`, installed once per installer (its .venv holds one model wheel, no spaCy): for the tests of installing,
    copying, cloning and credentials that never load a pipeline. What loads one uses `installed`."""
    return InstalledProjects(tmp_path_factory, thin, mirror, "thin")


@pytest.fixture
def thin_installed_with(installer: str, thin_projects: InstalledProjects) -> Installed:
    return thin_projects.get(installer)


# ---- images (podman): one engine, base image and cold build for every file of the podman group ----------


@pytest.fixture(scope="session")
def engine() -> Iterator[str]:
    configure_podman(CACHE_DIR / "containers")
    found = find_engine()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true, but neither podman nor docker works here (.ci/run installs podman)")
        pytest.skip("no container engine (podman or docker) here; with CI=true this fails instead")
    yield found
    subprocess.run([found, "image", "prune", "--force"], capture_output=True)  # layers of the session's builds


@pytest.fixture(scope="session")
def base_image(engine: str) -> str:
    return ensure_base_image(engine)


@dataclass
class Built:
    project: Path
    image: str
    result: MakeResult
    requests: list  # what the build asked the model mirror for


@pytest.fixture(scope="session")
def built(
    tmp_path_factory: pytest.TempPathFactory, installed: Installed, engine: str, base_image: str, mirror: Mirror
) -> Iterator[Built]:
    """A cold `make docker`: the installed project's lock and wheelhouse, but no model file nor manifest in build/
    (a clone on a new machine), an empty model cache, offline builds from build/wheels."""
    project = copy_project(installed.path, tmp_path_factory.mktemp("docker") / "proj")
    for made in [*(project / "build").glob("*.whl"), project / "build" / "models.json"]:
        made.unlink()
    image = f"localhost/nlp-template-test-{uuid.uuid4().hex[:8]}:latest"
    settings = [f"BASE_IMAGE={base_image}", f"IMAGE={image}", f"CONTAINER_ENGINE={engine}"]
    cache = {"NLP_MODELS_CACHE": str(tmp_path_factory.mktemp("docker-model-cache"))}
    mark = mirror.mark()
    # --no-cache: the engine keeps layers between test runs; this build must really happen.
    result = make(project, "docker", *settings, "DOCKER_BUILD_ARGS=--no-cache", env=cache)
    yield Built(project, image, result, mirror.since(mark))
    remove_image(engine, image)


# ---- workers (pytest-xdist): each engine's container tests on one worker, the rest spread over all -------------

# Which worker group each file of container tests runs in: podman's tests share one image store and remove what they
# built (two at once untagged each other's model layers mid-build: `FROM localhost/spacy-models:… Trying to pull`);
# Docker Engine's run daemons of their own, made once per group. Biggest group first: it starts at once.
# In podman's group, the files that read the cold build as it was made come before test_docker changes its src/.
ENGINE_GROUPS = {"test_sbom.py": "podman", "test_workflow.py": "podman", "test_docker.py": "podman",
                 "test_image_layers.py": "podman", "test_push.py": "podman",
                 "test_docker_engine.py": "docker"}  # fmt: skip


# Files whose module fixtures cost more than their tests gain from more workers (test_package's packaged project,
# a make install of spaCy's stack; test_publish's index and projects): each runs on one worker, made once.
ONE_WORKER = {"test_package.py", "test_publish.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The engine groups' files first, in ENGINE_GROUPS' order (every worker collects the same order); a container
    test in a file ENGINE_GROUPS does not name would run beside another engine's tests, so it stops the run."""
    stray = [item.nodeid for item in items if item.get_closest_marker("container") and item.path.name not in
             ENGINE_GROUPS]  # fmt: skip
    if stray:
        raise pytest.UsageError(f"container tests outside tests/conftest.py's ENGINE_GROUPS: {', '.join(stray)}")
    order = list(ENGINE_GROUPS)
    items.sort(key=lambda item: order.index(item.path.name) if item.path.name in ENGINE_GROUPS else len(order))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's load scheduling with one scope per engine group, one per ONE_WORKER file and one per other test.
    (Not xdist_group: its loadgroup renames node IDs, which pytest 9 no longer reads, so the marks grouped nothing.)"""
    from xdist.scheduler import LoadScopeScheduling

    class EngineGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            name = nodeid.split("::")[0].rsplit("/", 1)[-1]
            return ENGINE_GROUPS.get(name, name if name in ONE_WORKER else nodeid)

    return EngineGroups(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """On the controller (or a run without workers), before any test: the base image and Docker 26 fetched in the
    background when container tests may run (tests/support/prefetch.py), the package index every worker's pip uses,
    the engine's wheel from this checkout (make dist), and the directory where each worker records what make
    printed. Workers inherit the environment these are named in."""
    if not hasattr(config, "workerinput"):
        if prefetch.wanted(config.args, list(ENGINE_GROUPS)):
            prefetch.start(REPO)
        _share_package_index(config)
        subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "dist"], check=True, capture_output=True)
        os.environ["NLP_TEST_OUTPUTS"] = tempfile.mkdtemp(prefix="nlp-test-outputs-")


def _share_package_index(config: pytest.Config) -> None:
    """PyPI through tests/support/package_index.py, named by a pip config (PIP_CONFIG_FILE) as a mirror would be, so
    that pip-compile finds each file's hash in the JSON API instead of downloading every file of every platform. One
    server for the run, in the controller: each page comes from the registry once, whichever worker asks. Not where
    the developer's pip already names an index or a config file of its own: then pip goes where they say."""
    configured = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    if "PIP_CONFIG_FILE" in os.environ or "PIP_INDEX_URL" in os.environ or ".index-url=" in configured:
        return
    index = PackageIndex().__enter__()
    folder = Path(tempfile.mkdtemp(prefix="nlp-test-pip-"))
    (folder / "pip.conf").write_text(f"[global]\nindex-url = {index.url}\n")
    os.environ["PIP_CONFIG_FILE"] = str(folder / "pip.conf")

    def stop() -> None:
        index.__exit__(None, None, None)
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("PIP_CONFIG_FILE", None)

    config.add_cleanup(stop)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """When the whole suite ran, every message the generated README quotes must have been printed by some test."""
    if hasattr(session.config, "workerinput") or exitstatus not in (0, 1):
        return
    from tests.readme_messages import unprinted

    directory = Path(os.environ["NLP_TEST_OUTPUTS"])
    outputs = [text for log in directory.glob("*.log") for text in log.read_text(errors="replace").split(SEPARATOR)]
    outputs += OUTPUTS
    never = unprinted(session.config, outputs)
    shutil.rmtree(directory, ignore_errors=True)
    if never:
        print(f"\nerror: the README quotes messages no test printed: {never}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

"""Runtime self-install (issue 11): a rendered package installs its locked model at first use.

Real spaCy model wheels (built once with `spacy package`) are served by the local
mirror; each test gets a fresh target virtual environment (its own site-packages,
with spaCy, installer and filelock visible from the dev venv) and runs the rendered
package's own command line in child processes, as a user would. Kills are real
SIGKILLs, made deterministic by an audit hook in the child; the read-only
site-packages is a real read-only bind mount.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from nlp_modeltools.models import manifest
from nlp_modeltools.models.store import ModelStore, default_cache_dir
from tests.support.mirror import Mirror, hostile_servers
from tests.support.project import render
from tests.support.sandbox import read_only, run_with_mounts
from tests.support.wheels import TinyModel, build_tiny

PACKAGE = "my_nlp_project"  # the default answers' package name
MODEL = "en_rt_tiny"
V380, V381, V370 = (
    TinyModel(MODEL, "3.8.0"),
    TinyModel(MODEL, "3.8.1"),
    TinyModel(MODEL, "3.7.0", spacy_range=">=3.7.0,<3.8.0"),
)
ISOLATED = ("NLP_MODELS_AUTO_INSTALL", "NLP_MODELS_OFFLINE", "HF_HUB_OFFLINE", "SPACY_MODELS_URL", "PYTHONNOUSERSITE")


@pytest.fixture(scope="module")
def wheels() -> dict[TinyModel, Path]:
    return {model: build_tiny(model) for model in (V380, V381, V370)}


@pytest.fixture(scope="module")
def rendered_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """src/ of the template rendered with runtime_install: the package under test, as users get it."""
    project = render(tmp_path_factory.mktemp("rendered") / "proj", runtime_install=True)
    assert (project / "src" / PACKAGE / "models.py").is_file()
    return project / "src"


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    with hostile_servers() as served:
        yield served


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def failed_cleanly(self) -> bool:
        """Exit code 1 and no traceback: an expected failure, told in one line."""
        return self.returncode == 1 and "Traceback" not in self.stderr

    @property
    def message(self) -> str:
        """The last line of stderr: what the user reads."""
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


@dataclass
class App:
    """A project checkout (src/ + build/) and a fresh target environment to install models into."""

    root: Path
    venv: Path
    cache: Path
    userbase: Path

    @property
    def package(self) -> Path:
        return self.root / "src" / PACKAGE

    @property
    def purelib(self) -> Path:
        return Path(sysconfig.get_paths(vars={"base": str(self.venv), "platbase": str(self.venv)})["purelib"])

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def lock(self, *pins: dict[str, object]) -> None:
        manifest = {"format": 1, "spacy": "3.8.0", "models": list(pins)}
        (self.package / "models.lock.json").write_text(json.dumps(manifest, indent=2))

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in ISOLATED}
        env.update(
            PYTHONPATH=str(self.root / "src"), NLP_MODELS_CACHE=str(self.cache), PYTHONUSERBASE=str(self.userbase),
            NLP_MODELS_AUTO_INSTALL="1",
        )  # fmt: skip
        return {**env, **extra}

    def argv(self, model: str = MODEL) -> list[str]:
        return [str(self.python), "-m", PACKAGE, "--model", model, "Acme"]

    def run(self, model: str = MODEL, **extra: str) -> Run:
        done = subprocess.run(self.argv(model), capture_output=True, text=True, env=self.env(**extra), timeout=120)
        print(done.stdout, done.stderr)
        return Run(done.returncode, done.stdout, done.stderr)

    def run_read_only(self, **extra: str) -> Run:
        """run() with site-packages bound read-only (a real EROFS, in a private mount namespace)."""
        done = run_with_mounts([read_only(self.purelib)], self.argv(), env=self.env(**extra))
        print(done.stdout, done.stderr)
        return Run(done.returncode, done.stdout, done.stderr)

    def start(self, model: str = MODEL) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(model), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env()
        )

    def installed(self) -> list[str]:
        """The dist-info directories of the model in the target environment."""
        return sorted(p.name for p in self.purelib.glob(f"{MODEL}-*.dist-info"))

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.purelib.glob(".nlp-models-staging-*"))


@pytest.fixture
def app(tmp_path: Path, rendered_src: Path) -> App:
    root = tmp_path / "proj"
    shutil.copytree(rendered_src, root / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    made = App(root, venv, tmp_path / "cache", tmp_path / "userbase")
    made.purelib.mkdir(parents=True, exist_ok=True)
    # spaCy, installer and filelock come from the dev venv, after the target's own site-packages.
    (made.purelib / "dev-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return made


def pin(wheel: Path, url: str | None, **changes: object) -> dict[str, object]:
    name, version = wheel.name.split("-")[:2]
    entry = {
        "name": name, "version": version, "filename": wheel.name,
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(), "url": url, "requires_spacy": ">=3.8.0,<3.9.0",
    }  # fmt: skip
    return {**entry, **changes}


def served(mirror: Mirror, wheels: dict[TinyModel, Path], model: TinyModel) -> dict[str, object]:
    """The pin of a model whose wheel the mirror serves, as `make lock` writes it."""
    return pin(wheels[model], mirror.add_download(wheels[model]), requires_spacy=model.spacy_range)


def wheel_requests(mirror: Mirror, mark: int = 0) -> list:
    return [r for r in mirror.since(mark) if r.path.endswith(".whl")]


def loads(run: Run, model: TinyModel) -> bool:
    """The command line printed the entity only this model's version labels."""
    return run.returncode == 0 and f"{MODEL}: Acme ({model.marker})" in run.stdout


# ---- the main path


def test_disabled_by_default(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    app.lock(served(mirror, wheels, V380))
    run = app.run(NLP_MODELS_AUTO_INSTALL="")
    assert run.failed_cleanly
    assert "`make install`" in run.message and "NLP_MODELS_AUTO_INSTALL=1" in run.message
    assert mirror.since(0) == [] and app.installed() == []


def test_first_use_installs_and_loads(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    app.lock(served(mirror, wheels, V380))
    run = app.run()
    assert loads(run, V380), run.stderr
    assert len(wheel_requests(mirror)) == 1
    assert app.installed() == [f"{MODEL}-3.8.0.dist-info"] and app.leftovers() == []
    assert (app.purelib / f"{MODEL}-3.8.0.dist-info" / "INSTALLER").read_text() == "nlp-template\n"
    assert (app.cache / "sha256" / pin(wheels[V380], None)["sha256"]).is_file(), "kept in the machine's cache"


def test_a_second_process_finds_it_installed(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    app.lock(served(mirror, wheels, V380))
    assert loads(app.run(), V380)
    mark = mirror.mark()
    again = app.run()
    assert loads(again, V380) and "Install" not in again.stderr
    assert mirror.since(mark) == []


def test_the_cache_and_build_dir_come_before_the_network(
    app: App, mirror: Mirror, wheels: dict[TinyModel, Path], tmp_path: Path
) -> None:
    app.lock(served(mirror, wheels, V380))
    assert loads(app.run(), V380)
    mark = mirror.mark()
    shutil.rmtree(app.purelib / f"{MODEL}-3.8.0.dist-info")  # a fresh environment, as far as the model goes
    from_cache = app.run()
    assert loads(from_cache, V380) and "from the model cache" in from_cache.stderr
    shutil.rmtree(app.purelib / f"{MODEL}-3.8.0.dist-info")
    (app.root / "build").mkdir()
    shutil.copy(wheels[V380], app.root / "build")
    from_build = app.run(NLP_MODELS_CACHE=str(tmp_path / "empty-cache"))
    assert loads(from_build, V380) and f"from {app.root / 'build'}" in from_build.stderr
    assert mirror.since(mark) == []


def test_the_runtime_reads_the_engines_manifest_and_store(
    app: App, mirror: Mirror, wheels: dict[TinyModel, Path], tmp_path: Path
) -> None:
    """models.lock.json as the engine's manifest.write writes it; the wheel where the engine's ModelStore keeps it."""
    wheel = Path(shutil.copy(wheels[V380], tmp_path))  # the store makes its entry read-only: not the shared test wheel
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    record = manifest.ModelRecord(MODEL, "3.8.0", wheel.name, sha256, mirror.add_download(wheel), ">=3.8.0,<3.9.0",
                                  "requirements-model.in.url:1")  # fmt: skip
    manifest.write(app.package / "models.lock.json", [record], inputs="0" * 64, spacy="3.8.0")
    xdg = tmp_path / "xdg"  # the cache found as both find it without NLP_MODELS_CACHE
    ModelStore(default_cache_dir({"XDG_CACHE_HOME": str(xdg)})).add(wheel, sha256)
    run = app.run(NLP_MODELS_CACHE="", XDG_CACHE_HOME=str(xdg))
    assert loads(run, V380) and "from the model cache" in run.stderr, run.stderr
    assert mirror.since(0) == [], "found in the store: nothing downloaded"
    assert app.installed() == [f"{MODEL}-3.8.0.dist-info"] and app.leftovers() == []


def test_eight_processes_at_once_install_once(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    url = mirror.add_download(wheels[V380])
    mirror.fault(url, rate=wheels[V380].stat().st_size)  # a one-second download: the processes overlap
    app.lock(pin(wheels[V380], url))
    children = [app.start() for _ in range(8)]
    runs = [Run(child.wait(timeout=120), *child.communicate()) for child in children]
    assert all(loads(run, V380) for run in runs), [run.stderr for run in runs]
    assert len(wheel_requests(mirror)) == 1
    assert sum("Installed" in run.stderr for run in runs) == 1
    assert app.installed() == [f"{MODEL}-3.8.0.dist-info"] and app.leftovers() == []


# ---- faults


KILL_AT = """
import os, runpy, signal, sys
staging, purelib, moment, package = ".nlp-models-staging-", sys.argv.pop(1), sys.argv.pop(1), sys.argv.pop(1)

def kill_at(event, args):
    path = str(args[0]) if args else ""
    target = str(args[1]) if event == "os.rename" else ""
    unpacking = event == "open" and staging in path and "w" in str(args[1] or "")
    finishing = target.startswith(purelib) and target.endswith(".dist-info") and staging not in target
    if (moment == "unpacking" and unpacking) or (moment == "finishing" and finishing):
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(kill_at)
runpy.run_module(package, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("moment", ["unpacking", "finishing"])
def test_a_process_killed_mid_install_leaves_no_half_installed_package(
    app: App, mirror: Mirror, wheels: dict[TinyModel, Path], moment: str
) -> None:
    app.lock(served(mirror, wheels, V380))
    argv = [str(app.python), "-c", KILL_AT, str(app.purelib), moment, *app.argv()[2:]]
    killed = subprocess.run(argv, capture_output=True, text=True, env=app.env(), timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert app.installed() == [] and app.leftovers() != []
    if moment == "finishing":
        assert (app.purelib / MODEL).is_dir(), "killed after the package moved in, before its .dist-info"
    probe = [str(app.python), "-c", f"import importlib.metadata as m; m.version({MODEL!r})"]
    assert subprocess.run(probe, capture_output=True, env=app.env()).returncode == 1, "not seen as installed"
    after = app.run()
    assert loads(after, V380), after.stderr
    assert app.installed() == [f"{MODEL}-3.8.0.dist-info"] and app.leftovers() == []


def test_a_wrong_sha256_is_refused(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    wrong = "ab" * 32
    app.lock({**served(mirror, wheels, V380), "sha256": wrong})
    run = app.run()
    assert run.failed_cleanly
    assert wheels[V380].name in run.message and wrong in run.message and "make upgrade" in run.message
    assert app.installed() == [] and not any((app.cache / "sha256").glob("*"))


def test_a_server_that_fails_twice_is_retried(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    app.lock(served(mirror, wheels, V380))
    mirror.fault(mirror.add_download(wheels[V380]), fail=2, fail_status=503)
    run = app.run()
    assert loads(run, V380), run.stderr
    assert [r.status for r in wheel_requests(mirror)] == [503, 503, 200]


def test_a_404_names_the_file_and_the_fix(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    app.lock(pin(wheels[V380], f"{mirror.download_base}/{MODEL}-3.8.0/{wheels[V380].name}"))  # not served
    run = app.run()
    assert run.failed_cleanly
    assert wheels[V380].name in run.message and "404" in run.message and "name and version right" in run.message


def test_a_model_installed_at_another_version_is_replaced(
    app: App, mirror: Mirror, wheels: dict[TinyModel, Path]
) -> None:
    app.lock(served(mirror, wheels, V380))
    assert loads(app.run(), V380)
    app.lock(served(mirror, wheels, V381))
    run = app.run()
    assert loads(run, V381), run.stderr
    assert "Removed en_rt_tiny 3.8.0" in run.stderr
    assert app.installed() == [f"{MODEL}-3.8.1.dist-info"] and app.leftovers() == []
    assert not (app.purelib / MODEL / f"{MODEL}-3.8.0").exists(), "the old version's files are gone"


def test_a_model_for_another_spacy_is_refused(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    app.lock(served(mirror, wheels, V370))
    before = app.run()  # the lock says so: refused before any download
    assert before.failed_cleanly and mirror.since(0) == []
    assert wheels[V370].name in before.message and "needs spacy>=3.7.0,<3.8.0" in before.message
    app.lock({**served(mirror, wheels, V370), "requires_spacy": None})
    after = app.run()  # only the wheel says so: refused after the download, nothing kept
    assert after.failed_cleanly and "needs spacy<3.8.0,>=3.7.0" in after.message and "make lock" in after.message
    assert app.installed() == [] and not any((app.cache / "sha256").glob("*"))


@pytest.mark.parametrize("variable", ["NLP_MODELS_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_makes_a_missing_model_a_clear_error(
    app: App, mirror: Mirror, wheels: dict[TinyModel, Path], variable: str
) -> None:
    app.lock(served(mirror, wheels, V380))
    run = app.run(**{variable: "1"})
    assert run.failed_cleanly
    assert f"{variable}=1 forbids downloading {wheels[V380].name}" in run.message and "make install" in run.message
    assert mirror.since(0) == []


def test_a_model_missing_from_the_lock_names_the_fix(app: App, mirror: Mirror, wheels: dict[TinyModel, Path]) -> None:
    app.lock(served(mirror, wheels, V380))
    run = app.run("en_other_tiny")
    assert run.failed_cleanly and "not in my_nlp_project/models.lock.json (locked: en_rt_tiny)" in run.message


def test_a_read_only_site_packages_falls_back_to_the_user_site(
    app: App, mirror: Mirror, wheels: dict[TinyModel, Path]
) -> None:
    app.lock(served(mirror, wheels, V380))
    assert loads(app.run(), V380)
    app.lock(served(mirror, wheels, V381))  # the lock moved on; site-packages holds 3.8.0 and turns read-only
    run = app.run_read_only()
    assert loads(run, V381), run.stderr
    assert app.installed() == [f"{MODEL}-3.8.0.dist-info"], "the read-only site-packages is left alone"
    assert list(app.userbase.rglob(f"{MODEL}-3.8.1.dist-info")), "installed into the user site, ahead of it"
    mark = mirror.mark()
    assert loads(app.run(), V381) and mirror.since(mark) == [], "found there by the next process"


def test_a_read_only_site_packages_without_a_user_site_says_make_install(
    app: App, mirror: Mirror, wheels: dict[TinyModel, Path]
) -> None:
    app.lock(served(mirror, wheels, V380))
    run = app.run_read_only(PYTHONNOUSERSITE="1")
    assert run.failed_cleanly
    assert f"{app.purelib} is read-only" in run.message and "Run `make install`" in run.message
    assert mirror.since(0) == []


# ---- versions, as pip reads them


@pytest.mark.parametrize(
    ("installed", "specifier"),
    [
        (version, specifier)
        for version in ("3.8.0", "3.8.0rc1", "3.8.0.post1", "3.8.0.dev0", "3.8.0+cpu", "3.9.0rc1", "3.7.5")
        for specifier in (">=3.8.0", "==3.8.0", "<3.9.0,>=3.8.0", "~=3.8.0", "!=3.8.0", "==3.8.*", ">3.8.0", "<=3.8.0")
    ],
)
def test_the_runtime_version_check_agrees_with_packaging(rendered_src: Path, installed: str, specifier: str) -> None:
    """PEP 440's pre-, post-, dev- and local-version rules: the runtime says what packaging (pip's rules) says."""
    sys.path.insert(0, str(rendered_src))
    try:
        runtime = importlib.import_module(f"{PACKAGE}.models")
    finally:
        sys.path.remove(str(rendered_src))
    expected = SpecifierSet(specifier).contains(Version(installed), prereleases=True)
    assert runtime.spacy_fits(installed, specifier) is expected

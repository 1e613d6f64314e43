"""Inputs from public bug reports, each ending in one line that its advice fixes (issue 18).

scispaCy's sdist-only models at S3-shaped URLs, spaCy's `#egg=` download URLs,
Windows checkouts (CRLF), resolver failures, a model with no upper bound on
spaCy, and lines that belong in another file. Real make, real resolvers,
real `spacy package --build sdist` archives served by the loopback mirror.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST, Installed
from tests.support.mirror import Mirror, MirrorServer
from tests.support.project import copy_project, make, venv_python
from tests.support.wheels import TinyModel, build_tiny

SCI = TinyModel("en_core_sci_tiny", "0.5.4")
SCI_WHEEL = "en_core_sci_tiny-0.5.4-py3-none-any.whl"
S3_PATH = "/ai2-s2-scispacy/releases/v0.5.4/en_core_sci_tiny-0.5.4.tar.gz"
RESOLVED = ("lock: pip-compile", "lock: uv pip compile")


@pytest.fixture(scope="module")
def sdist() -> Path:
    return build_tiny(SCI, build="sdist")


@pytest.fixture
def github() -> Iterator[Mirror]:
    """A releases API and downloads of their own for one test (the session's mirror stays as it is)."""
    served = Mirror()
    with MirrorServer(served):
        yield served


def serve_sdist(mirror: Mirror, sdist: Path) -> str:
    return mirror.add_route(S3_PATH, sdist.read_bytes(), "application/x-tar")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# ---- scispaCy: models published as sdists only


def test_an_sdist_model_is_built_once_reproducibly_and_loads(
    project: Path, mirror: Mirror, sdist: Path, tmp_path: Path, fresh_cache: dict
) -> None:
    url = serve_sdist(mirror, sdist)
    (project / "requirements-model.in.url").write_text(f"{url}#sha256={sha256(sdist)}\n")
    env = {**FAST, **fresh_cache}
    first = make(project, "install", env=env)
    assert f"building a wheel from {sdist.name}" in first.stdout
    wheel = project / "build" / SCI_WHEEL
    locked = (project / "requirements.txt").read_text()
    assert f"en_core_sci_tiny==0.5.4 \\\n    --hash=sha256:{sha256(wheel)}" in locked
    code = "import spacy; print(spacy.load('en_core_sci_tiny')('Acme').ents[0].label_)"
    assert venv_python(project, code).strip() == SCI.marker

    second = make(copy_project(project, tmp_path / "again"), "models", env=env)  # another project, same machine
    assert "building a wheel" not in second.stdout and "Downloading" not in second.stderr

    clone = copy_project(project, tmp_path / "elsewhere" / "clone")  # another clone, machine cache and TMPDIR
    shutil.rmtree(clone / "build")
    other = {**FAST, "NLP_MODELS_CACHE": str(tmp_path / "other-cache"), "TMPDIR": str(tmp_path)}
    rebuilt = make(clone, "install", env=other)
    assert "building a wheel from" in rebuilt.stdout and not any(word in rebuilt.stdout for word in RESOLVED)
    assert sha256(clone / "build" / SCI_WHEEL) == sha256(wheel), "the same sdist builds the same bytes"


def test_a_ranged_model_whose_release_has_only_an_sdist(project: Path, github: Mirror, sdist: Path) -> None:
    github.add_release(sdist)  # an asset list with the .tar.gz alone, as scispaCy's releases have
    (project / "requirements-model.in.url").write_text("")
    (project / "requirements-model.in.range").write_text("en_core_sci_tiny>=0.5,<0.6\n")
    make(project, "models", f"SPACY_MODELS_API={github.api_url}", env=FAST)
    assert "en_core_sci_tiny==0.5.4" in (project / "requirements-model.in").read_text().splitlines()
    assert (project / "build" / SCI_WHEEL).is_file()


def test_a_broken_sdist_names_itself_the_reason_and_the_fix(project: Path, mirror: Mirror, tmp_path: Path) -> None:
    broken = tmp_path / "en_core_sci_tiny-0.5.4"
    broken.mkdir()
    (broken / "setup.py").write_text("raise SystemExit('error: this sdist cannot be built here')\n")
    archive = tmp_path / "en_core_sci_tiny-0.5.4.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(tmp_path), broken.name], check=True)
    url = mirror.add_route("/broken/en_core_sci_tiny-0.5.4.tar.gz", archive.read_bytes(), "application/x-tar")
    (project / "requirements-model.in.url").write_text(url + "\n")
    result = make(project, "models", env=FAST, check=False)
    (line,) = error_lines(result)
    assert "requirements-model.in.url:1: building en_core_sci_tiny-0.5.4.tar.gz failed" in line
    assert "this sdist cannot be built here" in line and "list its wheel" in line
    assert "Traceback" not in result.output and not (project / "build" / SCI_WHEEL).exists()


# ---- spaCy's own download URLs


def test_an_egg_fragment_must_name_the_files_model(project: Path, mirror: Mirror, wheels: dict) -> None:
    url = mirror.add_download(wheels["md-3.8.0"])
    (project / "requirements-model.in.url").write_text(f"{url}#egg=en_core_web_sm==3.8.0\n")
    result = make(project, "models", env=FAST, check=False)
    (line,) = error_lines(result)
    assert "#egg=en_core_web_sm==3.8.0 does not name the file's model (en_core_web_md-3.8.0" in line
    (project / "requirements-model.in.url").write_text(f"{url}#egg=en_core_web_md==3.8.0\n")  # the advice
    make(project, "models", env=FAST)
    assert "en_core_web_md==3.8.0" in (project / "requirements-model.in").read_text().splitlines()


# ---- Windows checkouts


def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True).stdout


def test_a_crlf_clone_runs_no_resolver_and_stays_clean(tmp_path: Path, installed: Installed) -> None:
    origin = copy_project(installed.path, tmp_path / "origin")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "the project, locked")
    clone = tmp_path / "windows"
    subprocess.run(["git", "-c", "core.autocrlf=true", "clone", "-q", str(origin), str(clone)], check=True)
    git(clone, "config", "core.autocrlf", "true")
    shutil.copytree(origin / "build", clone / "build", symlinks=True, ignore=shutil.ignore_patterns("tools"),
                    dirs_exist_ok=True)  # fmt: skip
    result = make(clone, "install", env=FAST)
    assert not any(word in result.output for word in RESOLVED) and "nothing to resolve" in result.output
    assert git(clone, "status", "--porcelain") == ""


def test_crlf_inputs_are_read_as_lf(project: Path) -> None:
    """An editor that writes CRLF (no git involved): the same inputs, the same lock, no resolver."""
    for name in ("requirements.in", "requirements-model.in.url", "requirements-model.in.range", ".env"):
        path = project / name
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    result = make(project, "install", env=FAST)
    assert "nothing to resolve" in result.output and not any(word in result.output for word in RESOLVED)


# ---- resolver failures


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("nonexistent-pkg-nlp-template==1.0", "nonexistent-pkg-nlp-template==1.0"),
        ("thinc<8.3", "thinc<8.3"),
    ],
    ids=["missing", "conflict"],
)
def test_a_resolver_failure_is_one_line_naming_the_requirement(
    project: Path, installer: str, line: str, named: str
) -> None:
    lock = (project / "requirements.txt").read_text()
    with (project / "requirements.in").open("a") as requirements:
        requirements.write(line + "\n")
    number = len((project / "requirements.in").read_text().splitlines())
    result = make(project, "lock", f"INSTALLER={installer}", env={}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.output
    (message,) = error_lines(result)
    assert f"requirements.in:{number} ({named})" in message and "cannot be met" in message
    assert "requirements.txt was kept as it was" in message
    assert (project / "requirements.txt").read_text() == lock
    lines = (project / "requirements.in").read_text().splitlines()[:-1]
    (project / "requirements.in").write_text("\n".join(lines) + "\n")  # the advice: remove the line
    make(project, "lock", f"INSTALLER={installer}")


def test_a_package_with_no_wheel_here_is_one_line_naming_the_requirement(project: Path, installer: str) -> None:
    """pip-compile finds no file for this machine; uv's universal lock takes it, and the wheelhouse finds none."""
    with (project / "requirements.in").open("a") as requirements:
        requirements.write("pywin32==306\n")
    number = len((project / "requirements.in").read_text().splitlines())
    result = make(project, "install", f"INSTALLER={installer}", env={}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.output
    (message,) = error_lines(result)
    assert f"requirements.in:{number} (pywin32==306) cannot be met" in message
    assert "marker" in message or "make lock" in message
    lines = (project / "requirements.in").read_text().splitlines()[:-1]
    (project / "requirements.in").write_text("\n".join([*lines, 'pywin32==306 ; sys_platform == "win32"']) + "\n")
    if installer == "uv":  # the advice: a marker for the platforms it serves (a pip-tools lock leaves it out)
        make(project, "install", f"INSTALLER={installer}")


# ---- models and spaCy


def test_a_model_without_an_upper_bound_on_spacy_is_a_warning(project: Path, mirror: Mirror) -> None:
    loose = build_tiny(TinyModel("en_core_loose_tiny", "1.0.0", spacy_range=">=3.5.0"))
    (project / "requirements-model.in.url").write_text(mirror.add_download(loose) + "\n")
    result = make(project, "check-models", env=FAST)
    assert "check-models: en_core_loose_tiny==1.0.0 needs spacy>=3.5.0: fits" in result.stdout
    assert "check-models: warning: en_core_loose_tiny==1.0.0 sets no upper bound on spaCy" in result.stdout


def test_check_models_names_every_model_and_the_releases_that_fit(project: Path, github: Mirror, wheels: dict) -> None:
    old = wheels["sm-3.7.1"]
    for wheel in (old, wheels["sm-3.8.0"]):
        github.add_release(wheel)
    make(project, "links", f"SPACY_MODELS_API={github.api_url}", env=FAST)
    md = github.add_download(wheels["md-3.8.0"])
    (project / "requirements-model.in.url").write_text(f"{md}\n{github.add_download(old)}\n")
    result = make(project, "check-models", env=FAST, check=False)
    assert result.returncode != 0
    assert "check-models: en_core_web_md==3.8.0 needs spacy<3.9.0,>=3.8.0: fits" in result.stdout
    assert "check-models: en_core_web_sm==3.7.1 needs spacy<3.8.0,>=3.7.0: does not fit" in result.stdout
    assert "releases of en_core_web_sm made for spaCy 3.8 (spaCy's model versions follow its own): 3.8.0" in (
        result.stdout
    )


# ---- lines in the wrong file, each named for what it is


@pytest.mark.parametrize(
    ("file", "line", "named", "fixed"),
    [
        ("requirements-model.in.url", "en_core_web_md==3.8.0", "is a model by name", "requirements-model.in.range"),
        ("requirements-model.in.range", "{url}", "is a URL or a file", "requirements-model.in.url"),
        ("requirements-model.in.url", "<<<<<<< HEAD", "is a merge-conflict marker", None),
        ("requirements-model.in.range", "-r other.txt", "is a pip option", None),
    ],
    ids=["pin-in-url-file", "url-in-range-file", "conflict-marker", "option"],
)
def test_a_line_in_the_wrong_place_is_named_and_its_advice_works(
    project: Path, github: Mirror, wheels: dict, file: str, line: str, named: str, fixed: str | None
) -> None:
    url = github.add_download(wheels["md-3.8.0"])
    github.add_release(wheels["md-3.8.0"])
    line = line.format(url=url)
    for name in ("requirements-model.in.url", "requirements-model.in.range"):
        (project / name).write_text("")
    (project / file).write_text(f"# a comment\n{line}\n")
    settings = [f"SPACY_MODELS_API={github.api_url}"]
    result = make(project, "models", *settings, env=FAST, check=False)
    (message,) = error_lines(result)
    assert f"{file}:2 {named}" in message
    (project / file).write_text("# a comment\n")
    if fixed:  # the advice: move the line where it belongs
        (project / fixed).write_text(line + "\n")
    make(project, "models", *settings, env=FAST)


def test_upgrade_keeps_spacys_series_for_a_model_without_an_upper_bound(project: Path, mirror: Mirror) -> None:
    loose = build_tiny(TinyModel("en_core_loose_tiny", "1.0.0", spacy_range=">=3.5.0"))
    (project / "requirements-model.in.url").write_text(mirror.add_download(loose) + "\n")
    requirements = project / "requirements.in"
    text = requirements.read_text()
    spacy_line = next(line for line in text.splitlines() if line.startswith("spacy"))

    def require(spacy: str) -> None:
        requirements.write_text(text.replace(spacy_line, spacy))

    require("spacy>=3.7,<3.8")
    make(project, "lock", env=FAST)
    assert "spacy==3.7." in (project / "requirements.txt").read_text()
    require("spacy>=3.7")  # nothing says which series any more
    before = (project / "requirements.txt").read_text()
    result = make(project, "upgrade", env=FAST, check=False)
    (line,) = error_lines(result)
    assert "make upgrade would move spaCy 3.7." in line and "en_core_loose_tiny==1.0.0" in line
    assert "has no upper bound; nothing was changed" in line and "spacy>=3.8,<3.9" in line
    assert (project / "requirements.txt").read_text() == before
    require("spacy>=3.8,<3.9")  # the advice: say which series
    make(project, "upgrade", env=FAST)
    assert "spacy==3.8." in (project / "requirements.txt").read_text()

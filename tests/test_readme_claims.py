"""What the generated README and .env.example say is what happens (issue 21), each claim run for real."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tests.conftest import FAST, Installed, InstalledProjects
from tests.support.mirror import Mirror
from tests.support.project import copy_project, make, render
from tests.support.wheels import TinyModel, build_tiny

SM_WHEEL = "en_core_web_sm-3.8.0-py3-none-any.whl"


def errors(result: object) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]  # type: ignore[attr-defined]


def test_a_bad_env_line_stops_even_a_warm_install_and_test(tmp_path: Path, thin_projects: InstalledProjects) -> None:
    project = copy_project(thin_projects.get("pip-tools").path, tmp_path / "proj")
    make(project, "install")  # .venv made for this directory: from here on, warm
    assert make(project, "-q", "install", check=False).returncode == 0
    for line, problem in (
        ('MYSECRET="hunter2"', "is quoted"),
        ("MYSECRET=a\\\\#b", "holds a '#' make reads as a comment"),
    ):
        env = (project / ".env").read_text()
        (project / ".env").write_text(env + line + "\n")
        number = len(env.splitlines()) + 1
        for target in ("install", "test"):
            result = make(project, target, check=False)
            assert result.returncode != 0 and f".env:{number}: the value of MYSECRET {problem}" in result.stderr
            assert "hunter2" not in result.output and "a\\\\#b" not in result.output
        (project / ".env").write_text(env)  # the advice: fix (here: drop) the line
    assert make(project, "install").returncode == 0


def test_a_clone_without_env_is_told_once(tmp_path: Path, installed: Installed) -> None:
    project = copy_project(installed.path, tmp_path / "proj")
    (project / ".env").unlink()
    first, second = make(project, "install", env=FAST), make(project, "install", env=FAST)
    said = "make: this project has no .env, so it runs with the Makefile's settings alone"
    assert first.output.count(said) == 1 and "cp .env.example .env && chmod 600 .env" in first.output
    assert said not in second.output


def test_plain_make_lists_the_targets_and_creates_nothing(tmp_path: Path, mirror: Mirror) -> None:
    project = render(tmp_path / "proj", spacy_models_url=mirror.download_base)
    before = sorted(p.name for p in project.iterdir())
    result = make(project, env={"TOOLS": "build/tools"})
    assert "  install " in result.stdout and sorted(p.name for p in project.iterdir()) == before


def test_the_set_up_example_is_copy_paste_safe(installed: Installed) -> None:
    readme = (installed.path / "README.md").read_text()
    (line,) = [line.strip() for line in readme.splitlines() if line.strip().startswith(".venv/bin/python -m ")]
    done = subprocess.run(["bash", "-c", line], cwd=installed.path, capture_output=True, text=True)
    assert done.returncode == 0 and "$1 billion (MONEY)" in done.stdout, done.stdout + done.stderr


def test_upgrade_names_a_file_replaced_at_the_same_version(project: Path) -> None:
    wheel = project / "build" / SM_WHEEL
    before = hashlib.sha256(wheel.read_bytes()).hexdigest()
    wheel.unlink()
    wheel.write_bytes(build_tiny(TinyModel("en_core_web_sm", "3.8.0")).read_bytes())  # republished, other bytes
    after = hashlib.sha256(wheel.read_bytes()).hexdigest()
    result = make(project, "upgrade", env=FAST)
    line = f"  en_core_web_sm 3.8.0: file changed, sha256 {before[:12]}… -> {after[:12]}… (from http://127.0.0.1:"
    assert line in result.stdout and result.stdout.count(f"/{SM_WHEEL})") == 1


def test_a_refused_download_is_not_left_in_build(project: Path, mirror: Mirror, wheels: dict) -> None:
    old = wheels["sm-3.7.1"]  # made for spaCy 3.7: refused
    (project / "requirements-model.in.url").write_text(mirror.add_download(old) + "\n")
    result = make(project, "models", env=FAST, check=False)
    assert result.returncode != 0 and "needs spacy<3.8.0,>=3.7.0" in result.stderr
    assert not (project / "build" / old.name).exists()


def test_a_cache_path_that_cannot_be_made_names_the_fix(project: Path, mirror: Mirror, wheels: dict) -> None:
    (project / "requirements-model.in.url").write_text(mirror.add_download(wheels["md-3.8.0"]) + "\n")
    result = make(project, "models", env={**FAST, "NLP_MODELS_CACHE": "/proc/nlp-template-cache"}, check=False)
    (line,) = errors(result)
    assert "cannot write in /proc/nlp-template-cache" in line and "set NLP_MODELS_CACHE to a directory" in line

"""Rendering: the questions and their validators, the file tree, the post-copy hook."""

from __future__ import annotations

import itertools
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.lint_dockerfile import hadolint
from tests.support.project import REPO, make, render, tree

COPIER_YML = yaml.safe_load((REPO / "copier.yml").read_text())
MODELTOOLS = ["__init__", "common", "credentials", "github", "lockfile", "net", "project", "versions", "wheels"]
CONTRACT_TARGETS = ["help", "models", "lock", "install", "upgrade", "links", "test", "wheelhouse", "docker", "clean"]


def expected_tree(package: str) -> set[str]:
    return {
        ".copier-answers.yml", ".env", ".env.example", ".gitignore", ".dockerignore",
        "Makefile", "README.md", "Dockerfile", "pyproject.toml",
        "requirements.in", "requirements-model.in.url", "requirements-model.in",
        "scripts/models.py",
        *(f"scripts/modeltools/{name}.py" for name in MODELTOOLS),
        f"src/{package}/__init__.py", f"src/{package}/__main__.py", f"src/{package}/nlp.py",
        "tests/test_nlp.py",
    }  # fmt: skip


def answer_matrix() -> list[pytest.param]:
    """Multiply what interacts (Python version x Prodigy); cycle the rest so each value is seen."""
    versions = COPIER_YML["python_version"]["choices"]
    names = itertools.cycle(["My NLP Project", "Ünïcode Tools 2", "a", "Some-Thing  else"])
    models = itertools.cycle(
        [["en_core_web_sm==3.8.0"], ["en_core_web_sm==3.8.0", "de_core_news_md==3.8.0"], ["en_core_web_trf>=3.8,<3.9"]]
    )
    cases = []
    for version, prodigy in itertools.product([versions[0], versions[-1]], [False, True]):
        answers = {"python_version": version, "use_prodigy": prodigy, "project_name": next(names),
                   "spacy_models": next(models)}  # fmt: skip
        case_id = f"py{version.replace('.', '')}-{'prodigy' if prodigy else 'plain'}"
        cases.append(pytest.param(answers, id=case_id))
    return cases


@pytest.mark.parametrize("answers", answer_matrix())
def test_every_variant_renders_completely(tmp_path: Path, answers: dict) -> None:
    project = render(tmp_path / "proj", **answers)
    saved = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert tree(project) == expected_tree(saved["package_name"])
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            text = path.read_text()
            assert "{{" not in text and "{%" not in text, f"leftover Jinja in {path.name}"
    help_text = make(project, env={"PYTHON": "python3"}).stdout
    for target in CONTRACT_TARGETS:
        assert f"\n  {target} " in "\n" + help_text, f"make help does not list {target}"
    assert saved["python_version"] == answers["python_version"]
    assert f"PYTHON_VERSION := {answers['python_version']}" in (project / "Makefile").read_text()
    requirements = (project / "requirements.in").read_text()
    assert "spacy>=3.8,<3.9" in requirements
    assert ("prodigy" in requirements) == answers["use_prodigy"]


def test_default_answers(rendered: Path) -> None:
    answers = yaml.safe_load((rendered / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == "my-nlp-project"
    assert answers["package_name"] == "my_nlp_project"
    assert answers["docker_base_image"] == "python:3.11-slim"
    assert answers["spacy_models"] == ["en_core_web_sm==3.8.0"]
    assert "spacy_requirement" not in answers
    url_lines = [line for line in (rendered / "requirements-model.in.url").read_text().splitlines() if "://" in line]
    assert url_lines == [f"{answers['spacy_models_url']}/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl"]
    assert "en_core_web_sm==3.8.0" in (rendered / "requirements-model.in").read_text().splitlines()
    assert "-r requirements-model.in" in (rendered / "requirements.in").read_text().splitlines()


def test_models_with_ranges_go_to_requirements_in(tmp_path: Path) -> None:
    project = render(tmp_path / "p", spacy_models=["en_core_web_sm>=3.7,<3.9", "de_core_news_sm==3.8.0"])
    assert "en_core_web_sm>=3.7,<3.9" in (project / "requirements.in").read_text().splitlines()
    urls = (project / "requirements-model.in.url").read_text()
    assert "de_core_news_sm-3.8.0/de_core_news_sm-3.8.0-py3-none-any.whl" in urls
    assert "en_core_web_sm" not in urls
    assert (project / "requirements-model.in").read_text().splitlines()[1:] == ["de_core_news_sm==3.8.0"]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_slug": "My Proj"}, "not a valid slug"),
        ({"project_slug": "9lives"}, "not a valid slug"),
        ({"package_name": "1abc"}, "not a Python identifier"),
        ({"package_name": "my-pkg"}, "not a Python identifier"),
        ({"package_name": "class"}, "Python keyword"),
        ({"spacy_models": ["en_core_web_sm"]}, "write it as name==version"),
        ({"spacy_models": ["en_core_web_sm==latest"]}, "write it as name==version"),
        ({"spacy_models": ["EnCoreWeb==3.8.0"]}, "a model name looks like en_core_web_sm"),
        ({"spacy_models": ["en_core_web_sm==3.7.1"]}, "built for spaCy 3.7, not 3.8"),
        ({"spacy_models": "en_core_web_sm==3.8.0"}, "Give a YAML list"),
        ({"spacy_version": "3"}, "not a minor series"),
        ({"spacy_models_url": "github.com/explosion"}, "is not a URL"),
        ({"spacy_models_url": "https://user:secret@models.example.com"}, "Do not put credentials"),
        ({"docker_base_image": "python 3.11"}, "not an image reference"),
        ({"python_version": "3.9"}, "3.9"),
    ],
)
def test_bad_answers_are_refused_with_the_fix(tmp_path: Path, answers: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(tmp_path / "proj", **answers)
    assert not (tmp_path / "proj" / "Makefile").exists()


def test_the_cli_refuses_a_bad_answer_and_says_why(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref=HEAD",
         "-d", "project_slug=My Proj", str(REPO), str(tmp_path / "proj")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not a valid slug" in result.stderr


def test_hook_starts_git_and_a_private_env_file(rendered: Path) -> None:
    assert (rendered / ".git").is_dir()
    env = rendered / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert env.read_text() == (rendered / ".env.example").read_text()
    ignored = subprocess.run(["git", "check-ignore", ".env", "build/x.whl", ".venv"], cwd=rendered, capture_output=True)
    assert ignored.returncode == 0
    assert subprocess.run(["git", "check-ignore", "requirements.txt"], cwd=rendered).returncode == 1


def test_hook_leaves_an_enclosing_repository_and_an_existing_env_alone(tmp_path: Path) -> None:
    outer = tmp_path / "monorepo"
    outer.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=outer, check=True)
    project = outer / "nlp"
    project.mkdir()
    (project / ".env").write_text("PRODIGY_KEY=kept\n")
    render(project)
    assert not (project / ".git").exists()
    assert (project / ".env").read_text() == "PRODIGY_KEY=kept\n"


def test_answers_file_holds_no_secret_question() -> None:
    secrets = [name for name, spec in COPIER_YML.items() if isinstance(spec, dict) and spec.get("secret")]
    assert secrets == []
    questions = [name for name in COPIER_YML if not name.startswith("_")]
    for name in ("project_name", "project_slug", "package_name", "python_version", "spacy_version",
                 "spacy_models", "spacy_models_url", "use_prodigy", "docker_base_image"):  # fmt: skip
        assert name in questions
        if name != "spacy_requirement":
            assert COPIER_YML[name].get("help"), f"{name} has no help"


def test_the_dockerfile_passes_hadolint_and_avoids_what_old_podman_lacks(rendered: Path) -> None:
    result = hadolint(rendered / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (rendered / "Dockerfile").read_text()
    assert "# syntax=" not in dockerfile and "<<" not in dockerfile and "--link" not in dockerfile
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile
    assert "--mount=type=secret" in dockerfile and "ARG PIP" not in dockerfile
    ignored = (rendered / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and "*" in ignored and "!build/wheels/" in ignored

"""Rendering: the file tree and contents of every variant of the answers, and the post-copy hook.

The answer matrix follows STYLE.md: the choices come from copier.yml; what interacts
is multiplied (the oldest and newest python_version x use_prodigy), the rest cycles.
"""

from __future__ import annotations

import itertools
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.lint_dockerfile import hadolint
from tests.support.project import REPO, make, render, tree

COPIER_YML = yaml.safe_load((REPO / "copier.yml").read_text())
CHOICES = {name: spec["choices"] for name, spec in COPIER_YML.items() if isinstance(spec, dict) and "choices" in spec}
QUESTIONS = {name: spec for name, spec in COPIER_YML.items() if not name.startswith("_")}
CONTRACT_TARGETS = [
    "help", "models", "lock", "install", "upgrade", "links", "test", "wheelhouse", "docker", "clean",
    "package", "publish", "check-secrets",
]  # fmt: skip
MODEL_LISTS = [
    ["en_core_web_sm==3.8.0"],
    ["en_ner_bc5cdr_md==0.5.4", "de_contracts_lg>=1.0,<2"],
    ["en_acme_ner>=1.0,<2", "en_core_web_trf~=3.8.0", "xx_sent_ud_sm>=3.8.0rc1,!=3.8.1"],
    ["Acme.NER-Model==2.0.post1", "en_core_web_md===3.8.0", "de_core_news_sm==3.8.0"],
]
PROJECT_NAMES = ["My NLP Project", "Ünïcode Tools 2", "a", 'O\'Brien "NLP" tools']
HOOK = REPO / "hooks" / "post_copy.py"


def expected_tree(package: str, runtime_install: bool, ci: str) -> set[str]:
    """Every rendered file but those under scripts/, whose layout belongs to the build core."""
    files = {
        ".copier-answers.yml", ".env", ".env.example", ".gitignore", ".gitattributes", ".dockerignore",
        ".pre-commit-config.yaml",
        "Makefile", "README.md", "Dockerfile", "pyproject.toml", "pipelines/README.md", "build/README.md",
        "requirements.in", "requirements-model.in.url", "requirements-model.in.range", "requirements-model.in",
        f"src/{package}/__init__.py", f"src/{package}/__main__.py", f"src/{package}/nlp.py", "tests/test_nlp.py",
    }  # fmt: skip
    if runtime_install:
        files.add(f"src/{package}/models.py")
    if ci == "github":
        files.add(".github/workflows/ci.yml")
    return files


def options() -> itertools.cycle:
    """installer x runtime_install x ci, half of the product: each pair of values meets once in four cases."""
    product = itertools.product(CHOICES["installer"], [False, True], CHOICES["ci"])
    return itertools.cycle(
        (installer, runtime, ci)
        for installer, runtime, ci in product
        if (CHOICES["installer"].index(installer) + runtime + CHOICES["ci"].index(ci)) % 2 == 0
    )


def answer_matrix() -> list[pytest.param]:
    versions = CHOICES["python_version"]
    names, models, rest = itertools.cycle(PROJECT_NAMES), itertools.cycle(MODEL_LISTS), options()
    cases = []
    for version, prodigy in itertools.product([versions[0], versions[-1]], [False, True]):
        installer, runtime_install, ci = next(rest)
        answers = {
            "python_version": version, "use_prodigy": prodigy, "project_name": next(names),
            "spacy_models": next(models), "installer": installer, "runtime_install": runtime_install, "ci": ci,
        }  # fmt: skip
        case_id = f"py{version.replace('.', '')}-{'prodigy' if prodigy else 'plain'}-{installer}-{ci}"
        cases.append(pytest.param(answers, id=case_id + ("-runtime" if runtime_install else "")))
    return cases


def is_exact(model: str) -> bool:
    return bool(re.fullmatch(r"[^=<>!~ ]+ *== *[0-9][0-9a-z.]*", model))


@pytest.mark.parametrize("answers", answer_matrix())
def test_every_variant_renders_completely(tmp_path: Path, answers: dict) -> None:
    project = render(tmp_path / "proj", **answers)
    saved = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert {key: saved[key] for key in answers} == answers
    files = tree(project)
    assert {name for name in files if not name.startswith("scripts/")} == expected_tree(
        saved["package_name"], answers["runtime_install"], answers["ci"]
    )
    assert not [name for name in files if name.startswith("scripts/") and name.endswith(".py")], "engine code"
    package_code = "".join((project / name).read_text() for name in files if name.startswith("src/"))
    imported = set(re.findall(r"^\s*(?:from|import)\s+([\w.]+)", package_code, re.MULTILINE))
    if not answers["runtime_install"]:  # the loader only: no HTTP, no store, no lock in the user's package
        assert not {"requests", "urllib", "urllib.request", "http.client", "socket", "filelock", "installer"} & imported
    for name in files:
        text = (project / name).read_text()
        assert "{%" not in re.sub(r"\$\{\{.*?\}\}", "", text), f"leftover Jinja in {name}"
        assert "{{" not in re.sub(r"\$\{\{.*?\}\}", "", text), f"leftover Jinja in {name}"
    help_text = make(project, env={"PYTHON": "python3"}).stdout
    for target in CONTRACT_TARGETS:
        assert f"\n  {target} " in "\n" + help_text, f"make help does not list {target}"
    assert f"PYTHON_VERSION := {answers['python_version']}" in (project / "Makefile").read_text()

    requirements = (project / "requirements.in").read_text()
    assert "spacy>=3.8,<3.9" in requirements.splitlines()
    assert ("prodigy" in requirements) == answers["use_prodigy"]
    assert ("\ninstaller>=" in requirements and "\nfilelock>=" in requirements) == answers["runtime_install"]
    assert not any(re.match(r"[A-Za-z0-9._-]+", model)[0] in requirements for model in answers["spacy_models"])
    exact = [model for model in answers["spacy_models"] if is_exact(model)]
    urls = [line for line in (project / "requirements-model.in.url").read_text().splitlines() if "://" in line]
    assert len(urls) == len(exact) and all(url.endswith("-py3-none-any.whl") for url in urls)
    ranges = [line for line in (project / "requirements-model.in.range").read_text().splitlines() if line[:1].isalnum()]
    assert ranges == [model for model in answers["spacy_models"] if model not in exact]

    workflow = project / ".github/workflows/ci.yml"
    if answers["ci"] == "github":
        assert ("PRODIGY_KEY" in workflow.read_text()) == answers["use_prodigy"]
        assert f"PYTHON_VERSION: {answers['python_version']!r}".replace("'", '"') in workflow.read_text()


@pytest.mark.parametrize("answers", answer_matrix()[::3])
def test_the_linters_the_project_ships_find_nothing_to_change(tmp_path: Path, answers: dict) -> None:
    project = render(tmp_path / "proj", **answers)
    ruff = Path(sys.executable).parent / "ruff"
    for command in ([ruff, "check", "--no-cache", "."], [ruff, "format", "--check", "--no-cache", "."]):
        result = subprocess.run(command, cwd=project, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    result = hadolint(project / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_answers(rendered: Path) -> None:
    answers = yaml.safe_load((rendered / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == "my-nlp-project"
    assert answers["package_name"] == "my_nlp_project"
    assert answers["docker_base_image"] == "python:3.11-slim"
    assert answers["spacy_models"] == ["en_core_web_sm==3.8.0"]
    assert (answers["installer"], answers["runtime_install"], answers["ci"]) == ("pip-tools", False, "github")
    url_lines = [line for line in (rendered / "requirements-model.in.url").read_text().splitlines() if "://" in line]
    assert url_lines == [f"{answers['spacy_models_url']}/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl"]
    assert "en_core_web_sm==3.8.0" in (rendered / "requirements-model.in").read_text().splitlines()
    assert "-r requirements-model.in" in (rendered / "requirements.in").read_text().splitlines()
    assert (rendered / "src/my_nlp_project/__init__.py").read_text().startswith('"""My NLP Project."""\n')


def test_ranged_models_go_to_the_range_file_and_never_to_requirements_in(tmp_path: Path) -> None:
    project = render(tmp_path / "p", spacy_models=["en_core_web_sm>=3.7,<3.9", "de_core_news_sm==3.8.0"])
    range_lines = (project / "requirements-model.in.range").read_text().splitlines()
    assert [line for line in range_lines if not line.startswith("#")] == ["en_core_web_sm>=3.7,<3.9"]
    assert "en_core_web_sm" not in (project / "requirements.in").read_text()
    urls = (project / "requirements-model.in.url").read_text()
    assert "de_core_news_sm-3.8.0/de_core_news_sm-3.8.0-py3-none-any.whl" in urls
    assert "en_core_web_sm-" not in urls
    assert [line for line in (project / "requirements-model.in").read_text().splitlines() if line[:1].isalpha()] == [
        "de_core_news_sm==3.8.0"
    ]


def test_every_question_has_a_type_and_help_and_every_free_text_one_a_validator() -> None:
    assert list(QUESTIONS) == [
        "project_name", "project_slug", "package_name",  # names
        "python_version", "spacy_version",  # versions
        "spacy_models", "spacy_models_url",  # models
        "use_prodigy", "installer", "runtime_install", "ci",  # options
        "docker_base_image",  # image
    ]  # fmt: skip
    for name, spec in QUESTIONS.items():
        assert spec.get("type") and spec.get("help"), name
        assert not spec.get("secret"), f"{name}: never ask for a credential"
        # copier itself refuses anything but a choice (listing them) and casts any answer to a bool.
        assert spec.get("validator") or "choices" in spec or spec["type"] == "bool", f"{name} has no validator"
    assert CHOICES["installer"][0] == "pip-tools" and CHOICES["ci"][0] == "github"


def test_hook_starts_git_and_a_private_env_file(rendered: Path) -> None:
    assert (rendered / ".git").is_dir()
    env = rendered / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert env.read_text() == (rendered / ".env.example").read_text()
    ignored = subprocess.run(["git", "check-ignore", ".env", "build/x.whl", ".venv", ".cache/nlp-models"], cwd=rendered)
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


def run_hook(project: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, str(HOOK), *args], cwd=project, capture_output=True, text=True, check=True)
    return result.stdout


def test_hook_is_idempotent_and_prints_the_next_steps(tmp_path: Path) -> None:
    project = tmp_path / "my proj"
    project.mkdir()
    (project / ".env.example").write_text("PRODIGY_KEY=\n")
    first = run_hook(project, "--package=my_pkg", "--runtime-install=false")
    assert "Started a git repository" in first and "Created .env" in first
    assert "cd 'my proj'" in first and "make install" in first and "-m my_pkg" in first
    assert "NLP_MODELS_AUTO_INSTALL" not in first
    (project / ".env").write_text("PRODIGY_KEY=mine\n")
    second = run_hook(project, "--package=my_pkg", "--runtime-install=true", "--operation=copy")
    assert "Started" not in second and "Created" not in second
    assert "NLP_MODELS_AUTO_INSTALL=1 and my_pkg.load(name)" in second
    assert (project / ".env").read_text() == "PRODIGY_KEY=mine\n"
    assert run_hook(project, "--operation=update") == ""


def test_hook_prints_no_package_name_that_is_not_an_identifier(tmp_path: Path) -> None:
    out = run_hook(tmp_path, "--package=x\x1b[2J$(id)")
    assert "-m <package>" in out and "\x1b" not in out and "$(id)" not in out


def test_the_dockerfile_passes_hadolint_and_avoids_what_old_podman_lacks(rendered: Path) -> None:
    result = hadolint(rendered / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (rendered / "Dockerfile").read_text()
    assert "# syntax=" not in dockerfile and "<<" not in dockerfile and "--link" not in dockerfile
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile
    ignored = (rendered / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and "*" in ignored and "!build/wheels/" in ignored


def test_a_project_holds_its_own_code_and_a_pin_not_the_engine(tmp_path: Path) -> None:
    """The engine is nlp-modeltools, pinned by hash in scripts/tools.txt; a project's Python is its own: at most
    250 lines with runtime_install off, 450 with it on (as wc -l counts *.py under scripts/, src/ and tests/)."""
    for runtime, budget in ((False, 250), (True, 450)):
        project = render(tmp_path / f"runtime-{runtime}", runtime_install=runtime)
        files = [p for folder in ("scripts", "src", "tests") for p in (project / folder).rglob("*.py")]
        lines = sum(len(p.read_text().splitlines()) for p in files)
        print(f"runtime_install={runtime}: {len(files)} Python files, {lines} lines")
        assert lines <= budget, f"{lines} lines of Python in a project with runtime_install={runtime}"
        assert not list((project / "scripts").rglob("*.py")), "no engine code in scripts/"
        assert re.search(r"^nlp-modeltools==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}", (project / "scripts" / "tools.txt")
                         .read_text(), re.M)  # fmt: skip

"""Answers are data, never code.

The validators refuse make, shell, Python and pip syntax, and say what to type
instead; and the template renders every answer safely even when no validator ran
(a template version with weaker ones, a hand-edited .copier-answers.yml replayed
by `copier update`): importing the package and running make create no marker file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from copier import run_copy, run_update
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from tests.support.project import REPO, render
from tests.support.template_repo import (
    clone_worktree,
    copy_and_commit,
    git_save,
    load_answers,
    strip_validators,
    tagged_worktree,
)

COPIER_YML = {name: spec for name, spec in yaml.safe_load((REPO / "copier.yml").read_text()).items() if name[0] != "_"}
PACKAGE = "evil_pkg"
REQUIREMENT_FILES = [
    "requirements.in",
    "requirements-model.in",
    "requirements-model.in.url",
    "requirements-model.in.range",
]
# Models of any shape that copier must accept: outside spaCy's naming pattern, exact and by range.
ODD_MODELS = [
    "en_ner_bc5cdr_md==0.5.4",  # scispaCy
    "de_contracts_lg>=1.0,<2",  # a company's own
    "en_acme_ner >= 1.0, < 2",
    "Acme.NER-Model==2.0.post1",
    "en_core_web_trf~=3.8.0",
    "xx_sent_ud_sm>=3.8.0rc1,!=3.8.1",
    "en_core_web_md===3.8.0",
    "fr_core_news_sm==3.8.*",
    "en_core_web_sm==3.8.0rc1",
]


def refusal(tmp_path: Path, **answers: object) -> str:
    """The message copier gives for the answers; fails if it renders anything."""
    with pytest.raises(ValueError) as error:
        render(tmp_path / "proj", **answers)
    assert not (tmp_path / "proj" / "Makefile").exists()
    return str(error.value)


INJECTIONS = {
    "newline": "\n$(shell touch pwned)",
    "tab": "\t$(shell touch pwned)",
    "command": "$(touch /tmp/pwned)",
    "backticks": "`touch /tmp/pwned`",
    "docstring": '"""; __import__("os").system("touch pwned"); """',
    "include": "\n-include evil",
}


@pytest.mark.parametrize(
    ("question", "prefix", "message", "example"),
    [
        ("project_slug", "my-proj", "is not a valid slug", "e.g. my-nlp-project"),
        ("package_name", "my_pkg", "is not a Python identifier", "e.g. my_nlp_project"),
        ("spacy_version", "3.8", "is not a minor series", "e.g. 3.8"),
        ("spacy_models_url", "https://models.example.com/x", "is not a plain URL", "e.g. https://"),
        ("docker_base_image", "python:3.11-slim", "is not an image reference", "such as python:3.11-slim"),
    ],
)
@pytest.mark.parametrize("injection", list(INJECTIONS))
def test_validators_refuse_each_injection_and_say_what_to_type(
    tmp_path: Path, question: str, prefix: str, message: str, example: str, injection: str
) -> None:
    text = refusal(tmp_path, **{question: prefix + INJECTIONS[injection]})
    assert message in text and example in text


@pytest.mark.parametrize("injection", ["newline", "tab", "include"])
def test_a_project_name_on_more_than_one_line_is_refused(tmp_path: Path, injection: str) -> None:
    text = refusal(tmp_path, project_name="My Project" + INJECTIONS[injection])
    assert "holds a control character" in text and "type the name on one line, e.g. My NLP Project" in text


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("--index-url http://evil.example/simple", "write it as name==version (e.g. en_core_web_sm==3.8.0)"),
        ("-r /etc/passwd", "write it as name==version"),
        ("en_core_web_sm==3.8.0 --hash=sha256:00", "write it as name==version"),
        ("en_core_web_sm==3.8.0; touch /tmp/pwned", "write it as name==version"),
        ("en_core_web_sm==`id`", "write it as name==version"),
        ("en_core_web_sm==$(id)", "write it as name==version"),
        ("en_core_web_sm", "write it as name==version"),
        ("en_core_web_sm==latest", "write it as name==version"),
        ("en core web sm==3.8.0", "write it as name==version"),
        ("_private==1.0", "starts and ends with a letter or digit"),
        ("en_core_web_sm==3.8.0\n-include evil", "holds a control character"),
        ("en_core_web_sm==3.8.0\t", "give one model per list item"),
    ],
)
def test_a_model_that_is_not_a_name_and_a_version_is_refused(tmp_path: Path, model: str, message: str) -> None:
    assert message in refusal(tmp_path, spacy_models=[model])


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"spacy_models": "en_core_web_sm==3.8.0"}, "Give a YAML list, e.g. [en_core_web_sm==3.8.0"),
        ({"spacy_models": {"en_core_web_sm": "3.8.0"}}, "Give a YAML list"),
        ({"spacy_models": [{"en_core_web_sm": "3.8.0"}]}, "write each model as text, e.g. en_core_web_sm==3.8.0"),
        ({"spacy_models": ["en_core_web_sm==3.7.1"]}, "built for spaCy 3.7, not 3.8: pick a 3.8.x release, e.g."),
        ({"spacy_models": ["de_core_news_lg==3.10.0"], "spacy_version": "3.1"}, "built for spaCy 3.10, not 3.1"),
        (
            {"spacy_models": ["en_core_web_sm==3.8.0", "En-Core.Web_SM>=3.8,<3.9"]},
            "En-Core.Web_SM is listed twice: keep one line per model",
        ),
        ({"spacy_models_url": "https://models.example.com/a b"}, "a space as %20"),
        ({"docker_base_image": "python 3.11"}, "not an image reference"),
        ({"project_name": "  "}, "Give the project a name, e.g. My NLP Project"),
        ({"project_slug": "9lives"}, "not a valid slug"),
        ({"package_name": "class"}, "is a Python keyword or clashes with a module the project imports"),
        ({"package_name": "spacy"}, "pick another name, e.g. spacy_nlp"),
    ],
)
def test_other_bad_answers_are_refused_with_the_fix(tmp_path: Path, answers: dict, message: str) -> None:
    assert message in refusal(tmp_path, **answers)


@pytest.mark.parametrize("question", [name for name, spec in COPIER_YML.items() if "choices" in spec])
def test_a_choice_question_refuses_anything_else_and_lists_the_choices(tmp_path: Path, question: str) -> None:
    assert f"'3.9' is not in {COPIER_YML[question]['choices']}" in refusal(tmp_path, **{question: "3.9"})


def test_a_url_with_credentials_is_refused_without_repeating_them(tmp_path: Path) -> None:
    text = refusal(tmp_path, spacy_models_url="https://user:s3cret-token@models.example.com/spacy")
    assert "Do not put credentials in spacy_models_url" in text and "set SPACY_MODELS_URL with them in .env" in text
    assert "s3cret-token" not in text


def test_the_cli_refuses_a_bad_answer_and_says_why(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref=HEAD",
         "-d", "docker_base_image=python:3.11 $(id)", str(REPO), str(tmp_path / "proj")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "is not an image reference: write one such as python:3.11-slim" in result.stderr


def test_models_of_any_shape_are_accepted_and_packaging_reads_what_is_rendered(tmp_path: Path) -> None:
    project = render(tmp_path / "proj", spacy_models=ODD_MODELS, spacy_models_url="https://models.example.com/m/")
    assert load_answers(project)["spacy_models"] == ODD_MODELS
    urls = lines(project / "requirements-model.in.url")
    ranges = [Requirement(line) for line in lines(project / "requirements-model.in.range")]
    pins = [Requirement(line) for line in lines(project / "requirements-model.in")]
    exact = {"en_ner_bc5cdr_md": "0.5.4", "Acme.NER-Model": "2.0.post1", "en_core_web_sm": "3.8.0rc1"}
    assert {pin.name: str(pin.specifier) for pin in pins} == {name: f"=={v}" for name, v in exact.items()}
    for url, (name, version) in zip(urls, exact.items(), strict=True):
        folder, file_name = url.removeprefix("https://models.example.com/m/").split("/")
        parsed_name, parsed_version, _, tags = parse_wheel_filename(file_name)
        assert (parsed_name, parsed_version) == (canonicalize_name(name), Version(version))
        assert folder == file_name.split("-py3-")[0] and {str(tag) for tag in tags} == {"py3-none-any"}
    assert [req.name for req in ranges] == [
        "de_contracts_lg", "en_acme_ner", "en_core_web_trf", "xx_sent_ud_sm", "en_core_web_md", "fr_core_news_sm"
    ]  # fmt: skip
    assert all(req.specifier and not req.url and not req.marker for req in ranges)
    names = {Requirement(m.replace(" ", "")).name for m in ODD_MODELS}
    assert not names & {Requirement(line).name for line in lines(project / "requirements.in") if line[0].isalpha()}


def lines(path: Path) -> list[str]:
    """The lines of a requirements-style file that are not blank or comments."""
    return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


# ---- rendering with the validators gone ---------------------------------------------


def hostile(marks: Path, answer: str) -> str:
    """Every way an answer could turn into code, each touching its own marker file."""
    mark = marks / answer
    return (
        f"Evil\n$(shell touch {mark}-make)\n"
        f'"""\n__import__("os").system("touch {mark}-python")\n"""\n'
        f"\t$(touch {mark}-shell) `touch {mark}-backticks`\n-include /dev/null\n--index-url http://evil.example/simple\n"
    )


def hostile_answers(marks: Path) -> dict:
    return {
        "project_name": hostile(marks, "project_name"),
        "project_slug": "evil" + hostile(marks, "project_slug"),
        "package_name": PACKAGE,
        "spacy_version": "3.8" + hostile(marks, "spacy_version"),
        "spacy_models": [
            "en_core_web_sm==3.8.0",
            "--index-url http://evil.example/simple",
            "-r /etc/passwd",
            "en_core_web_md==3.8.0\n--extra-index-url http://evil.example/simple",
            "en_core_web_lg>=3.8 --hash=sha256:00",
            hostile(marks, "spacy_models"),
            {"nested": "mapping"},
        ],
        "spacy_models_url": "http://models.example.com/" + hostile(marks, "spacy_models_url"),
        "docker_base_image": "python:3.11-slim" + hostile(marks, "docker_base_image"),
        "use_prodigy": True,
        "runtime_install": True,
        "installer": "uv",
    }


@pytest.fixture(scope="module")
def unguarded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template's working tree with every validator removed from copier.yml, tagged v1."""
    template = clone_worktree(tmp_path_factory.mktemp("unguarded") / "template")
    strip_validators(template)
    git_save(template, "v1: no validators", tag="v1")
    return template


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def hostile_project(unguarded: Path, marks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("hostile") / "proj"
    run_copy(str(unguarded), project, data=hostile_answers(marks), defaults=True, unsafe=True, quiet=True)
    assert_no_code_ran(marks)
    return project


def assert_no_code_ran(marks: Path) -> None:
    assert sorted(path.name for path in marks.iterdir()) == []


def run(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env, timeout=120)
    print(f"$ {' '.join(command)} (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return result


def test_importing_the_package_runs_no_answer(hostile_project: Path, marks: Path) -> None:
    result = run(hostile_project, sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__doc__)")
    assert result.returncode == 0
    assert result.stdout == hostile(marks, "project_name").strip() + ".\n"
    for name in ("__main__", "nlp"):
        assert run(hostile_project, sys.executable, "-c", f"import {PACKAGE}.{name}").returncode == 0
    assert_no_code_ran(marks)


def test_every_python_toml_and_yaml_file_still_parses(hostile_project: Path) -> None:
    for path in hostile_project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    tomllib.loads((hostile_project / "pyproject.toml").read_text())
    workflow = yaml.safe_load((hostile_project / ".github/workflows/ci.yml").read_text())
    assert workflow["env"]["PYTHON_VERSION"] == "3.11"
    assert yaml.safe_load((hostile_project / ".pre-commit-config.yaml").read_text())["repos"]


def test_requirement_files_hold_no_option_and_no_hostile_line(hostile_project: Path) -> None:
    for name in REQUIREMENT_FILES:
        for line in lines(hostile_project / name):
            assert not line.startswith("-") or line == "-r requirements-model.in", f"{name}: {line}"
            assert "evil" not in line and "passwd" not in line and "touch" not in line, f"{name}: {line}"
    assert lines(hostile_project / "requirements-model.in") == ["en_core_web_sm==3.8.0"]
    assert lines(hostile_project / "requirements-model.in.url") == []  # the URL answer was not a plain URL
    assert lines(hostile_project / "requirements-model.in.range") == []
    assert lines(hostile_project / "requirements.in")[0] == "spacy"


def test_the_answers_file_round_trips_through_yaml(hostile_project: Path, marks: Path) -> None:
    saved = load_answers(hostile_project)
    for question, answer in hostile_answers(marks).items():
        assert saved[question] == answer, question


def test_the_tests_of_the_project_import_only_a_package_name(tmp_path: Path, unguarded: Path, marks: Path) -> None:
    answers = {**hostile_answers(marks), "package_name": "x;touch pwned-package #\n$(touch pwned-package)"}
    project = tmp_path / "proj"
    run_copy(str(unguarded), project, data=answers, defaults=True, unsafe=True, quiet=True)
    test_module = (project / "tests/test_nlp.py").read_text()
    assert "from invalid_package_name import" in test_module and "pwned" not in test_module
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    run(project, "make", "-n", "help")
    assert not (project / "pwned-package").exists()
    assert_no_code_ran(marks)


@pytest.mark.parametrize("command", [["make", "-n", "help"], ["make", "help"], ["make", "-n", "install"]])
def test_make_runs_no_answer(hostile_project: Path, marks: Path, command: list[str]) -> None:
    run(hostile_project, *command)
    assert_no_code_ran(marks)


# ---- copier update replays a hand-edited answers file -----------------------------------


def hand_edit_answers(project: Path, answers: dict) -> None:
    path = project / ".copier-answers.yml"
    saved = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**saved, **answers}, allow_unicode=True))
    git_save(project, "hand-edited answers")


def test_update_refuses_a_hostile_answers_file_when_the_template_validates(tmp_path: Path) -> None:
    template = tagged_worktree(tmp_path / "template")
    project = copy_and_commit(template, tmp_path / "proj")
    marks = tmp_path / "marks"
    marks.mkdir()
    hand_edit_answers(project, {"docker_base_image": "python:3.11-slim" + hostile(marks, "docker_base_image")})
    before = (project / "Dockerfile").read_text()
    (template / "template" / "NOTES.md").write_text("New in v2.\n")
    git_save(template, "v2", tag="v2")
    with pytest.raises(ValueError, match=re.escape("is not an image reference: write one such as python:3.11-slim")):
        run_update(project, defaults=True, overwrite=True, unsafe=True, quiet=True)
    assert (project / "Dockerfile").read_text() == before and not (project / "NOTES.md").exists()
    assert_no_code_ran(marks)


def test_update_renders_a_hostile_answers_file_safely_without_validators(
    tmp_path: Path, unguarded: Path, marks: Path
) -> None:
    template = tmp_path / "template"
    shutil.copytree(unguarded, template)
    project = copy_and_commit(template, tmp_path / "proj", package_name=PACKAGE)
    hand_edit_answers(project, {k: v for k, v in hostile_answers(marks).items() if k != "package_name"})
    (template / "template" / "NOTES.md").write_text("New in v2.\n")
    git_save(template, "v2", tag="v2")
    run_update(project, defaults=True, overwrite=True, unsafe=True, quiet=True, conflict="inline")
    assert load_answers(project)["_commit"] == "v2" and (project / "NOTES.md").exists()
    assert_no_code_ran(marks)
    assert run(project, sys.executable, "-c", f"import {PACKAGE}").returncode == 0
    run(project, "make", "-n", "help")
    assert_no_code_ran(marks)

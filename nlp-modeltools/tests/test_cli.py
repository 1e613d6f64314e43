"""cli.py: `nlp-models` run in-process, in a project directory, with the environment make would export."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nlp_modeltools import __version__, cli


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project as the current directory, with a model cache of its own and a wide terminal for --help."""
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("NLP_MODELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    return root


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    return int(exited.value.code or 0)


def test_help_lists_every_verb_with_what_it_does(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nlp-models [-h] [--version] VERB ...")
    for verb, (_, _, help_text) in cli.VERBS.items():
        assert re.search(rf"^\s+{re.escape(verb)}\s+{re.escape(help_text)}$", out, re.MULTILINE), verb


def test_version_is_the_package_s(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--version"]) == 0
    assert capsys.readouterr().out == f"nlp-models {__version__}\n"


def test_a_missing_or_unknown_verb_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code([]) == 2
    assert capsys.readouterr().err.endswith("error: the following arguments are required: VERB\n")
    assert exit_code(["modles"]) == 2
    assert "invalid choice: 'modles'" in capsys.readouterr().err


def test_a_user_error_is_one_line_on_stderr_and_exit_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".env").write_text('# settings\nHF_TOKEN="hf_abcdefgh"\n')
    assert cli.main(["cache-info"]) == 1, "a .env make misreads stops every verb before it runs"
    captured = capsys.readouterr()
    assert captured.err == (
        "error: .env:2: the value of HF_TOKEN is quoted, and make keeps the quotes in the value: remove them (see the "
        "rules at the top of .env.example)\n"
    )
    assert captured.out == ""


def test_a_user_error_never_shows_a_value_of_env(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".env").write_text("HF_TOKEN=hf_secretvalue1\n")
    (project / "requirements-model.in.url").write_text("./hf_secretvalue1-1.0-py3-none-any.whl\n")
    assert cli.main(["models"]) == 1
    assert capsys.readouterr().err == (
        f"error: requirements-model.in.url:1: {project.resolve()}/****-1.0-py3-none-any.whl does not exist: fix the "
        "path, or run make package if it is yours\n"
    )


def test_an_unexpected_failure_is_one_line_and_verbose_shows_where(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli.VERBS, "broken", ("collect", "no_such_step", "a verb whose step is missing (a bug)"))
    line = ("error: AttributeError: module 'nlp_modeltools.verbs.collect' has no attribute 'no_such_step' (an "
            "unexpected failure; run with VERBOSE=1 to see where)\n")  # fmt: skip
    assert cli.main(["broken"]) == 1
    assert capsys.readouterr().err == line
    monkeypatch.setenv("VERBOSE", "1")
    assert cli.main(["broken"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n") and err.endswith(line)
    assert "in run_verb\n    step: Callable[[Settings], None] = getattr(" in err


def test_a_verb_that_succeeds_exits_0(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-env"]) == 0
    assert capsys.readouterr().out.startswith("make: this project has no .env, so it runs with the Makefile's settings")
    assert cli.main(["cache-info"]) == 0
    assert capsys.readouterr().out == (
        f"cache-info: {tmp_path / 'cache'}: 0 model wheels, 0.00B (0 pinned by this project's requirements.txt)\n"
    )

"""core/envfile.py: .env read with make's meaning of each line; what make would misread is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp_modeltools.core import envfile
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.redact import Redactor


def test_env_lines_read_as_make_reads_them() -> None:
    text = "# settings\nexport A=one\nB := $(A)-two\nC=${B}\\#3$$\n\n  # indented comment\nD?=x y\n"
    values = envfile.expand(envfile.parse(text), environ={})
    assert values == {"A": "one", "B": "one-two", "C": "one-two#3$", "D": "x y"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("KEY=abc#def", "holds a '#'"),
        ('KEY="abc"', "is quoted"),
        ("KEY='abc'", "is quoted"),
        ("KEY=abc ", "ends with spaces"),
        ("KEY=ab$c", "holds a '$'"),
        ("KEY=$(shell rm -rf /)", "holds a '$'"),
        ("KEY=abc\\", "ends with \\"),
        ("KEY=a\x07b", "control character"),
        ("target: ; echo hi", "is not a NAME=value line"),
        ("define KEY", "is not a NAME=value line"),
        ("KEY+=more", "is not a NAME=value line"),
    ],
)
def test_env_lines_make_would_misread_are_refused_by_name_never_value(line: str, problem: str) -> None:
    with pytest.raises(UserError) as caught:
        envfile.parse(f"# x\n{line}\n", ".env")
    message = str(caught.value)
    assert ".env:2" in message and problem in message and message.endswith("(see the rules at the top of .env.example)")
    if line.startswith("KEY") and "=" in line and "+=" not in line:
        assert "KEY" in message and line.split("=", 1)[1].strip("\"' \\") not in message


def test_a_quoted_value_is_refused_in_one_exact_line() -> None:
    with pytest.raises(UserError) as caught:
        envfile.parse('HF_TOKEN="hf_abc"\n', "/p/.env")
    assert str(caught.value) == (
        "/p/.env:1: the value of HF_TOKEN is quoted, and make keeps the quotes in the value: remove them "
        "(see the rules at the top of .env.example)"
    )


def test_what_make_exported_wins_and_the_rest_is_expanded_as_make_would() -> None:
    """Under make, the environment holds make's own expansion of each variable; the file fills in the rest."""
    assignments = envfile.parse("A=file\nB=$(A)/x\nB=$(A)/y\nC=$(HOME_DIR)/z\nD=in-file\nLOOP=$(LOOP)x\n")
    values = envfile.expand(assignments, {"D": "from-make", "HOME_DIR": "/home/u"})
    assert values == {"A": "file", "B": "file/y", "C": "/home/u/z", "D": "from-make", "LOOP": "x"}


def test_read_gives_nothing_without_a_file_and_the_checked_values_with_one(tmp_path: Path) -> None:
    assert envfile.read(tmp_path / ".env", {}) == {}
    (tmp_path / ".env").write_text(
        "# team settings\r\nPIP_EXTRA_INDEX_URL=https://ci:$(KEY)@h/simple\r\nKEY=k-1234\r\n"
    )
    assert envfile.read(tmp_path / ".env", {}) == {"PIP_EXTRA_INDEX_URL": "https://ci:k-1234@h/simple", "KEY": "k-1234"}


def test_read_names_the_file_and_line_it_refuses(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=1\nB=2 # note\n")
    with pytest.raises(UserError, match=rf"^{tmp_path / '.env'}:2: the value of B holds a '#' make reads as a comment"):
        envfile.read(tmp_path / ".env", {})


def test_secret_values_are_named_variables_and_url_credentials() -> None:
    values = {"PRODIGY_KEY": "k-1234", "PIP_EXTRA_INDEX_URL": "https://ci:tok-5678@h/simple", "PYTHON": "python3"}
    assert sorted(envfile.secret_values(values)) == [("PIP_EXTRA_INDEX_URL", "tok-5678"), ("PRODIGY_KEY", "k-1234")]
    redact = Redactor(["tok-5678"])
    assert redact("see https://ci:tok-5678@h/simple and tok-5678") == "see https://****@h/simple and ****"


def test_a_token_alone_in_a_url_is_a_secret_and_short_or_empty_values_are_not() -> None:
    values = {"PIP_FIND_LINKS": "https://ghp_tokenvalue@h/links.html", "API_TOKEN": "", "AUTH": "abc"}
    assert envfile.secret_values(values) == [("PIP_FIND_LINKS", "ghp_tokenvalue")]

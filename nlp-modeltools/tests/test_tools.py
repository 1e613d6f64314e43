"""core/tools.py: environment flags as make spells them, and the programs of the engine's own environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nlp_modeltools.core.redact import Redactor
from nlp_modeltools.core.tools import SOURCE_VARIABLES, Tools, is_true


@pytest.mark.parametrize("value", ["1", "yes", "true", "on", "TRUE", " On ", "Yes"])
def test_true_is_spelled_as_make_and_the_readme_spell_it(value: str) -> None:
    assert is_true(value)


@pytest.mark.parametrize("value", ["", None, "0", "no", "false", "off", "y", "2", "enabled"])
def test_anything_else_is_false(value: str | None) -> None:
    assert not is_true(value)


def test_python_is_this_interpreter_unresolved_and_the_others_sit_beside_it() -> None:
    python = Tools.program("python")
    assert python == str(Path(sys.executable).absolute()) and os.path.isabs(python)
    assert Tools.program("uv") == str(Path(sys.executable).absolute().parent / "uv")
    assert os.access(Tools.program("uv"), os.X_OK), "the dev venv has uv, as the tools venv has"


def test_a_default_tools_has_an_empty_environment_no_secret_and_the_network() -> None:
    tools = Tools()
    assert (dict(tools.environ), tools.offline, tools.redact("https://u:p@h/x")) == ({}, False, "https://****@h/x")
    assert Tools({"A": "1"}, Redactor(["abcd"]), True).redact("abcd") == "****"


def test_every_package_source_variable_of_pip_and_uv_is_known() -> None:
    assert set(SOURCE_VARIABLES) == {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "UV_INDEX_URL",
                                     "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_INDEX", "UV_DEFAULT_INDEX"}  # fmt: skip

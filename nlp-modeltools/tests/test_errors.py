"""core/errors.py: one-line failures, what may be printed, and run_tool, with real child processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError, run_tool
from nlp_modeltools.core.redact import Redactor, mask

FIX = "Fix it this way"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_mask_hides_user_info_everywhere() -> None:
    text = "from http://user:p%40ss@host:8080/x and https://tok@other/y, not http://host/a@b"
    assert mask(text) == "from http://****@host:8080/x and https://****@other/y, not http://host/a@b"


def test_the_redactor_hides_secret_values_and_user_info() -> None:
    redact = Redactor(["tok-5678", "k-1234"])
    assert redact("see https://ci:tok-5678@h/simple, tok-5678 and k-1234") == "see https://****@h/simple, **** and ****"


def test_the_redactor_hides_the_longer_of_two_overlapping_secrets_whole() -> None:
    assert Redactor(["abcd", "abcdef12"])("key abcdef12 here") == "key **** here"


def test_values_too_short_to_be_secrets_are_left_alone() -> None:
    """A 3-character value would turn every word holding it into ****."""
    redact = Redactor(["abc", ""])
    assert redact.pattern is None and redact("abcdef") == "abcdef"


def test_a_tool_s_output_streams_redacted_and_is_returned(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_tool(python("print('one s3cret-value'); print('two')"), what="tool", fix=FIX,
                      redact=Redactor(["s3cret-value"]))  # fmt: skip
    assert output == "one ****\ntwo\n"
    assert capsys.readouterr().out == "one ****\ntwo\n"


def test_a_quiet_tool_prints_nothing_when_it_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_tool(python("print('hidden')"), what="tool", fix=FIX, quiet=True) == "hidden\n"
    assert capsys.readouterr().out == ""


def test_a_failing_tool_that_streamed_points_above(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError) as failed:
        run_tool(python("import sys; print('why it broke'); sys.exit(3)"), what="pip download", fix=FIX)
    assert str(failed.value) == f"pip download failed (exit 3, see above). {FIX}"
    assert capsys.readouterr().out == "why it broke\n"


def test_a_quiet_tool_s_failure_is_one_line_with_its_own_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = "import sys; print('noise'); print('  the   real  reason  '); print(''); sys.exit(2)"
    with pytest.raises(UserError) as failed:
        run_tool(python(code), what="uv pip compile", fix=FIX, quiet=True)
    assert str(failed.value) == f"uv pip compile failed: the real reason. {FIX} (VERBOSE=1 shows its whole output)"
    assert "\n" not in str(failed.value) and capsys.readouterr().out == ""


def test_explain_picks_the_reason_out_of_the_whole_output() -> None:
    def explain(output: str) -> str | None:
        return "the first line" if output.startswith("first") else None

    with pytest.raises(UserError, match=r"^tool failed: the first line\. "):
        run_tool(python("import sys; print('first'); print('last'); sys.exit(1)"), what="tool", fix=FIX, quiet=True,
                 explain=explain)  # fmt: skip


def test_a_long_reason_is_cut_to_400_characters() -> None:
    with pytest.raises(UserError) as failed:
        run_tool(python("import sys; print('x' * 1000); sys.exit(1)"), what="tool", fix=FIX, quiet=True)
    assert str(failed.value) == f"tool failed: {'x' * 400}. {FIX} (VERBOSE=1 shows its whole output)"


def test_verbose_shows_a_quiet_tool_s_whole_output_on_failure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERBOSE", "1")
    with pytest.raises(UserError):
        run_tool(python("import sys; print('step 1'); print('step 2'); sys.exit(1)"), what="t", fix=FIX, quiet=True)
    assert capsys.readouterr().out == "step 1\nstep 2\n"


def test_a_missing_tool_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError) as failed:
        run_tool([str(tmp_path / "nope"), "--version"], what="building the wheel", fix=FIX)
    assert (
        str(failed.value)
        == f"building the wheel: {tmp_path / 'nope'} is not installed (No such file or directory). {FIX}"
    )


def test_a_tool_sees_only_the_environment_it_is_given(tmp_path: Path) -> None:
    code = "import os; print(sorted(k for k in os.environ if k.startswith('NLPMT_')), os.getcwd())"
    output = run_tool(python(code), what="t", fix=FIX, env={"NLPMT_ONE": "1"}, cwd=tmp_path, quiet=True)
    assert output == f"['NLPMT_ONE'] {tmp_path}\n"

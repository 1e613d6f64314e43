"""The checker of the README's quoted messages (tests/readme_messages.py), on the rendered README."""

from __future__ import annotations

from pathlib import Path

from tests.readme_messages import MINIMUM, printed, quoted_messages


def test_the_error_section_quotes_enough_messages_to_check(rendered: Path) -> None:
    messages = quoted_messages((rendered / "README.md").read_text())
    assert len(messages) >= MINIMUM, messages
    assert all("`" not in message for message in messages)


def test_an_ellipsis_stands_for_what_depends_on_the_project() -> None:
    message = "… does not match requirements.txt, which locked … with another file"
    assert printed(message, "error: build/x.whl does not match requirements.txt, which locked x==1 with another file")
    assert not printed(message, "error: build/x.whl does not match the lock")
    assert not printed(message, "error: build/x.whl does not match requirements.txt, which locked x==1")
    assert not printed("a…b", "ab"), "an ellipsis stands for at least one character"
    assert not printed("a…b", "b then a"), "the parts come in order"
    assert printed("a…b", "a b a")
    assert not printed("a……b", "a b") and printed("a……b", "a  b"), "two ellipses stand for two characters or more"
    assert printed("x …", "x y") and not printed("x …", "x ")

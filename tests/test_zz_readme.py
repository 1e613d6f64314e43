"""The checker of the README's quoted messages (tests/readme_messages.py), on the rendered README."""

from __future__ import annotations

from pathlib import Path

from tests.readme_messages import MINIMUM, pattern, quoted_messages


def test_the_error_section_quotes_enough_messages_to_check(rendered: Path) -> None:
    messages = quoted_messages((rendered / "README.md").read_text())
    assert len(messages) >= MINIMUM, messages
    assert all("`" not in message for message in messages)


def test_an_ellipsis_stands_for_what_depends_on_the_project() -> None:
    found = pattern("… does not match requirements.txt, which locked … with another file")
    assert found.search("error: build/x.whl does not match requirements.txt, which locked x==1 with another file")
    assert not found.search("error: build/x.whl does not match the lock")

"""The generated README's messages are the messages: each it quotes was printed by some test of the run.

Every `make` a test runs through tests.support.project.make (or in a sandbox) records its output
(tests.support.project.record_output); each message the README's "When something fails" section quotes
(`…` standing for what depends on the project) must match one of them. conftest's pytest_sessionfinish
checks it when the whole suite has run (make test, and CI), after every worker has finished, and fails
the run otherwise; a partial run (paths, -k or -m) cannot tell, and is not checked.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.support.project import render

MINIMUM = 15  # the section quotes at least this many messages: fewer means the parser lost its way


def quoted_messages(readme: str) -> list[str]:
    """The first `code span` of each bullet of the error section."""
    section = readme.split("## When something fails", 1)[1].split("\n## ", 1)[0]
    return [match for bullet in re.split(r"\n- ", section)[1:] if (match := re.search(r"`([^`]+)`", bullet)) and
            (match := match.group(1))]  # fmt: skip


def is_whole_suite(config: pytest.Config) -> bool:
    option = config.option
    return not config.args_source == pytest.Config.ArgsSource.ARGS and not option.keyword and not option.markexpr


def unprinted(config: pytest.Config, outputs: Iterable[str]) -> list[str]:
    """The README's quoted messages no output matches ([] on a partial run)."""
    if not is_whole_suite(config):
        return []
    with tempfile.TemporaryDirectory() as work:
        messages = quoted_messages((render(Path(work) / "proj") / "README.md").read_text())
    if len(messages) < MINIMUM:
        return [f"(only {len(messages)} messages found in the README's error section)"]
    texts = list(outputs)
    return [message for message in messages if not any(printed(message, text) for text in texts)]


def printed(message: str, text: str) -> bool:
    """Whether text holds the message, each `…` standing for at least one character of anything.

    Each literal part is looked for at its first place after the one before it (and after the character its `…`
    needs): the earliest place leaves the most text for the parts after it, so one pass decides.
    """
    start = 0
    for index, part in enumerate(message.split("…")):
        gap = 1 if index > 0 else 0
        found = text.find(part, start + gap)
        if found < 0:
            return False
        start = found + len(part)
    return True

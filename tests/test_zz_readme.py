"""The generated README's messages are the messages: each it quotes was printed by some test of this run.

Runs last (its file name sorts last). Every `make` a test ran through tests.support.project.make (or in a
sandbox) left its output in OUTPUTS; each message the README's "When something fails" section quotes
(`…` standing for what depends on the project) must match one of them. A partial run cannot tell, so it
skips; the whole suite (`make test`, and CI) always checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.project import OUTPUTS

TESTS = Path(__file__).parent


def quoted_messages(readme: str) -> list[str]:
    """The first `code span` of each bullet of the error section."""
    section = readme.split("## When something fails", 1)[1].split("\n## ", 1)[0]
    return [match for bullet in re.split(r"\n- ", section)[1:] if (match := re.search(r"`([^`]+)`", bullet)) and
            (match := match.group(1))]  # fmt: skip


def pattern(message: str) -> re.Pattern[str]:
    return re.compile(".+?".join(re.escape(part) for part in message.split("…")), re.DOTALL)


def test_every_message_the_readme_quotes_was_printed_by_a_test(request: pytest.FixtureRequest, rendered: Path) -> None:
    ran = {Path(str(item.fspath)).name for item in request.session.items if Path(str(item.fspath)).parent == TESTS}
    files = {path.name for path in TESTS.glob("test_*.py")}
    if ran != files or request.config.option.keyword or request.config.option.markexpr:
        pytest.skip(f"a partial run ({len(ran)} of {len(files)} test files): only the whole suite can tell")
    messages = quoted_messages((rendered / "README.md").read_text())
    assert len(messages) >= 15, messages
    never = [message for message in messages if not any(pattern(message).search(out) for out in OUTPUTS)]
    assert never == [], f"the README quotes messages no test produced: {never}"

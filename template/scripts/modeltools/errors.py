"""Failures the user can fix, and the one way this package runs an outside tool.

Every message is one line that says what happened and the command that fixes
it. Nothing printed here may carry a secret: URLs lose their user-info and the
values of .env's secrets are replaced by ****, in our messages and in the
output of the tools we run (pip, uv, the container engine).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Redactor", "UserError", "expected_errors", "run_tool"]


class UserError(Exception):
    """A failure the user can fix; the command line prints it without a traceback."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """UserError, and the model store's StoreError once the store was loaded (nothing else raises it)."""
    store = sys.modules.get("modelstore")
    return (UserError, store.StoreError) if store is not None else (UserError,)


def _mask(text: str) -> str:
    # the store (and its network stack) is loaded only by the steps that need it
    if "@" not in text:
        return text
    from modeltools.store import mask

    return mask(text)


class Redactor:
    """Hides user-info in URLs and every known secret value in a line of text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        text = _mask(text)
        return self.pattern.sub("****", text) if self.pattern else text


def run_tool(
    command: Sequence[str],
    *,
    what: str,
    fix: str,
    env: Mapping[str, str] | None = None,
    redact: Redactor | None = None,
    cwd: str | os.PathLike[str] | None = None,
    quiet: bool = False,
) -> str:
    """Run a tool, streaming its output (redacted) as it comes; return that output.

    A non-zero exit becomes one UserError naming the step and its fix; the
    tool's own explanation has already been printed above it.
    """
    redact = redact or Redactor()
    try:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip
    except FileNotFoundError as error:
        raise UserError(f"{what}: {command[0]} is not installed ({error.strerror}). {fix}") from None
    lines = []
    assert process.stdout is not None
    with process:
        for line in process.stdout:
            line = redact(line)
            lines.append(line)
            if not quiet:
                sys.stdout.write(line)
                sys.stdout.flush()
    if process.returncode:
        if quiet:
            sys.stdout.write("".join(lines[-40:]))
        raise UserError(f"{what} failed (exit {process.returncode}, see above). {fix}")
    return "".join(lines)

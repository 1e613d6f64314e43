"""Failures the user can fix, what may be printed, and the one way this package runs an outside tool.

Every message is one line that says what happened and the command that fixes
it. Nothing printed here may carry a secret: URLs lose their user-info and the
values of .env's secrets are replaced by ****, in our messages and in the
output of the tools we run (pip, uv, the container engine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

from nlp_modeltools.core.failures import machine_failure
from nlp_modeltools.core.redact import Redactor


class UserError(Exception):
    """A failure the user can fix; the command line prints it without a traceback."""


def run_tool(
    command: Sequence[str],
    *,
    what: str,
    fix: str,
    env: Mapping[str, str] | None = None,
    redact: Redactor | None = None,
    cwd: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    explain: Callable[[str], str | None] | None = None,
) -> str:
    """Run a tool and return its output (redacted). A non-zero exit becomes one UserError naming the step and its fix.

    The output streams as it comes; a quiet tool's is held back, and its failure is told in one line,
    the tool's own reason (explain(output), else its last line), the whole output only with VERBOSE=1.
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
            lines.append(redact(line))
            if not quiet:
                sys.stdout.write(lines[-1])
                sys.stdout.flush()
    output = "".join(lines)
    if not process.returncode:
        return output
    machine = machine_failure(output, env if env is not None else os.environ)
    if machine is not None:  # a failure of the machine: its fix, never the step's own
        reason, fix = machine
        raise UserError(f"{what} failed: {reason}: {fix}" + ("" if quiet else " (its output is above)"))
    if not quiet:
        raise UserError(f"{what} failed (exit {process.returncode}, see above). {fix}")
    if os.environ.get("VERBOSE", "").lower() in ("1", "yes", "true", "on"):
        sys.stdout.write(output)
    last = next((line.strip() for line in reversed(lines) if line.strip()), f"exit {process.returncode}")
    reason = (explain(output) if explain else None) or last
    raise UserError(f"{what} failed: {' '.join(reason.split())[:400]}. {fix} (VERBOSE=1 shows its whole output)")

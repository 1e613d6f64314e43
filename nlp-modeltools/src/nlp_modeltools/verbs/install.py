""".venv: what the Makefile's install recipe left, and why an install failed.

The recipe runs the installer itself (pip-sync or uv pip sync, with no index,
every file checked against the lock's hashes) and copies requirements.txt to
.venv/.installed when it succeeds. Only when the installer fails does this run,
to name the file that does not match the lock and the command that fixes it.
"""

from __future__ import annotations

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.lock import lockfile
from nlp_modeltools.ship import wheelhouse


def install_failed(settings: Settings) -> None:
    """The installer refused: name the wheelhouse file to blame, or say the installer's message is the one."""
    parsed, _ = lockfile.read_required(settings.paths.lock)
    wheelhouse.verify(settings.hashes, parsed, settings.paths.wheels)
    raise UserError(
        f"{settings.installer} could not sync {settings.venv} with requirements.txt (its message is above), though "
        "every file of build/wheels matches the lock: remove the venv (rm -rf "
        f"{settings.venv}) and run make install again"
    )

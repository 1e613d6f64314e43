""".venv: what the Makefile's install recipe left, and why an install failed.

The recipe runs the installer itself (pip-sync or uv pip sync, with no index,
every file checked against the lock's hashes) and copies requirements.txt to
.venv/.installed when it succeeds. Only when the installer fails does this run,
to read what the installer printed (build/lock/install.err: a full disk, a cache it cannot write) and to
name the file that does not match the lock, each with the command that fixes it.
"""

from __future__ import annotations

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.failures import machine_failure
from nlp_modeltools.core.files import read_text
from nlp_modeltools.lock import lockfile
from nlp_modeltools.ship import wheelhouse


def install_failed(settings: Settings) -> None:
    """The installer refused: name what failed on the machine, or the wheelhouse file to blame, or say the
    installer's message is the one."""
    printed = read_text(settings.paths.work / "install.err") or ""
    machine = machine_failure(printed, settings.environ)
    if machine is not None:
        raise UserError(f"{settings.installer} could not install {settings.venv}: {machine[0]}: {machine[1]}")
    parsed, _ = lockfile.read_required(settings.paths.lock)
    wheelhouse.verify(settings.hashes, parsed, settings.paths.wheels)
    raise UserError(
        f"{settings.installer} could not sync {settings.venv} with requirements.txt (its message is above), though "
        "every file of build/wheels matches the lock: remove the venv (rm -rf "
        f"{settings.venv}) and run make install again"
    )

""".venv: what the Makefile's install recipe left, and why an install failed.

The recipe runs the installer itself (pip-sync or uv pip sync, with no index,
every file checked against the lock's hashes) and copies requirements.txt to
.venv/.installed when it succeeds. Only when the installer fails does this run,
to name the file that does not match the lock and the command that fixes it.
"""

from __future__ import annotations

from nlp_modeltools import lockfile, wheelhouse
from nlp_modeltools.errors import UserError
from nlp_modeltools.settings import Settings


def require_lock(settings: Settings) -> tuple[lockfile.Lock, str]:
    path = settings.paths.lock
    if not path.is_file():
        raise UserError(f"{path.name} is missing: run make lock")
    text = path.read_text()
    return lockfile.parse(text), text


def holds_lock(settings: Settings) -> bool:
    """Whether .venv was synced with requirements.txt as it is now."""
    stamp, lock = settings.venv / ".installed", settings.paths.lock
    return (settings.venv / "bin" / "python").exists() and stamp.is_file() and lock.is_file() and (
        stamp.read_bytes() == lock.read_bytes()
    )  # fmt: skip


def install_failed(settings: Settings) -> None:
    """The installer refused: name the wheelhouse file to blame, or say the installer's message is the one."""
    parsed, _ = require_lock(settings)
    wheelhouse.verify(settings.hashes, parsed, settings.paths.wheels)
    raise UserError(
        f"{settings.installer} could not sync {settings.venv} with requirements.txt (its message is above), though "
        "every file of build/wheels matches the lock: remove the venv (rm -rf "
        f"{settings.venv}) and run make install again"
    )

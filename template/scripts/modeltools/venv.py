""".venv: created and synced with the lock from build/wheels, with no index (pip-sync or uv pip sync).

Whichever installer runs, nothing but build/wheels can be a source: no index,
no find-links page from pip's or uv's configuration, every file by hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

from modeltools import lockfile, wheelhouse
from modeltools.errors import UserError, run_tool
from modeltools.files import project_lock, write_atomic, write_if_changed
from modeltools.settings import SOURCE_VARIABLES, Settings

STAMP = ".installed"


def sealed_environment(settings: Settings) -> dict[str, str]:
    """pip and uv with every package source removed: only the wheelhouse can provide a file."""
    env = {k: v for k, v in settings.environ.items() if k not in SOURCE_VARIABLES}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def stamp_text(settings: Settings, lock_text: str) -> str:
    return f"{settings.installer} sha256:{hashlib.sha256(lock_text.encode()).hexdigest()}\n"


def is_current(settings: Settings, lock_text: str) -> bool:
    stamp = settings.venv / STAMP
    python = settings.venv / "bin" / "python"
    return python.exists() and stamp.is_file() and stamp.read_text() == stamp_text(settings, lock_text)


def create(settings: Settings) -> Path:
    python = settings.venv / "bin" / "python"
    if python.exists():
        return python
    # The interpreter the tools venv was made from (make's PYTHON): a real binary, not a
    # launcher such as a pyenv shim, which costs uv and venv a search each time.
    interpreter = getattr(sys, "_base_executable", "") or shutil.which(settings.get("PYTHON", "python3")) or "python3"
    if settings.installer == "uv":
        command = [settings.tool("uv"), "venv", "--quiet", "--python", interpreter, str(settings.venv)]
    else:
        command = [interpreter, "-m", "venv", str(settings.venv)]
    env = {**sealed_environment(settings), "UV_PYTHON_DOWNLOADS": "never"}
    run_tool(command, what=f"creating {settings.venv}", env=env, fix="Check PYTHON (in .env or on the command line)")
    return python


def sync(settings: Settings, lock: Path, wheels: Path) -> None:
    """Make the venv hold exactly the lock's packages, from the wheelhouse only."""
    python = create(settings)
    if settings.installer == "uv":
        command = [settings.tool("uv"), "pip", "sync", "--quiet", "--python", str(python),
                   "--no-index", "--find-links", str(wheels), "--require-hashes", str(lock)]  # fmt: skip
        tool = "uv pip sync"
    else:
        command = [settings.tool("python"), "-m", "piptools", "sync", "--python-executable", str(python),
                   "--no-index", "--find-links", str(wheels), "--pip-args", "--quiet", str(lock)]  # fmt: skip
        tool = "pip-sync"
    run_tool(command, what=tool, env=sealed_environment(settings), redact=settings.redact,
             fix="Run make wheelhouse, then make install again")  # fmt: skip
    add_source_path(python, settings.paths.root / "src")


def add_source_path(python: Path, src: Path) -> None:
    """src/ on the venv's path (a .pth file), so `python -m <package>` works without installing it."""
    # a CPython venv's purelib is <venv>/lib/pythonX.Y/site-packages (found without starting its Python)
    for purelib in python.parent.parent.glob("lib/python*/site-packages"):
        write_if_changed(purelib / "_project_src.pth", f"{src.resolve()}\n")


def mark_installed(settings: Settings, lock_text: str) -> None:
    write_atomic(settings.venv / STAMP, stamp_text(settings, lock_text))


def check_installer(settings: Settings) -> None:
    if not (settings.tools / "bin" / "python").exists():
        raise UserError(f"{settings.tools} is not set up: run make install (it creates it first)")


def require_lock(settings: Settings) -> tuple[lockfile.Lock, str]:
    path = settings.paths.lock
    if not path.is_file():
        raise UserError(f"{path.name} is missing: run make lock")
    text = path.read_text()
    return lockfile.parse(text), text


def install(settings: Settings) -> None:
    with project_lock(settings.paths.build):
        parsed, text = require_lock(settings)
        if is_current(settings, text):
            print(f"install: {settings.venv} already holds requirements.txt; nothing to do", flush=True)
        else:
            wheelhouse.verify(settings, parsed, settings.paths.wheels)
            sync(settings, settings.paths.lock, settings.paths.wheels)
            print(f"install: {settings.venv} holds the {len(parsed.entries)} packages of requirements.txt, "
                  f"from build/wheels with no index ({settings.installer})", flush=True)  # fmt: skip
        mark_installed(settings, text)

""".venv: created and synced with the lock from build/wheels, with no index (pip-sync or uv pip sync).

Whichever installer runs, nothing but build/wheels can be a source: no index,
no find-links page from pip's or uv's configuration, every file by hash.
"""

from __future__ import annotations

import hashlib
import json
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


def stamp(settings: Settings, lock: lockfile.Lock, lock_text: str) -> dict:
    """What .venv/.installed records: the installer, the lock, and each model's file (its hash)."""
    models = {e.requirement: e.hashes[0] for e in lock.entries if "-r requirements-model.in" in e.via and e.hashes}
    return {"installer": settings.installer, "lock": hashlib.sha256(lock_text.encode()).hexdigest(), "models": models}


def read_stamp(settings: Settings) -> dict:
    try:
        found = json.loads((settings.venv / STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def is_current(settings: Settings, wanted: dict) -> bool:
    recorded = read_stamp(settings)
    python = settings.venv / "bin" / "python"
    return python.exists() and {k: recorded.get(k) for k in ("installer", "lock")} == {
        k: wanted[k] for k in ("installer", "lock")
    }


def holds_lock(settings: Settings) -> bool:
    """Whether .venv was synced with requirements.txt as it is now (by this installer)."""
    path = settings.paths.lock
    if not path.is_file():
        return False
    text = path.read_text()
    return is_current(settings, stamp(settings, lockfile.parse(text), text))


def replaced_models(recorded: dict, wanted: dict) -> list[str]:
    """Models whose locked file changed at the same version: installers keep what has the right version."""
    before = recorded.get("models") if isinstance(recorded.get("models"), dict) else {}
    return [line.split("==")[0] for line, digest in wanted["models"].items() if before.get(line, digest) != digest]


def create(settings: Settings) -> Path:
    python = settings.venv / "bin" / "python"
    made_by = read_stamp(settings).get("installer")
    if python.exists() and made_by not in (None, settings.installer):
        # a uv venv has no pip for pip-sync, and pip-sync leaves pip in a venv uv would sync: start afresh
        print(f"install: {settings.venv} was made with {made_by}; making it again with {settings.installer}")
        shutil.rmtree(settings.venv)
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


def uninstall(settings: Settings, python: Path, names: list[str]) -> None:
    if settings.installer == "uv":
        command = [settings.tool("uv"), "pip", "uninstall", "--quiet", "--python", str(python), *names]
    else:
        command = [str(python), "-m", "pip", "uninstall", "--quiet", "--yes", *names]
    run_tool(command, what="uninstalling the replaced models", env=sealed_environment(settings),
             fix=f"Remove {settings.venv} and run make install")  # fmt: skip


def sync(settings: Settings, lock: Path, wheels: Path, replaced: list[str]) -> None:
    """Make the venv hold exactly the lock's packages, from the wheelhouse only."""
    python = create(settings)
    if replaced:
        uninstall(settings, python, replaced)
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
        wanted = stamp(settings, parsed, text)
        if is_current(settings, wanted):
            print(f"install: {settings.venv} already holds requirements.txt; nothing to do", flush=True)
        else:
            wheelhouse.verify(settings, parsed, settings.paths.wheels)
            sync(settings, settings.paths.lock, settings.paths.wheels, replaced_models(read_stamp(settings), wanted))
            print(f"install: {settings.venv} holds the {len(parsed.entries)} packages of requirements.txt, "
                  f"from build/wheels with no index ({settings.installer})", flush=True)  # fmt: skip
        for marker in settings.venv.glob(".installer-*"):
            marker.unlink()
        (settings.venv / f".installer-{settings.installer}").touch()
        write_atomic(settings.venv / STAMP, json.dumps(wanted, indent=1, sort_keys=True) + "\n")

#!/usr/bin/env python3
"""Create the tools venv (build/tools) from scripts/tools.txt, every file checked by hash.

The one step that runs before any venv exists, so standard library only. The
tools venv holds pip-tools, uv and packaging; scripts/models.py runs with it.
"""

from __future__ import annotations

import argparse
import fcntl
import shutil
import subprocess
import sys
from pathlib import Path


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tools", type=Path, help="the venv to create, e.g. build/tools")
    parser.add_argument("--requirements", type=Path, default=Path(__file__).with_name("tools.txt"))
    parser.add_argument("--python-version", required=True, help="the project's Python, major.minor")
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args()
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != args.python_version:
        return fail(
            f"{sys.executable} is Python {running}, but this project is set up for Python {args.python_version}: "
            f"run make PYTHON=python{args.python_version} (or set PYTHON in .env)"
        )
    stamp = args.tools / ".installed"
    try:
        args.tools.parent.mkdir(parents=True, exist_ok=True)
        lock = (args.tools.parent / ".lock").open("a")
    except OSError as error:
        return fail(f"cannot write {args.tools.parent} ({error.strerror}): make it writable, or set TOOLS elsewhere")
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two makes at once: the second finds the venv made
        if stamp.is_file() and stamp.read_bytes() == args.requirements.read_bytes():
            stamp.touch()
            return 0
        if args.offline:
            return fail(f"OFFLINE=1, but {args.tools} is not set up: run make install once with network access")
        shutil.rmtree(args.tools, ignore_errors=True)
        print(f"tools: creating {args.tools} (pip-tools, uv, packaging; every file checked by hash)", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(args.tools)], check=True)
            subprocess.run(
                [str(args.tools / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--require-hashes", "--no-deps", "--requirement", str(args.requirements)],
                check=True,
            )  # fmt: skip
        except subprocess.CalledProcessError as error:
            shutil.rmtree(args.tools, ignore_errors=True)
            return fail(f"setting up {args.tools} failed (exit {error.returncode}, see above); run make install again")
        except KeyboardInterrupt:
            shutil.rmtree(args.tools, ignore_errors=True)
            return fail("interrupted; nothing was left half-made: run make install again")
        stamp.write_bytes(args.requirements.read_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Make what the tests need before they need it: the debootstrapped base image, Docker 26, the model wheels.

On a fresh clone the first two come from the network (a debootstrap of ~160 MB, ~75 MB of Docker's .debs), and
the first container test of each engine would wait for them while its worker does nothing else; the model
wheels (`spacy package`, ~20 s) are wanted by every worker's mirror, while the first worker makes the shared
tools venv and the other waits. The controller starts this module in the background as the run begins
(tests/conftest.py: start()); the workers meanwhile make the tools venv and the projects the first container
tests build from. Each thing is made under its cache lock, so a worker that needs it waits for it to be done
rather than making it again. A failure here is only logged: the worker that needs the thing tries again and
fails with its own message. A run that ends first (a failure, -x, Ctrl-C) leaves it to finish in the background:
stopped halfway, debootstrap would leave its mounts under build/, and the next run waits for it through the locks.

    python -m tests.support.prefetch    # from the repository's root
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.wheels import CACHE_DIR

LOG = CACHE_DIR / "prefetch.log"
_started: list[subprocess.Popen[bytes]] = []  # held, so that Python does not warn it is still running at exit


def wanted(args: Sequence[str], container_files: Sequence[str]) -> bool:
    """Whether a run of these pytest arguments (config.args) may reach a container test on a machine that can make
    its images: root, debootstrap and apt-get present, and an argument naming a directory or one of
    container_files (none: the configured test paths)."""
    if os.geteuid() != 0 or not shutil.which("debootstrap") or not shutil.which("apt-get"):
        return False
    paths = [Path(arg.split("::")[0]) for arg in args] or [Path(".")]
    return any(path.is_dir() or path.name in container_files for path in paths)


def start(root: Path) -> subprocess.Popen[bytes]:
    """Start this module from the repository's root, in the background and in a session of its own (a Ctrl-C
    meant for pytest does not reach it); its output goes to CACHE_DIR/prefetch.log."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with LOG.open("wb") as log:
        command = [sys.executable, "-m", "tests.support.prefetch"]
        process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # fmt: skip
    _started.append(process)
    return process


def _logged(name: str, make: Callable[[], Path]) -> None:
    try:
        print(f"prefetch: {name}: {make()}", flush=True)
    except Exception:
        print(f"prefetch: {name} failed (the test that needs it tries again):\n{traceback.format_exc()}", flush=True)


def main() -> None:
    """The base image here, Docker 26 and the model wheels in threads of their own; each logs what it made."""
    from tests.support.containers import base_image_archive
    from tests.support.dockerd import docker26_folder

    others = [threading.Thread(target=_logged, args=args) for args in
              [("Docker 26", docker26_folder), ("model wheels", _model_wheels)]]  # fmt: skip
    for thread in others:
        thread.start()
    _logged("base image", base_image_archive)
    for thread in others:
        thread.join()


def _model_wheels() -> Path:
    """The mirror's wheels (tests/conftest.py's `wheels`): the tiny pipelines, then the real en_core_web_sm."""
    from tests.conftest import TINY_MODELS
    from tests.support.wheels import build_real_sm, build_tiny

    for model in TINY_MODELS.values():
        build_tiny(model)
    return build_real_sm()


if __name__ == "__main__":
    main()

"""Venvs of their own for one job each: spaCy for make package, twine for make publish.

They live in $(TOOLS)/envs/<name> (make clean removes them with the tools venv),
are made with uv from one requirements file, and are made again only when that
file changes: a stamp holds its hash. A job holds its venv's lock while it runs. A locked file (every line pinned with
hashes) is synced with --require-hashes; an unlocked one is installed.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nlp_modeltools.core.errors import UserError, run_tool
from nlp_modeltools.core.files import project_lock, read_text, write_atomic
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.lock.resolve import uv_environment

STAMP = ".installed"


@contextmanager
def job_env(
    envs: Path, tools: Tools, name: str, requirements: Path, *, job: str, locked: bool, find_links: Path | None = None
) -> Iterator[Path]:
    """The Python of envs/<name> ($(TOOLS)/envs/<name>), holding what requirements lists; made or remade when it
    changed, and held until the block ends: another process sharing the tools venv (another project's make
    package, with another lock) waits instead of remaking it under a running job.

    job names the make command that needs it, for messages. find_links (e.g. build/wheels) is searched first;
    with OFFLINE=1 it is the only source. Raises UserError with uv's reason; nothing half-made is left.
    """
    directory = envs / name
    python = directory / "bin" / "python"
    stamp = f"{sys.version_info[:2]} sha256:{hashlib.sha256(requirements.read_bytes()).hexdigest()}\n"
    with project_lock(directory.parent):
        if not python.exists() or read_text(directory / STAMP) != stamp:
            if tools.offline and find_links is None:
                raise UserError(f"OFFLINE=1, but {job} needs {directory} set up: run {job} once with network access")
            print(f"{job}: setting up {directory} from {requirements}", flush=True)
            shutil.rmtree(directory, ignore_errors=True)
            try:
                _make(tools, directory, requirements, job=job, locked=locked, find_links=find_links)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)  # nothing half-made is taken for ready next time
                raise
            write_atomic(directory / STAMP, stamp)
        yield python


def _make(tools: Tools, directory: Path, requirements: Path, *, job: str, locked: bool,
          find_links: Path | None) -> None:  # fmt: skip
    uv = tools.program("uv")
    env = {**uv_environment(tools.environ), "UV_PYTHON_DOWNLOADS": "never"}
    fix = f"Read the message above (a package source in .env, the network), then run {job} again"
    run_tool([uv, "venv", "--quiet", "--python", sys.executable, str(directory)], what=f"creating {directory}",
             env=env, redact=tools.redact, fix=fix)  # fmt: skip
    command = [uv, "pip", "sync", "--require-hashes"] if locked else [uv, "pip", "install"]
    command += ["--quiet", "--python", str(directory / "bin" / "python")]
    if find_links is not None and find_links.is_dir():
        command += ["--find-links", str(find_links)]
    if tools.offline:
        command += ["--offline", "--no-index"]
    command += [str(requirements)] if locked else ["--requirement", str(requirements)]
    run_tool(command, what=f"installing {requirements.name} into {directory}",
             env=env, redact=tools.redact, fix=fix)  # fmt: skip

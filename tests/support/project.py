"""Render the template and drive the generated project's Makefile, for real."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from copier import run_copy

REPO = Path(__file__).resolve().parents[2]
# Everything the generated Makefile printed in this run: the README's quoted messages are checked against it
# (tests/readme_messages.py, when the whole suite has run). Each worker process also appends it to a file of its
# own in NLP_TEST_OUTPUTS, which the controller reads at the end.
OUTPUTS: list[str] = []
SEPARATOR = "\n\0\n"


def record_output(text: str) -> None:
    OUTPUTS.append(text)
    if directory := os.environ.get("NLP_TEST_OUTPUTS"):
        with open(Path(directory) / f"{os.getpid()}.log", "a", errors="replace") as log:
            log.write(text + SEPARATOR)


def render(dst: Path, **answers: object) -> Path:
    """copier copy of this checkout (uncommitted work included), tasks run, defaults elsewhere."""
    run_copy(str(REPO), dst, data=answers, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    return dst


@dataclass
class MakeResult:
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"$ {self.command}  (exit {self.returncode})\n{self.stdout}\n--- stderr ---\n{self.stderr}"


class MakeError(AssertionError):
    pass


def make_argv(project: Path, *args: str) -> list[str]:
    return ["make", "--no-print-directory", "-C", str(project), *args]


def make_env(env: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **(env or {})}


def make(project: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> MakeResult:
    """Run the generated Makefile; on an unexpected failure, show everything it printed."""
    command = make_argv(project, *args)
    completed = subprocess.run(command, capture_output=True, text=True, env=make_env(env))
    result = MakeResult(" ".join(command), completed.returncode, completed.stdout, completed.stderr)
    record_output(result.output)
    if check and result.returncode:
        raise MakeError(str(result))
    print(result)  # pytest shows it when a test fails
    return result


def copy_project(source: Path, dst: Path, with_venvs: bool = False) -> Path:
    """A copy of a project for one test; wheels are hard-linked, venvs left out unless asked."""
    ignore = None if with_venvs else shutil.ignore_patterns(".venv", "tools")
    shutil.copytree(source, dst, symlinks=True, ignore=ignore, copy_function=_link_or_copy)
    return dst


def _link_or_copy(source: str, target: str) -> None:
    # Wheels are read-only in practice; text files are copied so tests may edit them.
    if source.endswith(".whl"):
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)


def venv_python(project: Path, code: str) -> str:
    completed = subprocess.run(
        [str(project / ".venv/bin/python"), "-c", code], capture_output=True, text=True, check=False
    )
    if completed.returncode:
        raise AssertionError(f"{code!r} failed:\n{completed.stderr}")
    return completed.stdout


def tree(root: Path) -> set[str]:
    """Every file under root, relative, with .git left out."""
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }

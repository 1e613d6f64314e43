"""Secrets from .env: which are required, whether a private source accepts them, where they leak.

make includes .env and exports its variables, so values reach these steps
already expanded (PIP_FIND_LINKS=https://$(PRODIGY_KEY)@…). Nothing here
prints a value: messages name the variable and the host only.
"""

from __future__ import annotations

import subprocess
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path

import requests

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.http import Session
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.core.redact import mask
from nlp_modeltools.core.tools import SOURCE_VARIABLES


def require_variables(names: Iterable[str], environ: Mapping[str, str], env_file: Path) -> None:
    """Stop before any resolver when a variable a private package needs (REQUIRED_ENV) is missing or empty."""
    for name in names:
        if environ.get(name, "").strip():
            continue
        if not env_file.exists():
            raise UserError(
                f"{env_file.name} is missing, and {name} must be set for a private package: "
                f"cp .env.example .env && chmod 600 .env, then set {name} in it"
            )
        raise UserError(f"{name} is empty: set it in .env (see .env.example); a private package needs it")


def check_private_sources(session: Session, environ: Mapping[str, str], secrets: list[tuple[str, str]]) -> None:
    """Ask each package source that carries credentials once, so that a refused key is named early.

    secrets: .env's (name, value) pairs, to name the variable whose value is in a refused URL.
    """
    for variable in SOURCE_VARIABLES:
        for url in environ.get(variable, "").split():
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in ("http", "https") and "@" in parts.netloc:
                names = [name for name, value in secrets if value in url]
                _probe(session, variable, url, names)


def _probe(session: Session, variable: str, url: str, names: list[str]) -> None:
    check = " and ".join(dict.fromkeys([*names, variable]))
    try:
        response = session.get(url, timeout=30)
    except requests.RequestException as error:
        raise UserError(
            f"cannot reach {mask(url)}, the package source in {variable} ({type(error).__name__})"
        ) from None
    if (code := response.status_code) in (401, 403):
        where = urllib.parse.urlsplit(url).hostname
        raise UserError(
            f"{where} refused the credentials in {variable} (HTTP {code} from {mask(url)}): check {check} in .env"
        )


def tracked_files(project: Path) -> list[Path]:
    result = subprocess.run(["git", "ls-files", "-z"], cwd=project, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return [project / name for name in result.stdout.split("\0") if name]
    skip = {".git", ".venv", "build", "node_modules"}
    return [p for p in project.rglob("*") if p.is_file() and not skip & set(p.relative_to(project).parts)]


def find_leaks(root: Path, env_file: Path, secrets: list[tuple[str, str]], extra: Iterable[Path]) -> list[str]:
    """'file:line holds the value of NAME' for each secret (.env's name, value) found in a committed file or extra."""
    if not secrets:
        return []
    project = root.resolve()
    env_file = env_file.resolve()
    leaks = []
    for path in dict.fromkeys(p.resolve() for p in [*tracked_files(project), *extra]):
        if path == env_file or not path.is_file():
            continue
        try:
            lines = path.read_text().splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        where = path.relative_to(project) if path.is_relative_to(project) else path
        for number, line in enumerate(lines, start=1):
            leaks += [f"{where}:{number} holds the value of {name}" for name, value in secrets if value in line]
    return leaks


def check_no_leaks(paths: Paths, secrets: list[tuple[str, str]], extra: Iterable[Path] = ()) -> None:
    """Raise UserError naming every file:line that holds a value of .env (tracked files, the lock, the answers)."""
    leaks = find_leaks(paths.root, paths.env_file, secrets, [paths.lock, paths.answers, *extra])
    if leaks:
        raise UserError(
            "a secret from .env is in a file git tracks (or in requirements.txt): " + "; ".join(leaks) + ". "
            "Remove it from there, rotate it, and keep it in .env only"
        )

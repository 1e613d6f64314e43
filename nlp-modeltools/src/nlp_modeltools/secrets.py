"""Secrets from .env: which are required, whether a private source accepts them, where they leak.

make includes .env and exports its variables, so values reach these steps
already expanded (PIP_FIND_LINKS=https://$(PRODIGY_KEY)@…). Nothing here
prints a value: messages name the variable and the host only.
"""

from __future__ import annotations

import subprocess
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import requests

from nlp_modeltools import envfile
from nlp_modeltools.errors import UserError, mask
from nlp_modeltools.http import Session
from nlp_modeltools.settings import SOURCE_VARIABLES, Settings


def require_variables(settings: Settings) -> None:
    """Stop before any resolver when a variable a private package needs is missing or empty."""
    env_file = settings.paths.env_file
    for name in settings.get("REQUIRED_ENV").split():
        if settings.get(name):
            continue
        if not env_file.exists():
            raise UserError(
                f"{env_file.name} is missing, and {name} must be set for a private package: "
                f"cp .env.example .env && chmod 600 .env, then set {name} in it"
            )
        raise UserError(f"{name} is empty: set it in .env (see .env.example); a private package needs it")


def check_private_sources(settings: Settings) -> None:
    """Ask each package source that carries credentials once, so that a refused key is named early."""
    secrets = envfile.secret_values(settings.env_values)
    for variable in SOURCE_VARIABLES:
        for url in settings.get(variable).split():
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in ("http", "https") and "@" in parts.netloc:
                names = [name for name, value in secrets if value in url]
                _probe(settings.session, variable, url, names)


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


def find_leaks(settings: Settings, extra: Iterable[Path]) -> list[str]:
    """'file:line holds the value of NAME' for each secret of .env found in a committed file."""
    secrets = envfile.secret_values(settings.env_values)
    if not secrets:
        return []
    project = settings.paths.root.resolve()
    env_file = settings.paths.env_file.resolve()
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


def check_no_leaks(settings: Settings, extra: Iterable[Path] = ()) -> None:
    paths = settings.paths
    leaks = find_leaks(settings, [paths.lock, paths.answers, *extra])
    if leaks:
        raise UserError(
            "a secret from .env is in a file git tracks (or in requirements.txt): " + "; ".join(leaks) + ". "
            "Remove it from there, rotate it, and keep it in .env only"
        )


def check_secrets(settings: Settings) -> None:
    check_no_leaks(settings)
    print("check-secrets: no value of .env appears in a tracked file or in requirements.txt")


def check_env(settings: Settings) -> None:
    """Run by make whenever .env changed (settings.env_values checks every line first); says so once without one."""
    if not settings.paths.env_file.is_file():
        print("make: this project has no .env, so it runs with the Makefile's settings alone; to give credentials "
              "or settings, cp .env.example .env && chmod 600 .env and edit it", flush=True)  # fmt: skip

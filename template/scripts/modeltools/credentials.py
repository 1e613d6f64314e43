"""Secrets from .env: which are required, whether a private source accepts them, where they leak.

make includes .env and exports its variables, so the values reach these steps
through the environment, already expanded (PIP_FIND_LINKS=https://$(PRODIGY_KEY)@…).
Nothing here prints a value: messages name the variable and the host only.
"""

from __future__ import annotations

import re
import subprocess
import urllib.error
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modeltools.common import UserError, redact
from modeltools.net import open_url

PIP_SOURCE_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")
SECRET_NAME_RE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
ASSIGNMENT_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*[:?+]?=\s*(.*)$")
MIN_SECRET_LENGTH = 4


def env_file_values(env_file: Path) -> dict[str, str]:
    """NAME -> raw value of each assignment in .env (make syntax; comments and blanks skipped)."""
    values = {}
    for line in env_file.read_text().splitlines() if env_file.exists() else []:
        match = ASSIGNMENT_RE.match(line)
        if match and not line.lstrip().startswith("#"):
            values[match.group(1)] = match.group(2).strip()
    return values


def url_secret(value: str) -> str | None:
    """The secret part of a URL's user-info: the password, or the user when there is none."""
    netloc = urllib.parse.urlsplit(value).netloc
    if "@" not in netloc:
        return None
    user, _, password = netloc.rsplit("@", 1)[0].partition(":")
    return urllib.parse.unquote(password or user)


@dataclass(frozen=True)
class Secret:
    name: str
    value: str


def secrets_of(env_file: Path, environ: Mapping[str, str]) -> list[Secret]:
    """Values of .env that must not leak: secret-named variables and credentials inside URLs."""
    found = []
    for name, raw in env_file_values(env_file).items():
        value = environ.get(name, raw)
        candidates = [value] if SECRET_NAME_RE.search(name) else []
        candidates += [s for url in value.split() if (s := url_secret(url))]
        found += [Secret(name, c) for c in candidates if len(c) >= MIN_SECRET_LENGTH and "$(" not in c]
    return found


def require_variables(names: list[str], env_file: Path, environ: Mapping[str, str]) -> None:
    """Stop before pip when a variable a private package needs is missing or empty."""
    for name in names:
        if environ.get(name, "").strip():
            continue
        if not env_file.exists():
            raise UserError(
                f"{env_file} is missing, and {name} must be set for the private packages in requirements.in: "
                f"cp {env_file}.example {env_file} && chmod 600 {env_file}, then set {name} in it"
            )
        raise UserError(f"{name} is empty: set it in {env_file} (see {env_file}.example); a private package needs it")


def check_private_sources(env_file: Path, environ: Mapping[str, str]) -> None:
    """Ask each pip source that carries credentials once, so a refused key is named early and clearly."""
    secrets = secrets_of(env_file, environ)
    for variable in PIP_SOURCE_VARIABLES:
        for url in environ.get(variable, "").split():
            if urllib.parse.urlsplit(url).scheme in ("http", "https") and url_secret(url):
                _probe(variable, url, [s.name for s in secrets if s.value in url])


def _probe(variable: str, url: str, names: list[str]) -> None:
    host = urllib.parse.urlsplit(url).hostname
    check = " and ".join(dict.fromkeys([*names, variable]))
    try:
        with open_url(url, timeout=30):
            return
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise UserError(
                f"{host} refused the credentials in {variable} (HTTP {error.code} from {redact(url)}): "
                f"check {check} in .env"
            ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"cannot reach {redact(url)}, the package source in {variable} ({reason})") from None


def tracked_files(project: Path) -> list[Path]:
    result = subprocess.run(["git", "ls-files", "-z"], cwd=project, capture_output=True, text=True)
    if result.returncode == 0:
        return [project / name for name in result.stdout.split("\0") if name]
    skip = {".git", ".venv", "build", "node_modules"}
    return [p for p in project.rglob("*") if p.is_file() and not skip & set(p.relative_to(project).parts)]


def find_leaks(project: Path, env_file: Path, extra: list[Path], environ: Mapping[str, str]) -> list[str]:
    """'file:line holds the value of NAME' for each secret of .env found in a committed file."""
    secrets = secrets_of(env_file, environ)
    leaks = []
    project = project.resolve()
    files = dict.fromkeys(p.resolve() for p in [*tracked_files(project), *(project / e for e in extra)])
    for path in files:
        if path == (project / env_file).resolve() or not path.is_file():
            continue
        try:
            lines = path.read_text().splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        where = path.relative_to(project)
        for number, line in enumerate(lines, start=1):
            leaks += [f"{where}:{number} holds the value of {s.name}" for s in secrets if s.value in line]
    return leaks

"""The one reader of .env, with make's meaning of every line it accepts.

make includes .env (`-include .env`) and exports what it sets, so make's syntax
is the file's syntax. This reader accepts the part of it that means the same
to make and to a person, and refuses the rest, naming the line and the
variable, never the value:

    NAME=value            no quotes (make would keep them), no spaces at the end
    export NAME=value     the same
    NAME=$(OTHER)/x       a reference to another variable, as make expands it
    \\#  $$               a literal '#' and a literal '$'
    # a comment           on a line of its own only

A '#' inside a value starts a comment for make, which would cut a secret short.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nlp_modeltools.core.errors import UserError

ASSIGNMENT = re.compile(r"^(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*(?::{0,2}|\?)=[ \t]*(.*)$")
REFERENCE = re.compile(r"\$(?:\(([A-Za-z_][A-Za-z0-9_]*)\)|\{([A-Za-z_][A-Za-z0-9_]*)\}|(\$))")
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
QUOTING_RULES = "see the rules at the top of .env.example"


@dataclass(frozen=True)
class Assignment:
    name: str
    raw: str
    line: int


def parse(text: str, source: str = ".env") -> list[Assignment]:
    """Every assignment of the file; any line make would read otherwise is refused."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = ASSIGNMENT.match(stripped)
        if not match:
            raise UserError(
                f"{source}:{number} is not a NAME=value line: make would read it as make code ({QUOTING_RULES})"
            )
        name, raw = match.group(1), line[line.index("=") + 1 :].lstrip(" \t")
        _check_value(name, raw, f"{source}:{number}")
        found.append(Assignment(name, raw, number))
    return found


def _check_value(name: str, raw: str, where: str) -> None:
    problem = None
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", raw):
        problem = "holds a control character"
    elif raw.endswith("\\"):
        problem = "ends with \\, which joins the next line to it for make"
    elif any(len(m.group(1)) != 1 for m in re.finditer(r"(\\*)#", raw)):  # '#', '\\#': a comment starts there
        problem = (
            "holds a '#' make reads as a comment: write a literal # as \\# (one backslash), comments on their own line"
        )
    elif raw != raw.rstrip():
        problem = "ends with spaces or tabs, which make keeps in the value: remove them"
    elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        problem = "is quoted, and make keeps the quotes in the value: remove them"
    elif "$" in REFERENCE.sub("", raw):
        problem = "holds a '$' make would expand: write a literal $ as $$, a variable as $(NAME)"
    if problem:
        raise UserError(f"{where}: the value of {name} {problem} ({QUOTING_RULES})")


def expand(assignments: list[Assignment], environ: Mapping[str, str]) -> dict[str, str]:
    """The values as make gives them to the commands it runs (later lines win, like make)."""
    values: dict[str, str] = {}

    def lookup(name: str, seen: tuple[str, ...]) -> str:
        if name in seen:
            return ""  # make would stop on the loop; the value is not needed for what we check
        raw = next((a.raw for a in reversed(assignments) if a.name == name), None)
        return environ.get(name, "") if raw is None else substitute(raw, (*seen, name))

    def substitute(raw: str, seen: tuple[str, ...]) -> str:
        def one(match: re.Match[str]) -> str:
            return "$" if match.group(3) else lookup(match.group(1) or match.group(2), seen)

        return REFERENCE.sub(one, raw).replace("\\#", "#")

    for assignment in assignments:
        # Under make, the environment holds make's own expansion: it is the truth.
        values[assignment.name] = environ.get(assignment.name) or lookup(assignment.name, ())
    return values


def read(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """NAME -> value of a checked .env (empty when there is none)."""
    if not path.is_file():
        return {}
    return expand(parse(path.read_text(errors="replace"), str(path)), environ)


def secret_values(values: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable, value) pairs that must not leak: secret-named values and credentials inside URLs."""
    found = []
    for name, value in values.items():
        if SECRET_NAME.search(name) and value.strip():
            found.append((name, value))
        for word in value.split():
            netloc = urllib.parse.urlsplit(word).netloc
            if "@" in netloc:
                user, _, password = netloc.rpartition("@")[0].partition(":")
                found.append((name, urllib.parse.unquote(password or user)))
    return [(name, value) for name, value in found if len(value) >= 4]

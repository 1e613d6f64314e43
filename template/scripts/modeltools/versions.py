"""PEP 440 version specifiers, for the plain X.Y.Z release numbers spaCy and its models use."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modeltools.common import UserError

REQUIREMENT_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*)")
CLAUSE_RE = re.compile(r"(~=|===|==|!=|<=|>=|<|>)\s*([0-9][0-9.]*(?:\.\*)?)")


def parse_version(text: str) -> tuple[int, ...]:
    match = re.fullmatch(r"v?(\d+(?:\.\d+)*)", text.strip())
    if not match:
        raise UserError(f"unsupported version {text!r}: use plain release numbers such as 3.8.0")
    return tuple(int(part) for part in match.group(1).split("."))


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


@dataclass(frozen=True)
class Specifier:
    """A set of clauses such as >=3.8.0,<3.9.0; empty means any version."""

    clauses: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Specifier:
        clauses = []
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            match = CLAUSE_RE.fullmatch(part)
            if not match:
                raise UserError(f"cannot read the version range {text!r} (write it like >=3.7,<3.9)")
            clauses.append((match.group(1), match.group(2)))
        return cls(tuple(clauses))

    def __str__(self) -> str:
        return ",".join(op + version for op, version in self.clauses)

    def contains(self, version: str) -> bool:
        candidate = parse_version(version)
        return all(_holds(op, bound, candidate) for op, bound in self.clauses)


def _holds(op: str, bound: str, candidate: tuple[int, ...]) -> bool:
    if bound.endswith(".*"):
        prefix = parse_version(bound[:-2])
        same = candidate[: len(prefix)] == prefix
        return same if op == "==" else not same
    version, target = _padded(candidate, parse_version(bound))
    if op == "~=":
        release = parse_version(bound)
        return version >= target and version[: len(release) - 1] == release[:-1]
    return {
        "==": version == target,
        "===": version == target,
        "!=": version != target,
        "<": version < target,
        "<=": version <= target,
        ">": version > target,
        ">=": version >= target,
    }[op]


def split_requirement(text: str) -> tuple[str, Specifier]:
    """'spacy>=3.8,<3.9 ; python_version > "3"' -> ('spacy', Specifier); markers are ignored."""
    match = REQUIREMENT_RE.match(text)
    if not match or "@" in match.group(3):
        raise UserError(f"cannot read the requirement {text.strip()!r}")
    return match.group(1), Specifier.parse(match.group(3))


def minor_series(spec: Specifier, majors: range = range(1, 6), minors: range = range(40)) -> list[str]:
    """The X.Y series a specifier admits some release of: spacy>=3.8,<3.9 -> ['3.8']."""
    return [
        f"{major}.{minor}"
        for major in majors
        for minor in minors
        if any(spec.contains(f"{major}.{minor}.{patch}") for patch in range(100))
    ]


def overlaps(first: Specifier, second: Specifier) -> bool:
    """Whether some X.Y.Z release satisfies both (over the series the second admits)."""
    return any(
        first.contains(version) and second.contains(version)
        for series in minor_series(second)
        for version in (f"{series}.{patch}" for patch in range(100))
    )

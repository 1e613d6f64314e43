"""requirements.txt: read it, turn a resolver's draft into the committed lock, check it, compare two.

The resolver sees each model as `name @ file:///…/build/<wheel>`; the lock
records it as `name==version` with the hash of that file alone, in a block of
its own at the end (so an image build can install models with no index).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.models.inputs import CONFLICT

if TYPE_CHECKING:  # packaging is imported where it is used: installing from a lock needs none of it
    from packaging.requirements import Requirement
    from packaging.utils import NormalizedName
    from packaging.version import Version


FORMAT = "2"  # bump when the post-processing changes, so that older locks are compiled again
DIGEST_PREFIX = "# make lock inputs: sha256:"
SCOPE_PREFIX = "# make lock: "
UNIVERSAL = "for every platform and Python (uv pip compile --universal; markers choose what each installs)"
MODELS_HEADER = "# Models: installed from build/ only, never from a package index (see requirements-model.in)."
SOURCE_OPTION = re.compile(r"^\s*(-i|-f|--index-url|--extra-index-url|--find-links|--trusted-host)\b")


@dataclass
class LockEntry:
    """One requirement of a lock: its line, its hashes and its '# via' sources."""

    requirement: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)

    @property
    def parsed(self) -> Requirement:
        from packaging.requirements import Requirement

        return Requirement(self.requirement.split(" \\")[0])

    @property
    def name(self) -> NormalizedName:
        from packaging.utils import canonicalize_name

        return canonicalize_name(self.parsed.name)

    @property
    def is_model(self) -> bool:
        """Locked as a model: from requirements-model.in, by its build/ file's hash."""
        return "-r requirements-model.in" in self.via

    @property
    def version(self) -> str:
        specifiers = [s for s in self.parsed.specifier if s.operator in ("==", "===")]
        return specifiers[0].version if specifiers else ""

    def render(self) -> str:
        lines = [self.requirement + (" \\" if self.hashes else "")]
        lines += [f"    --hash={h}" + (" \\" if i < len(self.hashes) - 1 else "") for i, h in enumerate(self.hashes)]
        if len(self.via) == 1:
            lines.append(f"    # via {self.via[0]}")
        elif self.via:
            lines += ["    # via", *(f"    #   {source}" for source in self.via)]
        return "\n".join(lines) + "\n"


@dataclass
class Lock:
    header: list[str]
    entries: list[LockEntry]

    def render(self, digest: str | None = None) -> str:
        header = [line for line in self.header if not line.startswith(DIGEST_PREFIX)]
        if digest:
            header.append(f"{DIGEST_PREFIX}{digest}")
        models = [e for e in self.entries if e.is_model]
        others = [e for e in self.entries if e not in models]
        text = "\n".join(header) + "\n" + "".join(e.render() for e in others)
        if models:
            text += f"\n{MODELS_HEADER}\n" + "".join(e.render() for e in models)
        return text

    @property
    def universal(self) -> bool:
        """Whether this lock serves every platform (uv's universal lock), not only the machine that made it."""
        return SCOPE_PREFIX + UNIVERSAL in self.header

    def by_name(self) -> dict[NormalizedName, LockEntry]:
        return {entry.name: entry for entry in self.entries}

    def version_of(self, name: str) -> Version | None:
        from packaging.utils import canonicalize_name
        from packaging.version import Version

        entry = self.by_name().get(canonicalize_name(name))
        return Version(entry.version) if entry and entry.version else None


def parse(text: str, where: str = "requirements.txt") -> Lock:
    """The header comments, then each entry with its continuation lines; other comments are dropped.

    Raises UserError naming the line when a merge left its conflict markers in the file (where: its name).
    """
    header: list[str] = []
    entries: list[LockEntry] = []
    entry: LockEntry | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if CONFLICT.match(line):
            raise UserError(f"{where}:{number} is a merge-conflict marker ({line[:7]}): take one side of the "
                            f"conflict (git checkout --theirs {where}, say), then run make lock")  # fmt: skip
        body = line.strip().rstrip("\\").strip()
        if line[:1] in (" ", "\t") and entry is not None:
            if body.startswith("--hash="):
                entry.hashes.append(body[len("--hash=") :])
            elif body.startswith("# via "):
                entry.via.append(body[len("# via ") :])
            elif body.startswith("#") and body != "# via":
                entry.via.append(body.lstrip("#").strip())
        elif line and not line.startswith(("#", "-", " ", "\t")):
            entry = LockEntry(body)
            entries.append(entry)
        elif not entries and line.startswith("#"):
            header.append(line)
    return Lock(header, entries)


def read(path: Path) -> Lock | None:
    return parse(path.read_text()) if path.is_file() else None


def read_required(path: Path) -> tuple[Lock, str]:
    """The lock at path and its text; raises UserError naming make lock when there is none."""
    if not path.is_file():
        raise UserError(f"{path.name} is missing: run make lock")
    text = path.read_text()
    return parse(text), text


def venv_holds(venv: Path, lock: Path) -> bool:
    """Whether the venv was synced with the lock as it is now (make install copies it to .installed)."""
    stamp = venv / ".installed"
    return (venv / "bin" / "python").exists() and stamp.is_file() and lock.is_file() and (
        stamp.read_bytes() == lock.read_bytes()
    )  # fmt: skip


def finish(draft: str, models: Mapping[NormalizedName, tuple[str, str]], scope: str) -> Lock:
    """A resolver's draft as the committed lock: models (name -> (pin name==version, sha256 of its build/ file))
    pinned by version and that hash alone, sources tidied, and a header line that says which machines it serves."""
    lock = parse(draft)
    lock.header = [line for line in lock.header if not line.startswith(SCOPE_PREFIX)] + [SCOPE_PREFIX + scope]
    for entry in lock.entries:
        entry.via = [_tidy_source(source) for source in entry.via]
        if entry.name in models:
            pin, sha256 = models[entry.name]
            entry.requirement = pin
            entry.hashes = [f"sha256:{sha256}"]
            entry.via = ["-r requirements-model.in", *(v for v in entry.via if v != "-r requirements.in")]
    return lock


def _tidy_source(source: str) -> str:
    """The resolver ran in build/lock/: name the project's own files, as a user sees them."""
    return re.sub(r"(-[rc] )(?:\.\./\.\./)+", r"\1", source)


def problems(lock: Lock, text: str) -> list[str]:
    """What would make a lock unsafe to commit or to install by hash."""
    found = []
    for line in text.splitlines():
        if SOURCE_OPTION.match(line):
            found.append(f"it names a package source ({line.split()[0]} …)")
        if "file:" in line or re.search(r"://[^/\s]*@", line):
            found.append("it holds a local path or a URL with credentials")
    for entry in lock.entries:
        try:
            pinned = entry.parsed.url is None and bool(entry.version)
        except ValueError:  # packaging's InvalidRequirement
            pinned = False
        if not pinned:
            found.append(f"{entry.requirement} is not pinned with ==")
        if not entry.hashes:
            found.append(f"{entry.requirement} has no --hash")
    return found


def recorded_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX) :].strip()
    return None


def inputs_digest(files: Iterable[Path], model_hashes: Mapping[str, str], python: str) -> str:
    """What a lock depends on: the requirement files (as text, LF or CRLF alike), each model file, the Python."""
    digest = hashlib.sha256(f"format {FORMAT} python {python}\n".encode())
    for path in files:
        digest.update(f"{path.name}\n{path.read_text()}".encode())
    for name in sorted(model_hashes):
        digest.update(f"{name} {model_hashes[name]}\n".encode())
    return digest.hexdigest()


def changes(old: Lock | None, new: Lock, sources: Mapping[str, str]) -> list[str]:
    """'name: old -> new' for every version that moved, appeared or left, and 'name version: file changed,
    sha256 old… -> new…' for a file replaced at the same version, with where the new one came from (sources)."""
    entries = [*(old.entries if old else []), *new.entries]
    shown = {entry.name: entry.parsed.name for entry in entries}
    before = {e.name: (e.version, e.hashes) for e in old.entries} if old else {}
    after = {e.name: (e.version, e.hashes) for e in new.entries}
    found = []
    for name in sorted(before.keys() | after.keys()):
        (was, old_hashes), (now, new_hashes) = before.get(name, ("(new)", [])), after.get(name, ("(removed)", []))
        if was != now:
            found.append(f"  {shown[name]}: {was} -> {now}")
        elif not set(old_hashes) <= set(new_hashes):  # a file replaced, not one more file for another platform
            gone = sorted(set(old_hashes) - set(new_hashes))[0].removeprefix("sha256:")
            came = sorted(set(new_hashes) - set(old_hashes) or new_hashes)[0].removeprefix("sha256:")
            where = f" (from {sources[name]})" if name in sources else ""
            found.append(f"  {shown[name]} {now}: file changed, sha256 {gone[:12]}… -> {came[:12]}…{where}")
    return found

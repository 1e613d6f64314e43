"""build/wheels/: every file requirements.txt needs, found by hash, so installs and image builds need no index.

Models are linked from build/; everything else is downloaded once with
`pip download --require-hashes` (uv has no download command), for this machine
or, for an image, for another platform and Python. A file whose bytes changed
is replaced, a file no longer locked is removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.requirements import Requirement

from nlp_modeltools.core.errors import UserError, run_tool
from nlp_modeltools.core.files import HashCache, describe_os_error, link_or_copy, write_atomic
from nlp_modeltools.core.platforms import ImageTarget
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.lock.lockfile import Lock, LockEntry
from nlp_modeltools.lock.resolve import resolver_failure

STAMP = ".complete"


class Wheelhouse:
    """The files of one wheelhouse directory, by sha256."""

    def __init__(self, directory: Path, hashes: HashCache) -> None:
        self.directory = directory
        files = sorted(p for p in directory.glob("*") if p.is_file() and not p.name.startswith("."))
        self.by_hash = {f"sha256:{hashes.sha256(path)}": path for path in files}

    def find(self, entry: LockEntry) -> Path | None:
        return next((self.by_hash[h] for h in entry.hashes if h in self.by_hash), None)

    def missing(self, lock: Lock, environment: Environment = None) -> list[LockEntry]:
        """The entries this machine (or the given target) needs that have no file here."""
        return [entry for entry in lock.entries if applies(entry, environment) and self.find(entry) is None]

    def strays(self, lock: Lock) -> list[Path]:
        """Files no entry of the lock matches: older versions, or a locked file whose bytes changed."""
        needed = {self.find(entry) for entry in lock.entries}
        return [path for path in self.by_hash.values() if path not in needed]


Environment = dict[str, str] | None  # marker variables of a target; None: this machine


def applies(entry: LockEntry, environment: Environment) -> bool:
    """Whether an entry's marker (e.g. `; sys_platform == "darwin"`) selects it for the target."""
    if ";" not in entry.requirement:
        return True
    marker = entry.parsed.marker
    return marker is None or marker.evaluate(environment)


def stamp_text(lock_text: str) -> str:
    return f"sha256:{hashlib.sha256(lock_text.encode()).hexdigest()}\n"


def pip_download(
    tools: Tools,
    entries: Sequence[LockEntry],
    dest: Path,
    target: ImageTarget | None,
    lines: Sequence[tuple[str, Requirement]] = (),
) -> None:
    """pip download of exactly these entries (by hash, no dependencies) into dest, for target (None: this machine).

    lines (requirement lines with where they are) let a failure name the line it concerns; raises UserError.
    """
    listing = dest / ".missing.txt"  # markers already chose these for the target: pip would judge them by this machine
    listing.write_text(
        "".join(f"{e.requirement.split(';')[0]} {' '.join(f'--hash={h}' for h in e.hashes)}\n" for e in entries)
    )
    where = f" for {target.uv_platform}, Python {target.python_version}" if target else ""
    print(f"wheelhouse: downloading {len(entries)} packages into {dest}/{where}", flush=True)
    command = [tools.program("python"), "-m", "pip", "download", "--quiet", "--no-deps",
               "--require-hashes", "--disable-pip-version-check", "--dest", str(dest),
               *(target.pip_options() if target else []), "--requirement", str(listing)]  # fmt: skip
    fix = ("give the line a marker in requirements.in for the platforms it serves (; sys_platform == \"win32\", say) "
           "or pin a version with a wheel for this one, then make lock")  # fmt: skip
    try:
        run_tool(command, what=f"pip download{where}", redact=tools.redact, fix=fix, quiet=True, env=tools.environ,
                 explain=lambda output: resolver_failure(output, list(lines)))  # fmt: skip
    finally:
        listing.unlink(missing_ok=True)


def fill(
    tools: Tools,
    hashes: HashCache,
    lock: Lock,
    lock_text: str,
    dest: Path,
    models: Mapping[str, Path],
    target: ImageTarget | None = None,
    lines: Sequence[tuple[str, Requirement]] = (),
) -> Wheelhouse:
    """Make dest hold exactly the lock's files (those of target: an image's, not this machine's), each by hash.

    models (name -> file in build/) are linked, never downloaded; the rest comes from pip download. Raises
    UserError naming the fix (make models for a model file, make wheelhouse online for OFFLINE=1, a line).
    """
    environment = target.marker_environment() if target else None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for path in models.values():
            linked = dest / path.name
            if not linked.exists() or hashes.sha256(linked) != hashes.sha256(path):
                link_or_copy(path, linked)
        house = Wheelhouse(dest, hashes)
        for stray in house.strays(lock):
            stray.unlink()
        house = Wheelhouse(dest, hashes)
        missing = house.missing(lock, environment)
        unfetched_models = [e.requirement for e in missing if e.is_model]
        if unfetched_models:  # a model never goes to pip by name: build/ must hold its locked file
            raise UserError(
                f"build/ has no file with the locked hash of {', '.join(unfetched_models)}: run make models "
                "(it fetches each model by that hash)"
            )
        if missing and tools.offline:
            names = ", ".join(e.requirement for e in missing)
            raise UserError(f"OFFLINE=1, but {dest}/ lacks {names}: run make wheelhouse once with network access")
        if missing:
            pip_download(tools, missing, dest, target, lines)
            refuse_sources(dest)
            house = Wheelhouse(dest, hashes)
        absent = house.missing(lock, environment)
        if absent:
            raise UserError(f"pip download did not provide {', '.join(e.requirement for e in absent)}; see above")
        for stray in house.strays(lock):  # a same-version file pip found elsewhere first
            stray.unlink()
        write_atomic(dest / STAMP, stamp_text(lock_text))
    except OSError as error:
        raise UserError(describe_os_error(error, dest)) from None
    hashes.save()
    return Wheelhouse(dest, hashes)


def refuse_sources(dest: Path) -> None:
    """Only wheels: an install with no index cannot build a source distribution (its build tools are not here)."""
    sources = [p for p in dest.iterdir() if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".whl")]
    for path in sources:
        path.unlink()
    if sources:
        raise UserError(
            f"{', '.join(p.name for p in sources)}: pip found only the source of these, and an install with no "
            "index cannot build it: pin a version that has wheels for this platform in requirements.in, "
            "then run make lock"
        )


def verify(hashes: HashCache, lock: Lock, directory: Path, environment: Environment = None) -> None:
    """Every locked file is there, with its hash (before an image build; after a refused install)."""
    house = Wheelhouse(directory, hashes)
    hashes.save()
    absent = house.missing(lock, environment)
    if absent:
        changed = [p.name for p in house.strays(lock)]
        detail = f" ({', '.join(changed)} changed or no longer locked)" if changed else ""
        raise UserError(
            f"{directory}/ lacks the locked file of {', '.join(e.requirement for e in absent[:5])}{detail}: "
            "run make wheelhouse (it fetches what is missing and replaces what changed)"
        )

"""Model wheels into build/: kept when present and right, else linked from the machine's store or downloaded once.

Everything is checked before a file gets its name in build/: the #sha256= a
line gives, the hash requirements.txt locked for that version, and that the
wheel's own METADATA is the model its URL names. A refused file is deleted.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName, parse_wheel_filename
from packaging.version import Version

from modeltools.errors import UserError, mask
from modeltools.files import HashCache, link_or_copy
from modeltools.http import Session
from modeltools.inputs import WheelSource
from modeltools.settings import Settings
from modeltools.store import ModelStore
from modeltools.wheels import ModelWheel, check_identity, expected_identity, read_model_wheel

HUB_PATH = re.compile(r"^/[^/]+/[^/]+/resolve/(?P<revision>[^/]+)/[^/]+$")
COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Expected:
    """What a model's file must hash to, and why (for the message when it does not)."""

    sha256: str
    reason: str
    fix: str
    version: Version | None = None  # set for a Hub file, whose name gives no version: the hash binds that version only

    def binds(self, version: Version) -> bool:
        return self.version is None or self.version == version


def wheels_in_build(build: Path) -> dict[tuple[NormalizedName, Version], Path]:
    """(name, version) -> wheel, for the model wheels directly in build/."""
    found = {}
    for path in sorted(build.glob("*.whl")):
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except ValueError:
            continue
        found[(name, version)] = path
    return found


def expectation(source: WheelSource, locked: dict[NormalizedName, tuple[str, str]], upgrade: bool) -> Expected | None:
    """The hash a line's file must have: its #sha256=, else the one requirements.txt locked for that version."""
    if source.sha256:
        return Expected(source.sha256, f"the #sha256= of {source.where}", "fix the #sha256= or the URL")
    name, version = expected_identity(source.filename, source.where)
    pinned = locked.get(name)
    if not pinned or upgrade or (version is not None and pinned[0] != str(version)):
        return None
    return Expected(
        pinned[1],
        f"requirements.txt, which locked {name}=={pinned[0]} with another file",
        "if the new file is the one you want, run make upgrade to lock it",
        version=Version(pinned[0]) if version is None else None,
    )


def hub_note(url: str, hub_endpoint: str) -> str | None:
    """A Hugging Face Hub URL at a moving revision (a branch, not a commit) is not reproducible."""
    parts, hub = urllib.parse.urlsplit(url), urllib.parse.urlsplit(hub_endpoint)
    match = HUB_PATH.match(parts.path) if parts.netloc.rpartition("@")[2] == hub.netloc else None
    if match and not COMMIT.fullmatch(match.group("revision")):
        return (
            f"note: {mask(url)} is at the moving revision {match.group('revision')!r}: the first file fetched is "
            "kept and locked; pin a commit instead of a branch to make it reproducible"
        )
    return None


@dataclass(frozen=True)
class Fetcher:
    """What fetching a model needs: build/, this machine's store, the download session, the hash cache."""

    build: Path
    store: ModelStore
    session: Session
    hashes: HashCache
    offline: bool

    @classmethod
    def of(cls, settings: Settings) -> Fetcher:
        return cls(settings.paths.build, settings.store, settings.session, settings.hashes, settings.offline)

    def wheel(self, source: WheelSource, expected: Expected | None) -> ModelWheel:
        """The wheel of one source in build/, under its PEP 427 name, checked."""
        name, version = expected_identity(source.filename, source.where)
        check_offered_hash(source, expected)
        wanted = version if version is not None else expected.version if expected else None
        present = wheels_in_build(self.build).get((name, wanted)) if wanted is not None else None
        if present is None and version is None:
            known = self.store.sha256_for_url(source.url)
            present = next((p for p in self.build.glob("*.whl") if known and self.hashes.sha256(p) == known), None)
        if present is not None:
            self.check_hash(present, expected, f"build/{present.name}")
            wheel = read_model_wheel(present)
            check_identity(wheel, name, version, source.where)
            return wheel
        if source.local:
            return self.copy_local(source, name, version, expected)

        def check(path: Path) -> None:
            wheel = read_model_wheel(path)
            check_identity(wheel, name, version, source.where)
            if version is None and expected is not None and expected.binds(wheel.version):
                self.check_hash(path, expected, f"{source.where}: the file")

        try:
            fetched = self.store.fetch(
                self.session, source.url, sha256=expected.sha256 if expected and version is not None else None,
                partial_dir=self.build / ".partial", check=check, label=source.filename, offline=self.offline,
            )  # fmt: skip
        except UserError as error:
            raise UserError(f"{source.where}: {error}") from None
        wheel = read_model_wheel(fetched.path)
        return read_model_wheel(self.store.link(fetched.sha256, self.build / wheel.filename))

    def check_hash(self, path: Path, expected: Expected | None, what: str) -> None:
        """A file that does not hash to what it must is refused, with the command that fixes it."""
        if expected is None:
            return
        actual = self.hashes.sha256(path)
        if actual != expected.sha256:
            if what.startswith("build/"):
                cause = f"it changed after it was fetched. Delete it (rm {what}) and run make models to fetch it again;"
            else:
                cause = "its source now serves another file, and nothing was kept;"
            raise UserError(
                f"{what} does not match {expected.reason} (sha256 {expected.sha256[:12]}… expected, "
                f"{actual[:12]}… found): {cause} {expected.fix}"
            )

    def copy_local(
        self, source: WheelSource, name: NormalizedName, version: Version | None, expected: Expected | None
    ) -> ModelWheel:
        """A wheel given as a file: checked where it is, then copied into build/ (once)."""
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(source.url).path))
        if not path.is_file():
            raise UserError(f"{source.where}: {path} does not exist: fix the path, or run make package if it is yours")
        self.check_hash(path, expected, str(path))
        wheel = read_model_wheel(path)
        check_identity(wheel, name, version, source.where)
        target = self.build / wheel.filename
        if path.resolve() != target.resolve():
            link_or_copy(path, target)
        return read_model_wheel(target)


def check_offered_hash(source: WheelSource, expected: Expected | None) -> None:
    """A links page or index that offers the locked version with another hash: refused before a byte is fetched."""
    if expected is not None and expected.version is None and source.sha256 and source.sha256 != expected.sha256:
        raise UserError(
            f"{source.where}: the index now offers this file with sha256 {source.sha256[:12]}…, not the "
            f"{expected.sha256[:12]}… of {expected.reason}: it was replaced after it was locked, so nothing was "
            f"downloaded. Have the original restored there; {expected.fix}"
        )

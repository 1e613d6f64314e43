"""Model wheels into build/: kept when present and right, else linked from the machine's store or downloaded once.

Everything is checked before a file gets its name in build/: the #sha256= a
line gives, the hash requirements.txt locked for that version, and that the
wheel's own METADATA is the model its URL names. A refused file is deleted.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName, parse_wheel_filename
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache, link_or_copy, sha256_of
from nlp_modeltools.core.http import Session
from nlp_modeltools.core.redact import mask
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.models.inputs import WheelSource
from nlp_modeltools.models.store import ModelStore
from nlp_modeltools.models.wheels import ModelWheel, build_wheel, check_identity, expected_identity, read_model_wheel

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
    if source.sha256 and not source.sdist:  # an sdist's #sha256= is checked at its download; its wheel is built
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
    tools: Tools  # its environment's python (whose pinned setuptools builds a wheel from an sdist), OFFLINE

    @property
    def offline(self) -> bool:
        return self.tools.offline

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
        if source.sdist:
            return self.built(source, name, version, expected)
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
                fix=f"The expected hash is {expected.reason}: {expected.fix}" if expected else "",
            )  # fmt: skip
        except UserError as error:
            text = str(error)  # a check of the file names the line itself
            raise UserError(text if text.startswith(f"{source.where}: ") else f"{source.where}: {text}") from None
        wheel = read_model_wheel(fetched.path)
        return read_model_wheel(self.store.link(fetched.sha256, self.build / wheel.filename))

    def built(
        self, source: WheelSource, name: NormalizedName, version: Version | None, expected: Expected | None
    ) -> ModelWheel:
        """The wheel of an sdist line: built once per machine (the store keeps it by the sdist's sha256)."""
        sdist_sha256 = source.sha256 or self.store.sha256_for_url(source.url)
        entry = self.store.built_from(sdist_sha256) if sdist_sha256 else None
        if entry is None:
            if source.local:
                sdist = source.path
                if not sdist.is_file():
                    raise UserError(f"{source.where}: {sdist} does not exist: fix the path")
                sdist_sha256 = sha256_of(sdist)
            else:
                fetched = self.store.fetch(self.session, source.url, sha256=source.sha256, label=source.filename,
                                           partial_dir=self.build / ".partial", offline=self.offline)  # fmt: skip
                sdist, sdist_sha256 = fetched.path, fetched.sha256
            entry = self.build_sdist(sdist, sdist_sha256, source)
        wheel = read_model_wheel(entry)
        check_identity(wheel, name, version, source.where)
        why = f"{source.filename} now builds another wheel (it changed, or builds differently here); nothing was kept;"
        self.check_hash(entry, expected, f"the wheel built from {source.where}", why)
        return read_model_wheel(self.store.link(self.hashes.sha256(entry), self.build / wheel.filename))

    def build_sdist(self, sdist: Path, sdist_sha256: str, source: WheelSource) -> Path:
        """Unpack an sdist, build its wheel with the tools venv's setuptools (no index), keep it in the store."""
        print(f"models: building a wheel from {source.filename} (once per machine)", flush=True)
        with tempfile.TemporaryDirectory(prefix=".sdist-", dir=self.build) as work:
            src = Path(work) / "src"
            with tarfile.open(sdist) as archive:
                archive.extractall(src, filter="data")  # no link or path out of src/ (PEP 706)
            roots = [d for d in src.iterdir() if (d / "setup.py").is_file() or (d / "pyproject.toml").is_file()]
            if len(roots) != 1:
                raise UserError(f"{source.where}: {source.filename} holds no package at its top: check the URL")
            fix = f"check that {source.filename} is a model's sdist (spacy package --build sdist), or list its wheel"
            what = f"{source.where}: building {source.filename}"
            wheel = build_wheel(self.tools, roots[0], Path(work) / "dist", what, fix)
            sha256 = sha256_of(wheel.path)
            entry = self.store.add(wheel.path, sha256)
        self.store.remember(f"built:{sdist_sha256}", sha256)
        return entry

    def check_hash(self, path: Path, expected: Expected | None, what: str, cause: str = "") -> None:
        """A file that does not hash to what it must is refused, with the command that fixes it."""
        if expected is None:
            return
        actual = self.hashes.sha256(path)
        if actual != expected.sha256:
            if not cause and what.startswith("build/"):
                cause = f"it changed after it was fetched. Delete it (rm {what}) and run make models to fetch it again;"
            cause = cause or "its source now serves another file, and nothing was kept;"
            raise UserError(
                f"{what} does not match {expected.reason} (sha256 {expected.sha256[:12]}… expected, "
                f"{actual[:12]}… found): {cause} {expected.fix}"
            )

    def copy_local(
        self, source: WheelSource, name: NormalizedName, version: Version | None, expected: Expected | None
    ) -> ModelWheel:
        """A wheel given as a file: checked where it is, then copied into build/ (once)."""
        path = source.path
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
    offered = source.sha256 if not source.sdist else None  # an sdist's hash is not its wheel's
    if expected is not None and expected.version is None and offered and offered != expected.sha256:
        raise UserError(
            f"{source.where}: the index now offers this file with sha256 {source.sha256[:12]}…, not the "
            f"{expected.sha256[:12]}… of {expected.reason}: it was replaced after it was locked, so nothing was "
            f"downloaded. Have the original restored there; {expected.fix}"
        )

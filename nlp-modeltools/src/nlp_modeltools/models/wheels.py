"""Model wheels: what a file is (its METADATA, read by packaging), safe file names, and whether a model fits spaCy."""

from __future__ import annotations

import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from nlp_modeltools.core.errors import UserError, run_tool
from nlp_modeltools.core.files import ZIP_EPOCH
from nlp_modeltools.core.tools import Tools

# spacy-huggingface-hub names its wheels <name>-any-py3-none-any.whl: 'any' where the version belongs.
HUB_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-any-py3-none-any\.whl$")
UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]|^\.|\.\.")


def archive_name(filename: str) -> tuple[NormalizedName, Version, frozenset[Tag]] | None:
    """Name, version and tags of a wheel file name (PEP 427) or name and version of an sdist's (PEP 625, tags
    empty); None when it is neither."""
    try:
        if filename.endswith(".tar.gz"):
            return (*parse_sdist_filename(filename), frozenset())
        name, version, _, tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return name, version, tags


@dataclass(frozen=True)
class ModelWheel:
    """A model wheel in build/, described by its own METADATA."""

    path: Path
    name: NormalizedName
    display_name: str
    version: Version
    requires: tuple[Requirement, ...]
    requires_python: SpecifierSet | None

    @property
    def pin(self) -> str:
        return f"{self.display_name}=={self.version}"

    @property
    def filename(self) -> str:
        return wheel_filename(self.display_name, self.version)

    def requirement_on(self, project: str) -> Requirement | None:
        """This wheel's own requirement on a project (e.g. spacy<3.9.0,>=3.8.0), extras aside."""
        wanted = canonicalize_name(project)
        for requirement in self.requires:
            if canonicalize_name(requirement.name) == wanted and "extra" not in str(requirement.marker or ""):
                return requirement
        return None


def wheel_filename(name: str, version: Version) -> str:
    """The PEP 427 name of a pure-Python model wheel: en_core_web_sm-3.8.0-py3-none-any.whl."""
    return f"{re.sub(r'[-_.]+', '_', name)}-{version}-py3-none-any.whl"


def expected_identity(filename: str, where: str) -> tuple[NormalizedName, Version | None]:
    """What a URL's file name promises: a PEP 427 wheel name, an sdist name (PEP 625, as `spacy package --build
    sdist` writes it), or a Hub wheel whose version is inside. Only a plain file name is taken: no separator,
    no '..', no control character."""
    if UNSAFE_NAME.search(filename):
        raise UserError(f"{where}: {filename!r} is not a plain file name (no /, \\, .. or control characters)")
    if hub := HUB_WHEEL.match(filename):
        return canonicalize_name(hub.group("name")), None
    if (parsed := archive_name(filename)) is None:
        raise UserError(
            f"{where}: {filename!r} is neither a wheel (name-version-py3-none-any.whl) nor an sdist "
            "(name-version.tar.gz): link to the model's wheel or source archive"
        )
    name, version, tags = parsed
    if tags and not any(tag.platform == "any" for tag in tags):
        raise UserError(f"{where}: {filename} is built for one platform; model wheels are pure Python (…-none-any.whl)")
    return name, version


def read_metadata(path: Path) -> Metadata:
    """The core metadata of a wheel: exactly one top-level *.dist-info/METADATA (PEP 427), parsed by packaging."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", name)]
            if len(names) != 1:
                raise UserError(f"{path.name} is not a wheel: it holds {len(names)} *.dist-info/METADATA files, "
                                "not one. Check the URL it came from")  # fmt: skip
            return Metadata.from_email(archive.read(names[0]), validate=False)
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(f"{path.name} is not a wheel ({error}): check the URL it came from") from None
    except (InvalidMetadata, ExceptionGroup) as error:
        raise UserError(f"{path.name}: its METADATA cannot be read ({error}); it is not a usable wheel") from None


def read_model_wheel(path: Path) -> ModelWheel:
    """Name, version and requirements from the wheel's METADATA."""
    try:
        metadata = read_metadata(path)
        name, version = metadata.name, Version(str(metadata.version))
        requires = tuple(metadata.requires_dist or ())
        return ModelWheel(path, canonicalize_name(name), name, version, requires, metadata.requires_python)
    except (InvalidMetadata, InvalidVersion, ExceptionGroup) as error:
        raise UserError(f"{path.name}: its METADATA cannot be read ({error}); it is not a usable wheel") from None


def check_identity(wheel: ModelWheel, name: NormalizedName, version: Version | None, where: str) -> None:
    """The wheel must be the model its URL names (a 'Hub' name promises only the project)."""
    if wheel.name != name or (version is not None and wheel.version != version):
        promised = f"{name} {version}" if version else name
        raise UserError(f"{where}: the file is {wheel.display_name} {wheel.version}, not {promised}; nothing was kept")


def check_fits_python(wheel: ModelWheel, where: str) -> None:
    running = Version(".".join(map(str, sys.version_info[:3])))
    if wheel.requires_python and not wheel.requires_python.contains(running, prereleases=True):
        raise UserError(
            f"{wheel.pin} ({where}) needs Python {wheel.requires_python}, but make runs {running}: "
            "set PYTHON (in .env) to an interpreter that fits"
        )


def _bounds(specifiers: SpecifierSet) -> list[Version]:
    """Each version a specifier set names, and one just above it (for '>' clauses)."""
    found = []
    for specifier in specifiers:
        try:
            version = Version(specifier.version.removesuffix(".*"))
        except InvalidVersion:
            continue
        found += [version, Version(".".join(map(str, (*version.release, 0, 1))))]
    return found


def spacy_fits(model: SpecifierSet, project: SpecifierSet, locked: Version | None) -> bool:
    """Whether a model's spaCy requirement admits the spaCy the project installs.

    With a lock, that is the locked version; before the first lock, the two
    ranges must share a version (tried at the bounds each one names).
    """
    if locked is not None and project.contains(locked, prereleases=True):
        return model.contains(locked, prereleases=True)
    candidates = _bounds(model) + _bounds(project)
    return any(model.contains(v, prereleases=True) and project.contains(v, prereleases=True) for v in candidates)


def build_wheel(tools: Tools, source: Path, out: Path, what: str, fix: str) -> ModelWheel:
    """The wheel of a source tree (setup.py or pyproject.toml), built reproducibly with this environment's backend.

    The same tree gives the same bytes on any machine, directory, umask or day: modes normalised (0644/0755),
    the build run under umask 022 (so what it writes itself, e.g. an __init__.py, has the same mode too),
    SOURCE_DATE_EPOCH fixed, no build isolation, so no index is asked for a build dependency.
    """
    for path in [source, *source.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    env = {**tools.environ, "SOURCE_DATE_EPOCH": str(ZIP_EPOCH), "PYTHONHASHSEED": "0"}
    command = [tools.program("python"), "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)]
    umask = os.umask(0o022)  # the build inherits it
    try:
        run_tool(command, what=what, fix=fix, env=env, redact=tools.redact, quiet=True, explain=backend_error)
    finally:
        os.umask(umask)
    built = sorted(out.glob("*.whl"))
    if len(built) != 1:
        raise UserError(f"{what} gave {[p.name for p in built]}, not one wheel. {fix}")
    return read_model_wheel(built[0])


def backend_error(output: str) -> str | None:
    """The build backend's own reason (its last error line, or the exception it raised), not `build`'s summary."""
    lines = [line.strip() for line in output.splitlines() if not line.startswith(("ERROR Backend", "TIP ", "* "))]
    return next((line for line in reversed(lines) if re.match(r"(error\b|\w+(Error|Exception)\b)", line)), None)

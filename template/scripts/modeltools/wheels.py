"""Wheel files: metadata read from the wheel itself, and whether a model fits the project."""

from __future__ import annotations

import re
import sys
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from modeltools.common import UserError, canonical_name
from modeltools.versions import Specifier, minor_series, overlaps, split_requirement


@dataclass(frozen=True)
class WheelInfo:
    path: Path
    name: str
    version: str
    requires: tuple[str, ...]
    requires_python: str

    @property
    def key(self) -> str:
        return canonical_name(self.name)

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def requirement_on(self, project: str) -> str | None:
        """This wheel's own requirement on a project (e.g. 'spacy<3.9.0,>=3.8.0'), extras aside."""
        for requirement in self.requires:
            marker = requirement.partition(";")[2]
            if "extra" in marker:
                continue
            name, _ = split_requirement(requirement)
            if canonical_name(name) == canonical_name(project):
                return requirement.partition(";")[0].strip()
        return None


def read_wheel(path: Path) -> WheelInfo:
    """Name, version and requirements from the wheel's METADATA, not from its file name."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            if len(names) != 1:
                raise UserError(f"{path} is not a wheel: it has no single *.dist-info/METADATA")
            text = archive.read(names[0]).decode("utf-8")
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(f"{path} is not a readable wheel ({error}): delete it and run make models again") from error
    headers = HeaderParser().parsestr(text)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise UserError(f"{path}: its METADATA has no Name or Version")
    return WheelInfo(
        path=path,
        name=name.strip(),
        version=version.strip(),
        requires=tuple(headers.get_all("Requires-Dist") or ()),
        requires_python=(headers.get("Requires-Python") or "").strip(),
    )


def wheel_filename_parts(filename: str) -> tuple[str, str]:
    """('en_core_web_sm', '3.8.0') from 'en_core_web_sm-3.8.0-py3-none-any.whl'."""
    parts = filename[: -len(".whl")].split("-")
    if not filename.endswith(".whl") or len(parts) < 5:
        raise UserError(f"{filename!r} is not a wheel file name (name-version-python-abi-platform.whl)")
    return parts[0], parts[1]


def model_wheels_in(directory: Path) -> dict[str, Path]:
    """'canonical-name==version' -> wheel, for the wheels directly in build/."""
    found = {}
    for path in sorted(directory.glob("*.whl")):
        name, version = wheel_filename_parts(path.name)
        found[f"{canonical_name(name)}=={version}"] = path
    return found


@dataclass(frozen=True)
class SpacyPolicy:
    """The spaCy releases the project asks for (its requirements.in), to check models against."""

    spec: Specifier | None
    text: str = ""
    where: str = ""

    def series(self) -> list[str]:
        return minor_series(self.spec) if self.spec else []

    def check(self, wheel: WheelInfo, where: str) -> None:
        requirement = wheel.requirement_on("spacy")
        if self.spec is None or requirement is None:
            return
        _, model_spec = split_requirement(requirement)
        if not overlaps(model_spec, self.spec):
            series = self.series()
            fitting = f" (models for spaCy {series[-1]} are versions {series[-1]}.x)" if series else ""
            raise UserError(
                f"{wheel.name} {wheel.version} ({where}) needs {requirement}, but this project uses "
                f"{self.text} ({self.where}): pick a release of {wheel.name} that fits{fitting}, "
                f"or change the spaCy version"
            )


def check_fits_python(wheel: WheelInfo, where: str) -> None:
    if not wheel.requires_python:
        return
    running = ".".join(map(str, sys.version_info[:3]))
    if not Specifier.parse(wheel.requires_python).contains(running):
        raise UserError(
            f"{wheel.name} {wheel.version} ({where}) needs Python {wheel.requires_python}, "
            f"but make runs Python {running}: set PYTHON to an interpreter that fits"
        )

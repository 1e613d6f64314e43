"""The project's own lists of models, and the check that requirements.in leaves models to them.

A model is whatever the project lists as one, whatever its name looks like:
a line of requirements-model.in.url (a wheel URL or file), a line of
requirements-model.in.range (a name and a version range), or a pipeline under
pipelines/ packaged into build/. Nothing else decides it.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.models.wheels import ModelWheel, expected_identity

# Where spaCy's own models are published (the default of SPACY_MODELS_URL).
GITHUB_RELEASES = "https://github.com/explosion/spacy-models/releases/download/"

INCLUDE = re.compile(r"^\s*(-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)")
SHA256 = re.compile(r"[0-9a-f]{64}")


def url_filename(url: str) -> str:
    """The file name a URL ends with, percent-decoded."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class WheelSource:
    """One line of requirements-model.in.url: where the wheel (or the sdist it is built from) comes from."""

    url: str  # http(s) or file URL, mirror applied; may carry user-info (never printed)
    sha256: str | None
    where: str

    @property
    def filename(self) -> str:
        return url_filename(self.url)

    @property
    def path(self) -> Path:
        """The local file of a file: URL."""
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(self.url).path))

    @property
    def name(self) -> NormalizedName:
        return expected_identity(self.filename, self.where)[0]

    @property
    def display_name(self) -> str:
        return self.filename.split("-", 1)[0]

    @property
    def local(self) -> bool:
        return self.url.startswith("file:")

    @property
    def sdist(self) -> bool:
        return self.filename.endswith(".tar.gz")


@dataclass(frozen=True)
class RangeSource:
    """One line of requirements-model.in.range: a model by name and versions."""

    requirement: Requirement
    where: str

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)

    @property
    def display_name(self) -> str:
        return self.requirement.name

    def applies(self) -> bool:
        """False when the line's marker excludes this machine."""
        return self.requirement.marker is None or self.requirement.marker.evaluate()


def mirror_url(url: str, base: str | None) -> str:
    """A GitHub release download URL rewritten onto base (SPACY_MODELS_URL); any other URL unchanged."""
    if not base or not url.startswith(GITHUB_RELEASES):
        return url
    return base.rstrip("/") + "/" + url[len(GITHUB_RELEASES) :]


def strip_comment(line: str) -> str:
    """A '#' starts a comment at the start of a line or after a space (a URL's #fragment stays)."""
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()


def numbered_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(location, text) of each line that is not blank or a comment."""
    if not path.is_file():
        return
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line):
            raise UserError(f"{path.name}:{number} holds a control character: remove it")
        text = strip_comment(line)
        if text:
            yield f"{path.name}:{number}", text


CONFLICT = re.compile(r"^(<<<<<<<|=======|>>>>>>>|\|\|\|\|\|\|\|)( |$)")
ARCHIVES = (".whl", ".tar.gz")


def conflict_marker(text: str, where: str) -> UserError | None:
    """A merge-conflict marker left in a line (<<<<<<<, =======, >>>>>>>, |||||||), named."""
    if CONFLICT.match(text):
        return UserError(f"{where} is a merge-conflict marker ({text[:7]}): resolve the conflict in that file first")
    return None


def misplaced(text: str, where: str, file_kind: str) -> UserError | None:
    """A line that is not what this file holds, named for what it is, with where it belongs."""
    if conflict := conflict_marker(text, where):
        return conflict
    if text.startswith("-"):
        return UserError(f"{where} is a pip option ({text.split()[0]}): model lists hold no options; remove the line")
    looks_like_url = (
        "://" in text or text.startswith(("/", "./", "../", "file:")) or text.split("#")[0].endswith(ARCHIVES)
    )
    if file_kind == "range" and looks_like_url:
        return UserError(f"{where} is a URL or a file: move it to requirements-model.in.url, which lists those")
    if (
        file_kind == "url"
        and not looks_like_url
        and re.fullmatch(r"[A-Za-z0-9][\w.-]*\s*(\[.*\])?\s*([<>=!~].*)?", text)
    ):
        return UserError(
            f"{where} is a model by name ({text}), not a URL: move it to requirements-model.in.range (name==version "
            "works there), or write the URL of its wheel or sdist here"
        )
    return None


def _location(text: str, base_url: str, root: Path, where: str) -> str:
    """A URL for a line: absolute URLs as written (a mirror applied), files, or paths under SPACY_MODELS_URL."""
    scheme = urllib.parse.urlsplit(text).scheme
    if scheme in ("http", "https"):
        return mirror_url(text, base_url)
    if scheme == "file":
        return text
    if scheme:
        raise UserError(f"{where}: {scheme}: URLs are not supported; use an http(s):// URL, file: or a path")
    if text.startswith(("/", "./", "../")):
        return (root / text).resolve().as_uri()
    return f"{base_url}/{text.lstrip('/')}"


def read_fragment(fragment: str, filename: str, where: str) -> str | None:
    """The #sha256= a line gives; an #egg= (spaCy's download URLs carry one) must name the file's model."""
    sha256 = None
    for item in filter(None, fragment.split("&")):
        key, _, value = item.partition("=")
        if key == "sha256" and SHA256.fullmatch(value):
            sha256 = value
        elif key == "egg":
            wanted = Requirement(value) if re.fullmatch(r"[\w.-]+(==[\w.!+-]+)?", value) else None
            name, version = expected_identity(filename, where)
            pinned = [s.version for s in wanted.specifier] if wanted else []
            if (
                wanted is None
                or canonicalize_name(wanted.name) != name
                or (pinned and version and pinned[0] != str(version))
            ):
                raise UserError(f"{where}: #egg={value} does not name the file's model ({filename}): fix one of them")
        else:
            raise UserError(f"{where}: unsupported URL fragment #{item}; write #sha256=<64 lowercase hex digits>")
    return sha256


def read_wheel_sources(path: Path, base_url: str) -> list[WheelSource]:
    """requirements-model.in.url: one wheel or sdist URL (or file) a line; #sha256=<hex> and #egg=name==version."""
    sources = []
    for where, text in numbered_lines(path):
        if problem := misplaced(text, where, "url"):
            raise problem
        location, _, fragment = text.partition("#")
        if re.search(r"\s", location):
            raise UserError(f"{where}: a URL has no spaces; percent-encode them (%20) or fix the line")
        url = _location(location, base_url, path.parent, where)
        filename = url_filename(url)
        expected_identity(filename, where)  # a plain wheel or sdist name, checked now
        sources.append(WheelSource(url, read_fragment(fragment, filename, where), where))
    return sources


def read_range_sources(path: Path) -> list[RangeSource]:
    """requirements-model.in.range: `name<specifiers>[; marker]` a line, e.g. en_core_web_md>=3.8,<3.9."""
    sources = []
    for where, text in numbered_lines(path):
        if problem := misplaced(text, where, "range"):
            raise problem
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise UserError(f"{where}: cannot read {text!r} ({error}); write it as name>=1.0,<2") from None
        if requirement.url or requirement.extras:
            raise UserError(f"{where}: a range line is name and versions only; put a URL in requirements-model.in.url")
        sources.append(RangeSource(requirement, where))
    return sources


def check_unique(sources: Iterable[WheelSource | RangeSource | ModelWheel]) -> None:
    """Each model is listed once, in one place."""
    seen: dict[str, str] = {}
    for source in sources:
        where = source.where if not isinstance(source, ModelWheel) else f"pipelines ({source.path.name})"
        if source.name in seen:
            shown = source.display_name
            raise UserError(f"{where}: {shown} is already listed at {seen[source.name]}; list each model once")
        seen[source.name] = where


def render_pins(wheels: Iterable[ModelWheel]) -> str:
    header = (
        "# Written by `make models` from requirements-model.in.url, requirements-model.in.range\n"
        "# and pipelines/: edit those, not this file. Exact versions of every model.\n"
    )
    return header + "".join(f"{w.pin}\n" for w in sorted(wheels, key=lambda w: w.name))


def read_pins(path: Path) -> dict[NormalizedName, str]:
    """canonical name -> version of each line of requirements-model.in."""
    pins = {}
    for where, text in numbered_lines(path):
        name, sep, version = text.partition("==")
        if not sep:
            raise UserError(f"{where}: expected name==version; run make models to write this file again")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def requirement_files(requirements: Path, skip: Path) -> list[Path]:
    """requirements.in and every file it pulls in with -r/-c, each once (the model pins aside)."""
    found: list[Path] = []
    pending = [requirements]
    while pending:
        path = pending.pop(0)
        if path in found or not path.is_file() or path.resolve() == skip.resolve():
            continue
        found.append(path)
        for line in path.read_text().splitlines():
            match = INCLUDE.match(line)
            if match:
                pending.append(path.parent / match.group(2))
    return found


def requirement_lines(requirements: Path, pins: Path) -> list[tuple[str, Requirement]]:
    """(file:line, requirement) of every requirement of requirements.in and its includes (the model pins aside).

    A merge-conflict marker stops here, named; lines packaging cannot read are left to the resolver to explain.
    """
    found = []
    for path in requirement_files(requirements, skip=pins):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            text, where = strip_comment(line), f"{path.name}:{number}"
            if conflict := conflict_marker(text, where):
                raise conflict
            with contextlib.suppress(InvalidRequirement):
                found += [(where, Requirement(text))] if text and not text.startswith("-") else []
    return found


def check_no_model_by_name(requirements: Path, pins: Path, models: Iterable[NormalizedName]) -> None:
    """A model named in requirements.in would reach the resolver by name, where any index could serve it."""
    names = set(models)
    for where, requirement in requirement_lines(requirements, pins):
        if (name := canonicalize_name(requirement.name)) in names:
            raise UserError(
                f"{where} names {name}, a model of this project: models belong in "
                "requirements-model.in.url (a wheel URL, or ./build/<file>.whl for a wheel you put in build/) "
                "or requirements-model.in.range (name and range) only, so no package index can serve them; "
                "remove this line"
            )


def project_spacy(requirements: Path, pins: Path) -> tuple[Requirement, str] | None:
    """The project's own spaCy requirement (requirements.in or an include) and where it is."""
    found = [(r, where) for where, r in requirement_lines(requirements, pins) if canonicalize_name(r.name) == "spacy"]
    return found[0] if found else None

"""Your own pipelines under pipelines/, as model sources: each directory and the wheel make package made of it.

A pipeline directory holds config.cfg and meta.json (what `spacy train` writes to
model-best/); its wheel, `{lang}_{name}-{version}-py3-none-any.whl` after meta.json,
is a model like any other. build/pipelines/<dir>.json records each pipeline's
content digest and its wheel's name and sha256 (verbs/package.py writes them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache, read_json
from nlp_modeltools.models.wheels import ModelWheel, read_model_wheel, wheel_filename

STAMP = ".packaged"
REQUIRED = ("meta.json", "config.cfg")


@dataclass(frozen=True)
class Pipeline:
    """One directory under pipelines/ and the model meta.json makes of it."""

    directory: Path
    model: str  # {lang}_{name}, as spacy package names it
    version: Version

    @property
    def label(self) -> str:
        return f"pipelines/{self.directory.name}"

    @property
    def filename(self) -> str:
        return wheel_filename(self.model, self.version)


@dataclass(frozen=True)
class Record:
    """build/pipelines/<dir>.json: what the pipeline's content was when its wheel was built."""

    digest: str
    wheel: str
    sha256: str


def pipeline_dirs(root: Path) -> list[Path]:
    """The directories under pipelines/ that hold a pipeline (config.cfg and meta.json)."""
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.is_dir() and all((d / name).is_file() for name in REQUIRED))


def read_pipeline(directory: Path) -> Pipeline:
    """The model name and version meta.json gives, checked as spacy package and pip will need them."""
    where = f"pipelines/{directory.name}/meta.json"
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{where} cannot be read ({error}): write it as JSON, as spacy train does") from None
    values = {key: meta.get(key) if isinstance(meta, dict) else None for key in ("lang", "name", "version")}
    missing = [key for key, value in values.items() if not isinstance(value, str) or not value]
    if missing:
        raise UserError(f'{where} has no {", ".join(missing)}: set them (e.g. "version": "1.0.0")')
    lang, name = values["lang"], values["name"]
    model = name if name.startswith(f"{lang}_") else f"{lang}_{name}"
    if not model.isidentifier():
        raise UserError(f'{where}: {model!r} is not a Python identifier; use letters, digits and _ in "name"')
    try:
        version = Version(values["version"])
    except InvalidVersion:
        raise UserError(f'{where}: "version" {values["version"]!r} is not a version; write e.g. 1.0.0') from None
    return Pipeline(directory, model, version)


def content_digest(hashes: HashCache, directory: Path) -> str:
    """sha256 over every file that goes into the wheel (names and bytes); hidden files are left out, as spaCy does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory)
        if not any(part.startswith(".") for part in relative.parts):
            digest.update(f"{relative.as_posix()}\0{hashes.sha256(path)}\n".encode())
    return digest.hexdigest()


def record_path(build: Path, directory: Path) -> Path:
    return build / "pipelines" / f"{directory.name}.json"


def read_record(build: Path, directory: Path) -> Record | None:
    data = read_json(record_path(build, directory))
    try:
        return Record(data["digest"], data["wheel"], data["sha256"])
    except KeyError:
        return None


def current_wheel(
    build: Path, hashes: HashCache, pipeline: Pipeline, digest: str, record: Record | None
) -> Path | None:
    """The wheel built from exactly this content and version, if build/ still holds it unchanged."""
    wheel = build / pipeline.filename
    if record is None or (record.digest, record.wheel) != (digest, pipeline.filename) or not wheel.is_file():
        return None
    return wheel if hashes.sha256(wheel) == record.sha256 else None


def packaged(root: Path, build: Path, hashes: HashCache) -> list[ModelWheel]:
    """The wheel of every pipeline under root (pipelines/), each as make package left it in build/; else the
    command that fixes it."""
    wheels = []
    for directory in pipeline_dirs(root):
        pipeline, record = read_pipeline(directory), read_record(build, directory)
        digest = content_digest(hashes, directory)
        wheel = current_wheel(build, hashes, pipeline, digest, record)
        if wheel is None:
            if record is not None and (record.digest, record.wheel) == (digest, pipeline.filename):
                what = f"build/{pipeline.filename} is missing or changed since make package built it"
            else:
                what = f"{pipeline.label} changed since it was packaged (or never was)"
            raise UserError(f"{what}: run make package (make install runs it when pipelines/ changed)")
        wheels.append(read_model_wheel(wheel))
    return wheels

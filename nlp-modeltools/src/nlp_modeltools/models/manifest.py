"""build/models.json: what make models found, the one record every later step reads.

`make models` lists the project's models (requirements-model.in.url, .range,
pipelines/), fetches and checks each wheel, and writes this manifest: for each
model its name, version, file, sha256, the URL it came from (without
credentials) and its own spaCy range. lock, wheelhouse, docker, bundle, sbom and
publish read it with the lock, find each model file by its hash, and never list,
fetch or check the sources again. The runtime self-install's models.lock.json
(written by make lock) is this format too: the locked models and spaCy's version.

    {"format": 1, "inputs": "<sha256 of the model lists>", "spacy": null,
     "models": [{"name": "en_core_web_sm", "version": "3.8.0",
                 "filename": "en_core_web_sm-3.8.0-py3-none-any.whl", "sha256": "…",
                 "url": "https://…/en_core_web_sm-3.8.0-py3-none-any.whl",
                 "requires_spacy": ">=3.8.0,<3.9.0", "where": "requirements-model.in.url:3"}]}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache, write_if_changed
from nlp_modeltools.core.http import without_userinfo
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.models.pipelines import content_digest, pipeline_dirs
from nlp_modeltools.models.wheels import ModelWheel

FORMAT = 1


@dataclass(frozen=True)
class ModelRecord:
    """One model as make models left it in build/."""

    name: str  # as the wheel's own METADATA spells it
    version: str
    filename: str  # its PEP 427 name in build/
    sha256: str
    url: str | None  # where it was downloaded from, user-info, query and fragment cut; None: a pipeline, a file
    requires_spacy: str | None  # the model's own specifier on spaCy, e.g. >=3.8.0,<3.9.0
    where: str  # the line or pipeline that lists it, for messages

    @property
    def key(self) -> NormalizedName:
        return canonicalize_name(self.name)

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def path(self, build: Path) -> Path:
        return build / self.filename


def record(wheel: ModelWheel, sha256: str, url: str | None, where: str) -> ModelRecord:
    """The manifest's record of a checked wheel in build/ (url: where it was downloaded from, if it was)."""
    needs = wheel.requirement_on("spacy")
    return ModelRecord(wheel.display_name, str(wheel.version), wheel.path.name, sha256,
                       without_userinfo(url, keep_query=False) if url else None,
                       str(needs.specifier) if needs else None, where)  # fmt: skip


def inputs_digest(paths: Paths, hashes: HashCache) -> str:
    """What the models depend on: the model lists' text (LF or CRLF alike) and each pipeline's content."""
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    for path in (paths.urls, paths.ranges):
        digest.update(f"{path.name}\n{path.read_text() if path.is_file() else '-'}\n".encode())
    for directory in pipeline_dirs(paths.pipelines):
        digest.update(f"pipelines/{directory.name} {content_digest(hashes, directory)}\n".encode())
    return digest.hexdigest()


def write(path: Path, records: Iterable[ModelRecord], inputs: str, spacy: str | None = None) -> bool:
    """Write the manifest (sorted by name), atomically and only when it changed; True if it did."""
    models = [asdict(r) for r in sorted(records, key=lambda r: r.key)]
    text = json.dumps({"format": FORMAT, "inputs": inputs, "spacy": spacy, "models": models}, indent=2) + "\n"
    return write_if_changed(path, text)


def read(path: Path) -> list[ModelRecord]:
    """The records of a manifest; raises UserError naming make models when it is missing or unreadable."""
    return _parse(path)[1]


def _parse(path: Path) -> tuple[str, list[ModelRecord]]:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        records = [ModelRecord(**{key: item[key] for key in ModelRecord.__dataclass_fields__})
                   for item in data["models"]]  # fmt: skip
        return str(data.get("inputs", "")), records
    except FileNotFoundError:
        raise UserError(f"{path} is missing: run make models (nlp-models models) first") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} cannot be read ({error}): run make models (nlp-models models) again") from None


def current(paths: Paths, hashes: HashCache) -> list[ModelRecord]:
    """The manifest's records, checked against what it was made from and against build/, by hash.

    Raises UserError naming make models when the model lists changed since, or a model file is missing or changed.
    """
    inputs, records = _parse(paths.manifest)
    if inputs != inputs_digest(paths, hashes):
        raise UserError("the model lists (requirements-model.in.url, .range, pipelines/) changed since make models "
                        "ran: run make models (nlp-models models)")  # fmt: skip
    for item in records:
        file = item.path(paths.build)
        if not file.is_file():
            raise UserError(f"build/{item.filename} ({item.where}) is missing: run make models (it fetches it again "
                            "from the machine's cache or its source)")  # fmt: skip
        if hashes.sha256(file) != item.sha256:
            raise UserError(f"build/{item.filename} ({item.where}) does not match the sha256 make models recorded in "
                            f"build/models.json: its bytes changed since; rm build/{item.filename}, then run make "
                            "models (it fetches the file again from the machine's cache or its source)")  # fmt: skip
    hashes.save()
    return records


def by_key(records: Iterable[ModelRecord]) -> dict[NormalizedName, ModelRecord]:
    return {r.key: r for r in records}

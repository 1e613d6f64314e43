"""models/pipelines.py: your own pipelines under pipelines/ and the wheels make package left in build/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache
from nlp_modeltools.models import pipelines


def pipeline(root: Path, name: str, meta: object, config: bool = True) -> Path:
    directory = root / "pipelines" / name
    directory.mkdir(parents=True)
    (directory / "meta.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    if config:
        (directory / "config.cfg").write_text("[nlp]\nlang = en\n")
    return directory


def message(directory: Path) -> str:
    with pytest.raises(UserError) as refused:
        pipelines.read_pipeline(directory)
    return str(refused.value)


def test_a_pipeline_is_the_model_its_meta_json_names(tmp_path: Path) -> None:
    found = pipelines.read_pipeline(pipeline(tmp_path, "ner", {"lang": "en", "name": "acme_ner", "version": "1.2.0"}))
    assert (found.model, found.version, found.label) == ("en_acme_ner", Version("1.2.0"), "pipelines/ner")
    assert found.filename == "en_acme_ner-1.2.0-py3-none-any.whl"
    prefixed = pipelines.read_pipeline(pipeline(tmp_path, "p", {"lang": "de", "name": "de_x", "version": "1"}))
    assert prefixed.model == "de_x", "a name that already starts with its language is kept"


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ("{not json", "pipelines/p/meta.json cannot be read (Expecting property name enclosed in double quotes: line 1 "
                      "column 2 (char 1)): write it as JSON, as spacy train does"),
        ({"lang": "en"}, 'pipelines/p/meta.json has no name, version: set them (e.g. "version": "1.0.0")'),
        ([], 'pipelines/p/meta.json has no lang, name, version: set them (e.g. "version": "1.0.0")'),
        ({"lang": "en", "name": "acme-ner", "version": "1"}, "pipelines/p/meta.json: 'en_acme-ner' is not a Python "
                                                             'identifier; use letters, digits and _ in "name"'),
        ({"lang": "en", "name": "ner", "version": "one"}, "pipelines/p/meta.json: \"version\" 'one' is not a version; "
                                                          "write e.g. 1.0.0"),
        ({"lang": "en", "name": "ner", "version": 1}, 'pipelines/p/meta.json has no version: set them (e.g. "version": '
                                                      '"1.0.0")'),
    ],
)  # fmt: skip
def test_read_pipeline_names_what_to_fix_in_meta_json(tmp_path: Path, meta: object, expected: str) -> None:
    assert message(pipeline(tmp_path, "p", meta)) == expected


def test_only_directories_with_config_and_meta_are_pipelines(tmp_path: Path) -> None:
    pipeline(tmp_path, "b", {"lang": "en", "name": "b", "version": "1"})
    pipeline(tmp_path, "a", {"lang": "en", "name": "a", "version": "1"})
    pipeline(tmp_path, "notes", {}, config=False)
    (tmp_path / "pipelines" / "README.md").write_text("")
    assert [d.name for d in pipelines.pipeline_dirs(tmp_path / "pipelines")] == ["a", "b"]
    assert pipelines.pipeline_dirs(tmp_path / "none") == []


def test_the_content_digest_sees_every_file_but_hidden_ones(tmp_path: Path) -> None:
    directory = pipeline(tmp_path, "p", {"lang": "en", "name": "p", "version": "1"})
    hashes = HashCache(tmp_path / "cache.json")
    digest = pipelines.content_digest(hashes, directory)
    (directory / ".DS_Store").write_text("x")
    (directory / ".git").mkdir()
    (directory / ".git" / "HEAD").write_text("x")
    assert pipelines.content_digest(hashes, directory) == digest
    (directory / "ner").mkdir()
    (directory / "ner" / "model").write_bytes(b"weights")
    assert pipelines.content_digest(hashes, directory) != digest


def record(build: Path, directory: Path, digest: str, wheel: str, sha256: str) -> None:
    """build/pipelines/<dir>.json, as make package (verbs/package.py) writes it."""
    path = pipelines.record_path(build, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"digest": digest, "wheel": wheel, "sha256": sha256}))


def test_a_packaged_pipeline_s_wheel_is_taken_from_build(tmp_path: Path, make_wheel, sha256) -> None:
    directory = pipeline(tmp_path, "ner", {"lang": "en", "name": "acme_ner", "version": "1.0.0"})
    hashes, build = HashCache(tmp_path / "cache.json"), tmp_path / "build"
    wheel = make_wheel(build, "en_acme_ner", "1.0.0")
    record(build, directory, pipelines.content_digest(hashes, directory), wheel.name, sha256(wheel))
    (found,) = pipelines.packaged(tmp_path / "pipelines", build, hashes)
    assert (found.pin, found.path) == ("en_acme_ner==1.0.0", wheel)


def test_a_pipeline_never_packaged_or_changed_since_names_make_package(tmp_path: Path, make_wheel, sha256) -> None:
    directory = pipeline(tmp_path, "ner", {"lang": "en", "name": "acme_ner", "version": "1.0.0"})
    hashes, build = HashCache(tmp_path / "cache.json"), tmp_path / "build"
    with pytest.raises(UserError) as never:
        pipelines.packaged(tmp_path / "pipelines", build, hashes)
    assert str(never.value) == (
        "pipelines/ner changed since it was packaged (or never was): run make package (make install runs it when "
        "pipelines/ changed)"
    )
    wheel = make_wheel(build, "en_acme_ner", "1.0.0")
    record(build, directory, pipelines.content_digest(hashes, directory), wheel.name, "0" * 64)
    with pytest.raises(UserError) as changed:
        pipelines.packaged(tmp_path / "pipelines", build, hashes)
    assert str(changed.value) == (
        "build/en_acme_ner-1.0.0-py3-none-any.whl is missing or changed since make package built it: run make package "
        "(make install runs it when pipelines/ changed)"
    )
    assert pipelines.read_record(build, tmp_path / "pipelines" / "other") is None

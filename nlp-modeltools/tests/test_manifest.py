"""models/manifest.py: build/models.json written, read back, and checked against the lists and build/ by hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.models import manifest
from nlp_modeltools.models.wheels import read_model_wheel

URL = "https://ci:tok@mirror.example/en_a-1.0.0/en_a-1.0.0-py3-none-any.whl?sig=x#sha256=abc"


@pytest.fixture
def project(tmp_path: Path, make_wheel, sha256) -> tuple[Paths, list[manifest.ModelRecord]]:
    """A project whose make models ran: two model lists, two wheels in build/, their manifest."""
    paths = Paths(tmp_path)
    paths.urls.write_text("https://mirror.example/en_a-1.0.0/en_a-1.0.0-py3-none-any.whl\n")
    paths.ranges.write_text("en_b>=1\n")
    records = []
    for name, url, where in (
        ("en_b", None, "requirements-model.in.range:1"),
        ("en_a", URL, "requirements-model.in.url:1"),
    ):
        wheel = read_model_wheel(make_wheel(paths.build, name, "1.0.0"))
        records.append(manifest.record(wheel, sha256(wheel.path), url, where))
    assert manifest.write(paths.manifest, records, manifest.inputs_digest(paths, HashCache(tmp_path / "c.json")))
    return paths, records


def current(paths: Paths) -> list[manifest.ModelRecord]:
    return manifest.current(paths, HashCache(paths.build / ".sha256-cache.json"))


def refusal(paths: Paths) -> str:
    with pytest.raises(UserError) as refused:
        current(paths)
    return str(refused.value)


def test_a_record_keeps_no_credential_and_the_model_s_own_spacy_range(project) -> None:
    _, records = project
    en_a = next(r for r in records if r.name == "en_a")
    assert en_a.url == "https://mirror.example/en_a-1.0.0/en_a-1.0.0-py3-none-any.whl"
    assert (en_a.requires_spacy, en_a.pin, en_a.key, en_a.filename) == (
        "<3.9.0,>=3.8.0", "en_a==1.0.0", "en-a", "en_a-1.0.0-py3-none-any.whl",
    )  # fmt: skip


def test_the_manifest_round_trips_sorted_by_name_and_is_rewritten_only_on_change(project) -> None:
    paths, records = project
    data = json.loads(paths.manifest.read_text())
    assert (data["format"], data["spacy"], [m["name"] for m in data["models"]]) == (1, None, ["en_a", "en_b"])
    assert manifest.read(paths.manifest) == sorted(records, key=lambda r: r.key)
    assert current(paths) == manifest.read(paths.manifest)
    assert manifest.write(paths.manifest, records, data["inputs"]) is False, "the same manifest is left alone"
    assert manifest.write(paths.manifest, records, data["inputs"], spacy="3.8.7") is True
    assert manifest.by_key(manifest.read(paths.manifest))["en-b"].where == "requirements-model.in.range:1"


def test_a_missing_manifest_names_make_models(tmp_path: Path) -> None:
    with pytest.raises(UserError) as missing:
        manifest.read(tmp_path / "build" / "models.json")
    assert (
        str(missing.value)
        == f"{tmp_path / 'build' / 'models.json'} is missing: run make models (nlp-models models) first"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"format": 2, "models": []}', "format 2"),
        ('{"format": 1}', "'models'"),
        ("{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ('{"format": 1, "models": [{"name": "en_a"}]}', "'version'"),
    ],
)
def test_an_unreadable_manifest_names_make_models_again(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "models.json"
    path.write_text(text)
    with pytest.raises(UserError) as refused:
        manifest.read(path)
    assert str(refused.value) == f"{path} cannot be read ({reason}): run make models (nlp-models models) again"


@pytest.mark.parametrize("text", ["[]", "null"])
def test_a_manifest_that_is_not_a_json_object_names_make_models_again(tmp_path: Path, text: str) -> None:
    path = tmp_path / "models.json"
    path.write_text(text)
    with pytest.raises(UserError, match=r"cannot be read .*: run make models \(nlp-models models\) again$"):
        manifest.read(path)


def test_changed_model_lists_name_make_models(project) -> None:
    paths, _ = project
    paths.ranges.write_text("en_b>=1\nen_c>=2\n")
    assert refusal(paths) == (
        "the model lists (requirements-model.in.url, .range, pipelines/) changed since make models ran: run make "
        "models (nlp-models models)"
    )


def test_model_lists_turned_crlf_are_the_same_lists(project) -> None:
    paths, records = project
    paths.urls.write_bytes(paths.urls.read_bytes().replace(b"\n", b"\r\n"))
    assert len(current(paths)) == len(records)


def test_a_model_file_gone_from_build_names_make_models(project) -> None:
    paths, _ = project
    (paths.build / "en_b-1.0.0-py3-none-any.whl").unlink()
    assert refusal(paths) == (
        "build/en_b-1.0.0-py3-none-any.whl (requirements-model.in.range:1) is missing: run make models (it fetches it "
        "again from the machine's cache or its source)"
    )


def test_a_model_file_changed_in_build_names_rm_and_make_models(project) -> None:
    paths, _ = project
    changed = paths.build / "en_a-1.0.0-py3-none-any.whl"
    changed.write_bytes(changed.read_bytes() + b"\0")
    message = refusal(paths)
    assert message == (
        "build/en_a-1.0.0-py3-none-any.whl (requirements-model.in.url:1) does not match the sha256 make models "
        "recorded in build/models.json: its bytes changed since; rm build/en_a-1.0.0-py3-none-any.whl, then run make "
        "models (it fetches the file again from the machine's cache or its source)"
    )


def test_a_changed_model_file_is_named_against_what_make_models_recorded(project) -> None:
    paths, _ = project
    assert not paths.lock.exists()
    changed = paths.build / "en_a-1.0.0-py3-none-any.whl"
    changed.write_bytes(changed.read_bytes() + b"\0")
    assert "requirements.txt" not in refusal(paths)


def test_a_pipeline_s_content_is_one_of_the_inputs(project, tmp_path: Path) -> None:
    paths, _ = project
    before = manifest.inputs_digest(paths, HashCache(tmp_path / "c.json"))
    directory = paths.pipelines / "ner"
    directory.mkdir(parents=True)
    (directory / "meta.json").write_text("{}")
    (directory / "config.cfg").write_text("")
    after = manifest.inputs_digest(paths, HashCache(tmp_path / "c.json"))
    (directory / "config.cfg").write_text("[nlp]\n")
    assert len({before, after, manifest.inputs_digest(paths, HashCache(tmp_path / "c.json"))}) == 3

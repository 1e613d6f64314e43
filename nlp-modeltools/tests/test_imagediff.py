"""ship/imagediff.py: where two builds of an image differ, read from hand-made docker-archive tarballs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.ship.engine import Engine
from nlp_modeltools.ship.imagediff import _first_entry, _first_key, _Layer, first_difference

EPOCH = 315532800
Entry = tuple[str, bytes | None, int, int]  # name, content (None: a directory), mode, mtime


def layer(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, mode, mtime in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, mtime
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def docker_archive(path: Path, layers: list[bytes], config: dict) -> Path:
    """What `docker save` writes: manifest.json naming the config and the layer tars in order."""
    names = [f"{index}/layer.tar" for index in range(len(layers))]
    members = {"manifest.json": json.dumps([{"Config": "config.json", "RepoTags": ["x:1"], "Layers": names}]).encode(),
               "config.json": json.dumps(config).encode(), **dict(zip(names, layers, strict=True))}  # fmt: skip
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


BASE = layer([("etc", None, 0o755, EPOCH), ("etc/os-release", b"debian\n", 0o644, EPOCH)])
MODEL = [("opt", None, 0o755, EPOCH), ("opt/spacy-models", None, 0o755, EPOCH),
         ("opt/spacy-models/en_a-1.0.0/model.bin", b"weights", 0o644, EPOCH)]  # fmt: skip
CONFIG = {"architecture": "amd64", "config": {"Env": ["PATH=/usr/bin", "LANG=C.UTF-8"]},
          "history": [{"created_by": "/bin/sh -c #(nop) ADD file:0123abcd in / "},
                      {"created_by": "COPY . / # buildkit"}]}  # fmt: skip


def layers_of(path: Path) -> list[_Layer]:
    opened = tarfile.open(path)
    (manifest,) = json.load(opened.extractfile("manifest.json"))  # type: ignore[arg-type]
    return [_Layer(opened, member) for member in manifest["Layers"]]


def second_layers(tmp_path: Path, changed: list[Entry]) -> tuple[_Layer, _Layer]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    a = layers_of(docker_archive(tmp_path / "a.tar", [BASE, layer(MODEL)], CONFIG))[1]
    b = layers_of(docker_archive(tmp_path / "b.tar", [BASE, layer(changed)], CONFIG))[1]
    return a, b


def test_the_first_differing_entry_is_named_with_its_field(tmp_path: Path) -> None:
    mode = [*MODEL[:2], (MODEL[2][0], MODEL[2][1], 0o755, EPOCH)]
    assert _first_entry(*second_layers(tmp_path, mode)) == (
        "opt/spacy-models/en_a-1.0.0/model.bin: mode 0o644 here, 0o755 in the rebuild"
    )


def test_a_time_difference_is_shown_as_dates(tmp_path: Path) -> None:
    later = [MODEL[0], (MODEL[1][0], None, 0o755, 1700000000), MODEL[2]]
    assert _first_entry(*second_layers(tmp_path, later)) == (
        "opt/spacy-models: time 1980-01-01T00:00:00+00:00 here, 2023-11-14T22:13:20+00:00 in the rebuild"
    )


def test_content_names_and_counts_are_compared_in_order(tmp_path: Path) -> None:
    content = [*MODEL[:2], (MODEL[2][0], b"other weights", 0o644, EPOCH)]
    assert _first_entry(*second_layers(tmp_path / "c", content)).startswith(
        "opt/spacy-models/en_a-1.0.0/model.bin: content sha256 "
    )
    renamed = [*MODEL[:2], ("opt/spacy-models/en_a-1.0.1/model.bin", b"weights", 0o644, EPOCH)]
    assert _first_entry(*second_layers(tmp_path / "n", renamed)) == (
        "entry opt/spacy-models/en_a-1.0.0/model.bin here, opt/spacy-models/en_a-1.0.1/model.bin in the rebuild"
    )
    longer = [*MODEL, ("opt/spacy-models/en_a-1.0.0/extra", b"", 0o644, EPOCH)]
    assert _first_entry(*second_layers(tmp_path / "l", longer)) == "3 entries here, 4 in the rebuild (same until then)"


def test_the_first_differing_config_key_is_its_path() -> None:
    changed = json.loads(json.dumps(CONFIG))
    changed["config"]["Env"][1] = "LANG=C"
    assert _first_key(CONFIG, changed) == "config.Env[1]"
    changed["config"]["Env"].append("X=1")
    assert _first_key(CONFIG, changed) == "config.Env", "lists of another length differ as a whole"
    assert _first_key(CONFIG, {**CONFIG, "created": "2024"}) == "created"
    assert _first_key(CONFIG, json.loads(json.dumps(CONFIG))) is None


def saving_engine(directory: Path) -> Engine:
    """A stand-in for the engine's `save IMAGE`: it copies the archive named for the image, as docker save writes it."""
    program = directory / "docker"
    program.write_text('#!/bin/sh\n[ "$1" = save ] || exit 2\ncp "$(dirname "$0")/$4.tar" "$3" 2>/dev/null || '
                       '{ echo "Error: No such image: $4" >&2; exit 1; }\n')  # fmt: skip
    program.chmod(0o755)
    return Engine(str(program), "docker", {"PATH": "/usr/bin:/bin"})


def test_first_difference_names_the_layer_by_its_history_step(tmp_path: Path) -> None:
    engine = saving_engine(tmp_path)
    docker_archive(tmp_path / "built.tar", [BASE, layer(MODEL)], CONFIG)
    docker_archive(tmp_path / "rebuilt.tar", [BASE, layer([*MODEL[:2], (MODEL[2][0], b"w", 0o644, EPOCH)])], CONFIG)
    found = first_difference(engine, "built", "rebuilt")
    assert found.startswith("layer 2 of 2 (COPY . /): opt/spacy-models/en_a-1.0.0/model.bin: content sha256 ")
    docker_archive(tmp_path / "same.tar", [BASE, layer(MODEL)], {**CONFIG, "created": "2024-01-01"})
    assert first_difference(engine, "built", "same") == "the image configs differ at created"
    docker_archive(tmp_path / "short.tar", [BASE], CONFIG)
    assert first_difference(engine, "built", "short") == "built has 2 layers, short 1"


def test_an_image_the_engine_cannot_save_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as failed:
        first_difference(saving_engine(tmp_path), "missing", "other")
    assert str(failed.value) == (
        f"{tmp_path / 'docker'} save missing failed (Error: No such image: missing): run make docker-verify again"
    )

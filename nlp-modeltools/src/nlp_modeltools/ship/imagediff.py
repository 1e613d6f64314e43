"""Where two builds of one image differ: the first layer, and in it the first file (as diffoci reports).

Both images are saved by the engine (`save`: a docker-archive, whose manifest.json
names the config and the layer tars in order); layers are compared by their
digest, then entry by entry (name, type, mode, owner, time, link, content).
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.ship.engine import HISTORY_NOISE, Engine


def first_difference(engine: Engine, first: str, second: str) -> str:
    """One line naming what differs between the two images: a layer and a file, or a config field.

    Raises UserError when the engine cannot save them.
    """
    with tempfile.TemporaryDirectory(prefix="image-diff-") as work:
        images = [_saved(engine, image, Path(work) / f"{index}.tar") for index, image in enumerate((first, second))]
        (config_a, layers_a), (config_b, layers_b) = images
        history = [step for step in config_a.get("history", []) if not step.get("empty_layer")]
        for index, (a, b) in enumerate(zip(layers_a, layers_b, strict=False)):
            if a.digest != b.digest:
                step = history[index].get("created_by", "") if index < len(history) else ""
                step = " ".join(re.sub(HISTORY_NOISE, "", step).split())[:80]
                return f"layer {index + 1} of {len(layers_a)} ({step or 'no history'}): {_first_entry(a, b)}"
        if len(layers_a) != len(layers_b):
            return f"{first} has {len(layers_a)} layers, {second} {len(layers_b)}"
        return f"the image configs differ at {_first_key(config_a, config_b) or 'an unknown field'}"


class _Layer:
    def __init__(self, archive: tarfile.TarFile, member: str) -> None:
        self.archive, self.member = archive, member
        stream = archive.extractfile(member)
        digest = hashlib.sha256()
        while stream is not None and (chunk := stream.read(1 << 20)):
            digest.update(chunk)
        self.digest = digest.hexdigest()

    def entries(self) -> list[tuple[str, tuple]]:
        layer = tarfile.open(fileobj=self.archive.extractfile(self.member))
        found = []
        for entry in layer:
            content = layer.extractfile(entry).read() if entry.isfile() else b""
            found.append((entry.name, (entry.type, oct(entry.mode), entry.uid, entry.gid, int(entry.mtime),
                                       entry.linkname, hashlib.sha256(content).hexdigest()[:12])))  # fmt: skip
        return found


FIELDS = ("type", "mode", "uid", "gid", "time", "link target", "content sha256")


def _first_entry(a: _Layer, b: _Layer) -> str:
    entries_a, entries_b = a.entries(), b.entries()
    for (name_a, attrs_a), (name_b, attrs_b) in zip(entries_a, entries_b, strict=False):
        if name_a != name_b:
            return f"entry {name_a} here, {name_b} in the rebuild"
        for label, x, y in zip(FIELDS, attrs_a, attrs_b, strict=True):
            if x != y:
                if label == "time":
                    x, y = (datetime.fromtimestamp(t, timezone.utc).isoformat() for t in (x, y))
                return f"{name_a}: {label} {x} here, {y} in the rebuild"
    return f"{len(entries_a)} entries here, {len(entries_b)} in the rebuild (same until then)"


def _first_key(a: object, b: object, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_key(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_key(x, y, f"{path}[{index}]")
    return path or None


def _saved(engine: Engine, image: str, archive: Path) -> tuple[dict, list[_Layer]]:
    saving = ["save", "--output", str(archive)]
    saved = engine.run(*saving, *(["--format", "docker-archive"] if engine.podman else []), image)
    if saved.returncode:
        raise UserError(f"{engine.program} save {image} failed ({saved.stderr.strip()[-200:]}): run make docker-verify "
                        "again")  # fmt: skip
    opened = tarfile.open(archive)
    (manifest,) = json.load(opened.extractfile("manifest.json"))
    config = json.load(opened.extractfile(manifest["Config"]))
    return config, [_Layer(opened, member) for member in manifest["Layers"]]


def config_digest(engine: Engine, image: str) -> str:
    """sha256 of the image's config, as a registry would name it (the ID classic docker and podman give)."""
    with tempfile.TemporaryDirectory(prefix="image-config-") as work:
        archive = Path(work) / "image.tar"
        saved = engine.run("save", "--output", str(archive), image)
        if saved.returncode:
            raise UserError(f"{engine.program} save {image} failed ({saved.stderr.strip()[-200:]}): run make "
                            "docker-verify again")  # fmt: skip
        with tarfile.open(archive) as opened:
            (manifest,) = json.load(opened.extractfile("manifest.json"))
            return "sha256:" + hashlib.sha256(opened.extractfile(manifest["Config"]).read()).hexdigest()


def identity(engine: Engine, image: str) -> str | None:
    """What tells two builds apart on this engine's store: the image ID, or on docker's containerd store the
    config digest (its image IDs are manifest digests)."""
    return config_digest(engine, image) if engine.store == "containerd" else engine.image_id(image)

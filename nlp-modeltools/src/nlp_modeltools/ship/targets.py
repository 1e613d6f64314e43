"""A target's lock and wheelhouse: this machine's (requirements.txt, build/wheels) or an image's, by hash.

An image gets wheels for its own platform and Python (core/platforms.py). From a
universal (uv) lock the target's entries are those its markers select, with no
resolver; a pip-tools lock serves the machine that made it only, so it is
resolved again for the target, with the lock's versions as constraints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from nlp_modeltools.core.files import write_if_changed
from nlp_modeltools.core.platforms import ImageTarget, is_host
from nlp_modeltools.lock import lockfile
from nlp_modeltools.lock.resolve import Resolver, compile_lock
from nlp_modeltools.models.inputs import requirement_lines
from nlp_modeltools.models.manifest import ModelRecord, by_key
from nlp_modeltools.ship import wheelhouse


def model_files(records: Iterable[ModelRecord], lock: lockfile.Lock, build: Path) -> dict[str, Path]:
    """The model files of build/ (from the manifest, checked by hash) that the lock pins: name -> path."""
    pinned = {e.name for e in lock.entries}
    return {r.key: r.path(build) for r in records if r.key in pinned}


def target_wheelhouse(
    resolver: Resolver,
    target: ImageTarget,
    lock: lockfile.Lock,
    lock_text: str,
    records: list[ModelRecord],
    *,
    fill: bool = True,
) -> tuple[Path, lockfile.Lock, Path]:
    """(requirements file, its lock, wheelhouse directory) for the target, each file by hash.

    On a machine like the target: requirements.txt and build/wheels, filled, or only verified when fill is
    False (make docker on this machine: the image build downloads nothing). For another platform:
    build/image/<target>/'s, always made complete (image_wheelhouse). Raises UserError naming the fix.
    """
    paths = resolver.paths
    lines = requirement_lines(paths.requirements, paths.pins)
    if not is_host(target, resolver.python_version):
        return image_wheelhouse(resolver, target, lock, lock_text, records)
    if fill:
        wheelhouse.fill(resolver.tools, resolver.hashes, lock, lock_text, paths.wheels,
                        model_files(records, lock, paths.build), lines=lines)  # fmt: skip
    else:
        wheelhouse.verify(resolver.hashes, lock, paths.wheels)
    return paths.lock, lock, paths.wheels


def image_wheelhouse(
    resolver: Resolver, target: ImageTarget, lock: lockfile.Lock, lock_text: str, records: list[ModelRecord]
) -> tuple[Path, lockfile.Lock, Path]:
    """build/image/<platform>-py<version>/: the target's requirements.txt, its lock and its wheels, each by hash."""
    paths = resolver.paths
    directory = paths.build / "image" / target.key
    requirements = directory / "requirements.txt"
    models = by_key(records)
    inputs = hashlib.sha256(f"{lock_text}\n{target}".encode()).hexdigest()
    if lockfile.recorded_digest(requirements) != inputs and lock.universal:
        entries = [entry for entry in lock.entries if wheelhouse.applies(entry, target.marker_environment())]
        write_if_changed(requirements, lockfile.Lock(lock.header, entries).render(inputs))
    elif lockfile.recorded_digest(requirements) != inputs:
        print(f"lock: requirements.txt was made by pip-compile for one machine; resolving it again for {target.key}"
              " (INSTALLER=uv writes one lock for every platform, and no resolver runs here)", flush=True)  # fmt: skip
        constraints = directory / "host-pins.txt"
        directory.mkdir(parents=True, exist_ok=True)
        constraints.write_text("".join(f"{e.name}=={e.version}\n" for e in lock.entries if e.name not in models))
        image_lock = compile_lock(resolver, models, f"for {target.key} only, resolved from requirements.txt",
                                  work=directory / "resolve", target=target, constraints=[constraints])  # fmt: skip
        write_if_changed(requirements, image_lock.render(inputs))
    text = requirements.read_text()
    image_lock = lockfile.parse(text)
    files = {r.key: r.path(paths.build) for r in records}
    lines = requirement_lines(paths.requirements, paths.pins)
    wheelhouse.fill(resolver.tools, resolver.hashes, image_lock, text, directory / "wheels", files, target, lines)
    return requirements, image_lock, directory / "wheels"

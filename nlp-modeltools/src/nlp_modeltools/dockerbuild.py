"""make wheelhouse, docker and docker-verify: a target platform's wheelhouse, and the image built from it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from nlp_modeltools import image, imagediff, lockfile, wheelhouse
from nlp_modeltools.collect import Model, collect_models, model_files
from nlp_modeltools.engine import Engine
from nlp_modeltools.errors import UserError
from nlp_modeltools.files import project_lock, write_if_changed
from nlp_modeltools.resolve import compile_lock
from nlp_modeltools.settings import Settings
from nlp_modeltools.venv import require_lock


def wheelhouse_step(settings: Settings) -> None:
    """build/wheels, or the wheelhouse of PLATFORM / IMAGE_PYTHON (build/image/<target>/wheels) when they are set."""
    target = image.image_target(settings)
    with project_lock(settings.paths.build):
        requirements, _, directory, _ = target_wheelhouse(settings, target)
        count = len(wheelhouse.Wheelhouse(directory, settings.hashes).by_hash)
    where = "each matching requirements.txt" if requirements == settings.paths.lock else f"for {requirements}"
    print(f"wheelhouse: {count} wheels in {directory}/, {where}", flush=True)


def docker(settings: Settings, engine: Engine | None = None, made: list[str] | None = None, suffix: str = "") -> None:
    """make docker: the image IMAGE for PLATFORM; what it made or tagged is added to made."""
    from nlp_modeltools import sbom  # it reads the models' sources, from here

    target = image.image_target(settings)
    with project_lock(settings.paths.build):  # held through the build: nothing changes the wheelhouse while it is read
        requirements, _, house, found = target_wheelhouse(settings, target, fill=False)
        engine = engine or image.engine_for(settings)  # checked before anything is built
        image.build(settings, engine, target, requirements, house, sbom.write(settings, requirements, found),
                    model_tag_suffix=suffix, made=made)  # fmt: skip


def docker_verify(settings: Settings) -> None:
    """make docker, then the same build with --no-cache under names of its own: both must be the same image.

    "The same" is what the engine's store makes comparable: the image ID (podman, docker's classic store) or
    the config digest (docker's containerd store, whose IDs are manifest digests). Whatever the rebuild made is
    removed, pass or fail, and the real images and model layers are never retagged.
    """
    engine = image.engine_for(settings)
    if not engine.reproducible:
        raise UserError(f"Docker Engine {'.'.join(map(str, engine.version))} cannot build the same image twice (its "
                        "BuildKit ignores SOURCE_DATE_EPOCH): use Docker Engine 24 or newer, or podman "
                        "(CONTAINER_ENGINE=podman), then run make docker-verify")  # fmt: skip
    docker(settings, engine)
    name = settings.get("IMAGE")
    options = f"{settings.get('DOCKER_BUILD_ARGS')} --no-cache"
    again = Settings({**settings.environ, "IMAGE": f"{name}-verify", "DOCKER_BUILD_ARGS": options}, settings.paths)
    made: list[str] = []
    try:
        docker(again, engine, made, suffix="-verify")
        same = imagediff.identity(engine, name) == imagediff.identity(engine, again.get("IMAGE"))
        if not same:
            where = imagediff.first_difference(engine, name, again.get("IMAGE"))
            raise UserError(f"a --no-cache rebuild of {name} is another image: {where}. Fix the step that writes it "
                            "(a time, a random name, an install-time value), then run make docker-verify")  # fmt: skip
    finally:
        engine.remove(*made)
    print(f"docker-verify: a --no-cache rebuild of {name} gave the same image, {imagediff.identity(engine, name)}")


def target_wheelhouse(
    settings: Settings, target: image.ImageTarget, fill: bool = True
) -> tuple[Path, lockfile.Lock, Path, list[Model]]:
    """(requirements file, its lock, wheelhouse directory, the project's models) for the target, each file by hash.

    On a machine like the target: requirements.txt and build/wheels, filled, or only verified when fill is
    False (make docker on this machine: the image build downloads nothing). For another platform:
    build/image/<target>/'s, always made complete (image_wheelhouse). A missing lock stops it first.
    """
    parsed, text = require_lock(settings)
    paths, host = settings.paths, image.is_host(target, settings.python_version)
    if host and not fill:
        wheelhouse.verify(settings.hashes, parsed, paths.wheels)
    found = collect_models(settings)
    if not host:
        return (*image_wheelhouse(settings, target, parsed, text, found), found)
    if fill:
        wheelhouse.fill(settings, parsed, text, paths.wheels, model_files(found, parsed))
    return paths.lock, parsed, paths.wheels, found


def image_wheelhouse(
    settings: Settings, target: image.ImageTarget, parsed: lockfile.Lock, text: str, found: list[Model]
) -> tuple[Path, lockfile.Lock, Path]:
    """build/image/<platform>-py<version>/: the target's requirements.txt, its lock and its wheels, each by hash.

    From a universal lock (uv's) the target's entries are those its markers select: no resolver runs.
    A pip-tools lock serves the machine that made it only, so it is resolved again for the target
    (uv pip compile --python-platform, the lock's versions as constraints), and that is said.
    """
    directory = settings.paths.build / "image" / target.key
    requirements = directory / "requirements.txt"
    by_name = {m.wheel.name: m.wheel for m in found}
    inputs = hashlib.sha256(f"{text}\n{target}".encode()).hexdigest()
    if lockfile.recorded_digest(requirements) != inputs and parsed.universal:
        entries = [entry for entry in parsed.entries if wheelhouse.applies(entry, target.marker_environment())]
        write_if_changed(requirements, lockfile.Lock(parsed.header, entries).render(inputs))
    elif lockfile.recorded_digest(requirements) != inputs:
        print(f"lock: requirements.txt was made by pip-compile for one machine; resolving it again for {target.key}"
              " (INSTALLER=uv writes one lock for every platform, and no resolver runs here)", flush=True)  # fmt: skip
        constraints = directory / "host-pins.txt"
        directory.mkdir(parents=True, exist_ok=True)
        constraints.write_text("".join(f"{e.name}=={e.version}\n" for e in parsed.entries if e.name not in by_name))
        image_lock = compile_lock(settings, by_name, f"for {target.key} only, resolved from requirements.txt",
                                  work=directory / "resolve", target=target, constraints=[constraints])  # fmt: skip
        write_if_changed(requirements, image_lock.render(inputs))
    image_lock = lockfile.parse(requirements.read_text())
    models = {m.wheel.name: m.wheel.path for m in found}
    wheelhouse.fill(settings, image_lock, requirements.read_text(), directory / "wheels", models, target)
    return requirements, image_lock, directory / "wheels"

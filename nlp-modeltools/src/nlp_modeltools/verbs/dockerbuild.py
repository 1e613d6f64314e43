"""make wheelhouse, docker and docker-verify: a target platform's wheelhouse, and the image built from it."""

from __future__ import annotations

import shlex
from pathlib import Path

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import project_lock
from nlp_modeltools.core.platforms import ImageTarget, is_host
from nlp_modeltools.core.tools import SOURCE_VARIABLES
from nlp_modeltools.lock import lockfile
from nlp_modeltools.ship import image, imagediff, sbom, targets, wheelhouse
from nlp_modeltools.ship.engine import Engine


def wheelhouse_step(settings: Settings) -> None:
    """build/wheels, or the wheelhouse of PLATFORM / IMAGE_PYTHON (build/image/<target>/wheels) when they are set."""
    target = settings.image_target()
    with project_lock(settings.paths.build):
        lock, text = lockfile.read_required(settings.paths.lock)  # a missing lock stops it before anything else
        requirements, _, directory = targets.target_wheelhouse(settings.resolver, target, lock, text, settings.models())
        count = len(wheelhouse.Wheelhouse(directory, settings.hashes).by_hash)
    where = "each matching requirements.txt" if requirements == settings.paths.lock else f"for {requirements}"
    print(f"wheelhouse: {count} wheels in {directory}/, {where}", flush=True)


def docker(settings: Settings, engine: Engine | None = None, made: list[str] | None = None, suffix: str = "") -> None:
    """make docker: the image IMAGE for PLATFORM; what it made or tagged is added to made."""
    needs = ["Dockerfile", ".dockerignore", "scripts/image-install.sh"]
    needs += [] if settings.get("IMAGE_INSTALLER") == "pip" else ["scripts/tools.txt"]  # the uv the builder runs
    settings.require_files("docker", *needs)
    paths, target = settings.paths, settings.image_target()
    image_name, base = settings.get("IMAGE"), settings.get("BASE_IMAGE")
    if not image_name or not base:
        raise UserError("IMAGE and BASE_IMAGE must be set (the Makefile sets both): run make docker")
    with project_lock(paths.build):  # held through the build: nothing changes the wheelhouse while it is read
        lock, text = lockfile.read_required(paths.lock)
        records = settings.models()
        requirements, _, house = targets.target_wheelhouse(settings.resolver, target, lock, text, records, fill=False)
        engine = engine or settings.engine()  # checked before anything is built
        bill = sbom.write(requirements, sbom.dest_for(requirements, paths.lock, paths.build), records,
                          settings.tools / "envs", settings.run)  # fmt: skip
        spec = image.ImageBuild(
            paths.root, image_name, base, target, requirements, house, bill,
            image.source_date_epoch(paths.root, paths.lock.name, settings.get("SOURCE_DATE_EPOCH")),
            uv_wheel(settings, target), tuple(shlex.split(settings.get("DOCKER_BUILD_ARGS"))),
            {name: settings.get(name) for name in SOURCE_VARIABLES if settings.get(name)},
        )  # fmt: skip
        image.build(spec, engine, settings.hashes, settings.redact, model_tag_suffix=suffix, made=made)


def uv_wheel(settings: Settings, target: ImageTarget) -> Path | None:
    """uv's wheel for the image's builder (IMAGE_INSTALLER=uv, the default), or None for pip."""
    choice = settings.get("IMAGE_INSTALLER", "uv")
    if choice not in ("uv", "pip"):
        raise UserError(f"IMAGE_INSTALLER={choice} is neither uv nor pip: set it to uv (the default) or pip")
    if choice == "pip":
        return None
    directory = settings.paths.build / "image" / "tools" / target.platform.replace("/", "-")
    return image.uv_wheel(settings.paths.root / "scripts" / "tools.txt", directory, target,
                          host=is_host(target, settings.python_version), hashes=settings.hashes,
                          tools=settings.run)  # fmt: skip


def docker_verify(settings: Settings) -> None:
    """make docker, then the same build with --no-cache under names of its own: both must be the same image.

    "The same" is what the engine's store makes comparable: the image ID (podman, docker's classic store) or
    the config digest (docker's containerd store, whose IDs are manifest digests). Whatever the rebuild made is
    removed, pass or fail, and the real images and model layers are never retagged.
    """
    settings.require_files("docker-verify", "Dockerfile", ".dockerignore", "scripts/image-install.sh")
    engine = settings.engine()
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
        same = imagediff.identity(engine, name)  # on the containerd store, each is a save of the whole image
        if same != imagediff.identity(engine, again.get("IMAGE")):
            where = imagediff.first_difference(engine, name, again.get("IMAGE"))
            raise UserError(f"a --no-cache rebuild of {name} is another image: {where}. Fix the step that writes it "
                            "(a time, a random name, an install-time value), then run make docker-verify")  # fmt: skip
    finally:
        engine.remove(*made)
    print(f"docker-verify: a --no-cache rebuild of {name} gave the same image, {same}")

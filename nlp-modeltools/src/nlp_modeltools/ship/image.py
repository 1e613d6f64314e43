"""Images: the engine, the image's platform and Python, its wheelhouse, and the build command.

The image gets wheels for its own platform and Python, not the host's: when
they differ from this machine's, the lock is resolved again for the image
(uv pip compile --python-platform, the committed lock's versions as
constraints) and its wheels are downloaded for it into build/image/<target>/.
Credentials reach a build only as a build secret, never as a build argument.

Each model is a layer of its own, below everything else, made by a build of its
own with a fixed time (ZIP_EPOCH): its bytes depend on its wheel alone. The app
is built on top with SOURCE_DATE_EPOCH as podman's --timestamp (BuildKit's
SOURCE_DATE_EPOCH for docker): the same inputs, the same image ID.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import ZIP_EPOCH, HashCache, read_json, write_atomic, write_if_changed
from nlp_modeltools.core.platforms import ImageTarget
from nlp_modeltools.core.redact import Redactor
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.lock import lockfile
from nlp_modeltools.ship import imagediff, wheelhouse
from nlp_modeltools.ship.engine import HISTORY_NOISE, Engine

SECRET_ID = "pip_env"  # noqa: S105 - the name of the build secret, not a value
MODEL_LAYER = "ARG FROM\nFROM ${FROM}\nCOPY . /\n"


@dataclass(frozen=True)
class ImageBuild:
    """One image build, as make docker asks for it: every input, as values."""

    root: Path  # the build context: the project
    image: str  # IMAGE
    base: str  # BASE_IMAGE
    target: ImageTarget
    requirements: Path  # the lock the image installs (requirements.txt, or build/image/<target>/'s)
    wheelhouse: Path  # its verified wheelhouse
    sbom: Path
    epoch: int  # SOURCE_DATE_EPOCH
    uv_wheel: Path | None  # None: the builder installs with pip
    extra_args: tuple[str, ...] = ()  # DOCKER_BUILD_ARGS
    sources: Mapping[str, str] = field(default_factory=dict)  # package-index variables: the build secret only

    @property
    def record(self) -> Path:
        return self.root / "build" / "image" / "built.json"

    @property
    def no_cache(self) -> bool:
        return "--no-cache" in self.extra_args


def build_inputs(spec: ImageBuild, engine: Engine, hashes: HashCache) -> str:
    """A digest of all an image is built from: what the Dockerfile reads of the context, and the settings."""
    root = spec.root
    uv = (spec.uv_wheel.name, hashes.sha256(spec.uv_wheel)) if spec.uv_wheel else None
    settings = (spec.target, spec.image, spec.base, spec.epoch, uv, hashes.sha256(spec.sbom), engine.program,
                engine.version, engine.store, spec.extra_args)  # fmt: skip
    digest = hashlib.sha256(repr(settings).encode())
    sources = [p for p in sorted((root / "src").rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    script = root / "scripts" / "image-install.sh"
    for path in [root / "Dockerfile", root / ".dockerignore", script, spec.requirements,
                 spec.wheelhouse / ".complete", *sources]:  # fmt: skip
        digest.update(f"{path.relative_to(root)} {hashes.sha256(path) if path.exists() else '-'}\n".encode())
    hashes.save()
    return digest.hexdigest()


def is_up_to_date(spec: ImageBuild, engine: Engine, inputs: str) -> bool:
    """Built from these very inputs, and still in the engine: nothing to do (DOCKER_BUILD_ARGS always builds)."""
    built = read_json(spec.record).get(spec.image)
    return (
        isinstance(built, dict)
        and not spec.extra_args
        and built.get("inputs") == inputs
        and (built.get("id") is not None and built.get("id") == engine.image_id(spec.image))
    )


def remember_build(spec: ImageBuild, engine: Engine, inputs: str) -> None:
    known = read_json(spec.record)
    known[spec.image] = {"inputs": inputs, "id": engine.image_id(spec.image)}
    write_atomic(spec.record, json.dumps(known, indent=1) + "\n")


def build(
    spec: ImageBuild,
    engine: Engine,
    hashes: HashCache,
    redact: Redactor,
    *,
    model_tag_suffix: str = "",
    made: list[str] | None = None,
) -> None:
    """The engine's build, offline, the package sources handed over as a build secret.

    Every image it tags (its model layers', then the image) is added to made as soon as it is asked for, so a
    caller can remove them, even after a failure; model_tag_suffix keeps a verify run's model layers apart.
    Raises UserError with the engine's reason when a build fails.
    """
    made = made if made is not None else []
    inputs = build_inputs(spec, engine, hashes)
    if is_up_to_date(spec, engine, inputs):
        print(f"docker: {spec.image} is up to date: nothing it is built from changed (DOCKER_BUILD_ARGS=--no-cache "
              "builds)")  # fmt: skip
        return
    if not engine.reproducible:
        print(f"docker: Docker Engine {'.'.join(map(str, engine.version))} cannot build reproducible images (its "
              "BuildKit ignores SOURCE_DATE_EPOCH): the image is built, but another build gets another ID; "
              "Docker Engine 24 or newer, or podman, give the same image every time", flush=True)  # fmt: skip
    house, locked = wheelhouse.Wheelhouse(spec.wheelhouse, hashes), lockfile.parse(spec.requirements.read_text())
    wheels = sorted(filter(None, (house.find(e) for e in locked.entries if e.is_model)))
    models = models_image(spec, engine, wheels, hashes, redact, model_tag_suffix, made)
    root, uv = spec.root, spec.uv_wheel
    uv_args = [f"UV_WHEEL={uv.relative_to(root)}", f"UV_SHA256={hashes.sha256(uv)}"] if uv else []
    with tempfile.TemporaryDirectory(prefix="image-secret-") as private:
        secret = Path(private) / SECRET_ID
        write_atomic(secret, "".join(f"{name}={value}\n" for name, value in spec.sources.items()), private=True)
        args = [f"BASE_IMAGE={spec.base}", f"MODELS_IMAGE={models}", "MODEL_LAYERS=1",
                f"REQUIREMENTS={spec.requirements.relative_to(root)}",
                f"WHEELHOUSE={spec.wheelhouse.relative_to(root)}", f"SBOM={spec.sbom.relative_to(root)}",
                *uv_args]  # fmt: skip
        command = ["build", "--network=none", "--platform", spec.target.platform,
                   "--secret", f"id={SECRET_ID},src={secret}", *engine.build_flags(spec.epoch),
                   *(item for arg in args for item in ("--build-arg", arg)),
                   "--label", f"nlp-template.sbom.sha256={hashes.sha256(spec.sbom)}",
                   "--tag", spec.image, *spec.extra_args, str(root)]  # fmt: skip
        print(redact("$ " + shlex.join([engine.program, *command]).replace(str(secret), "<build secret>")), flush=True)
        made.append(spec.image)
        engine.tool(command, what=f"{engine.program} build", redact=redact,
                    fix="Read the build's output above; the wheelhouse was complete and verified")  # fmt: skip
    if not model_tag_suffix:
        remember_build(spec, engine, inputs)
    show_layers(engine, spec.image, [model_directory(wheel) for wheel in wheels], redact)
    print(f"docker: built {spec.image} for {spec.target.platform}; try: {engine.program} run --rm --network=none "
          f"{spec.image} 'Acme hired Ada'")  # fmt: skip


def source_date_epoch(root: Path, lock_name: str, given: str) -> int:
    """given (SOURCE_DATE_EPOCH), else the commit time of the lock, else ZIP_EPOCH (no git, or not committed)."""
    git = ["git", "-C", str(root), "log", "-1", "--format=%ct", "--", lock_name]
    committed = subprocess.run(git, capture_output=True, text=True).stdout.strip() if shutil.which("git") else ""
    value = given or committed
    if value and not value.isdigit():
        raise UserError(f"SOURCE_DATE_EPOCH={value} is not a number of seconds since 1970: set it like 1700000000")
    return int(value or ZIP_EPOCH)


def models_image(
    spec: ImageBuild,
    engine: Engine,
    wheels: list[Path],
    hashes: HashCache,
    redact: Redactor,
    tag_suffix: str,
    made: list[str],
) -> str:
    """The base image plus one layer a model, each made by a build of its own with ZIP_EPOCH as its time.

    Each build's context is the model's files laid out as they land (opt/spacy-models/<name>-<version>/),
    every entry with ZIP_EPOCH as its time, copied with COPY . /: the layer's bytes depend on the wheel
    alone, on any engine or machine, with or without a cache. Returns the top image; each tag goes to made.
    """
    root = spec.root / "build" / "image" / "models"
    key, parent = hashlib.sha256(f"{spec.base} {spec.target.platform}".encode()), spec.base
    directories = {hashes.sha256(wheel)[:32]: wheel for wheel in wheels}
    for stale in [p for p in root.iterdir() if p.name.split(".")[0] not in directories] if root.is_dir() else []:
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    no_cache = ["--no-cache"] if spec.no_cache else []
    for name, wheel in directories.items():
        key.update(name.encode())
        tag = f"localhost/spacy-models:{key.hexdigest()[:20]}{tag_suffix}"
        print(f"docker: {wheel.name}: a layer of its own under {tag}", flush=True)
        dockerfile = root / f"{name}.Dockerfile"  # beside its context, not in it
        write_if_changed(dockerfile, MODEL_LAYER)
        context = unpack(wheel, root / name, f"opt/spacy-models/{model_directory(wheel)}")
        command = ["build", "--quiet", "--network=none", "--platform", spec.target.platform,
                   *engine.build_flags(ZIP_EPOCH), "--build-arg", f"FROM={parent}", "--file", str(dockerfile),
                   "--tag", tag, *no_cache, str(context)]  # fmt: skip
        made.append(tag)
        engine.tool(command, what=f"{engine.program} build of {wheel.name}'s layer", redact=redact,
                    quiet=True, fix="Read the engine's message above")  # fmt: skip
        if tag_suffix:  # a verify run: its layer must be the real one, which the next steps build on, by name
            real = tag.removesuffix(tag_suffix)  # (podman writes that name into the next layer's history)
            if imagediff.identity(engine, tag) != imagediff.identity(engine, real):
                raise UserError(f"a --no-cache rebuild of {wheel.name}'s layer is another image: "
                                f"{imagediff.first_difference(engine, real, tag)}. Run make docker-verify again; "
                                "if it says so twice, report it: a model layer depends on its wheel alone")  # fmt: skip
            engine.untag(tag)  # one name left: podman writes the image's name, whichever was asked for
            tag = real
        parent = tag
    return parent


def model_directory(wheel: Path) -> str:
    """The directory a model wheel's files land in, under /opt/spacy-models: <name>-<version>."""
    return "-".join(wheel.name.split("-")[:2])


def unpack(wheel: Path, directory: Path, within: str) -> Path:
    """A build context holding the wheel's files as an install places them (a model wheel is pure) under
    within (opt/spacy-models/<name>-<version>), every entry, directories above included, with fixed modes and
    times."""
    if (directory / within).is_dir():
        return directory
    shutil.rmtree(directory, ignore_errors=True)  # a context of the older layout
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        if any(".data/" in name for name in archive.namelist()):
            raise UserError(
                f"{wheel.name} has a .data directory: package the model with spacy package, then make models"
            )
        archive.extractall(partial / within)
    for path in [partial, *partial.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH))
    partial.rename(directory)
    return directory


def uv_wheel(
    tools_lock: Path, directory: Path, target: ImageTarget, *, host: bool, hashes: HashCache, tools: Tools
) -> Path:
    """uv's wheel for the image's platform in directory, by its hash in tools_lock (scripts/tools.txt).

    Downloaded once (unless OFFLINE); raises UserError when tools_lock pins no uv or the wheel cannot be had.
    """
    if not tools_lock.is_file():
        raise UserError(f"{tools_lock} is missing: it pins the uv the image's builder runs (IMAGE_INSTALLER=pip "
                        "installs with pip instead)")  # fmt: skip
    entries = [e for e in lockfile.parse(tools_lock.read_text()).entries if e.name == "uv"]
    if not entries:
        raise UserError(f"{tools_lock} pins no uv: add uv to its .in file and lock it, or set IMAGE_INSTALLER=pip")
    directory.mkdir(parents=True, exist_ok=True)
    found = wheelhouse.Wheelhouse(directory, hashes).find(entries[0])
    if found is None and not tools.offline:
        wheelhouse.pip_download(tools, entries, directory, None if host else target)
        found = wheelhouse.Wheelhouse(directory, hashes).find(entries[0])
    if found is None:
        raise UserError(f"OFFLINE=1, but {directory}/ has no uv wheel for the image: run make docker once with "
                        "network access, or set IMAGE_INSTALLER=pip")  # fmt: skip
    return found


def show_layers(engine: Engine, image: str, models: list[str], redact: Redactor) -> None:
    """The image's layers with their sizes, newest first; the model layers (models: their directories under
    /opt/spacy-models, lowest first) sit at the bottom, above the base image's."""
    form = "json" if engine.podman else "{{json .}}"  # Docker 20.10 knows the template only
    found = engine.tool(["history", "--no-trunc", "--format", form, image], quiet=True, redact=redact,
                        what=f"{engine.program} history", fix="Run make docker again")  # fmt: skip
    try:  # podman: one JSON list, sizes in bytes; docker: a JSON object a line, sizes as text
        steps = json.loads(found) if found.lstrip().startswith("[") else [json.loads(x) for x in found.splitlines()]
    except ValueError:
        steps = []
    if not steps:
        print(f"docker: {engine.program} history gave no layer list; {engine.program} history {image} shows it")
        return
    lines, names = [], iter(models)
    for step in reversed(steps):  # oldest first: the model layers come in the order they were built
        size = step.get("size", step.get("Size")) or 0
        if size in (0, "0B"):
            continue
        text = (f"{size / 1e6:.1f} MB" if size > 1e5 else f"{size / 1e3:.1f} kB") if isinstance(size, int) else size
        created = " ".join(re.sub(HISTORY_NOISE, "", step.get("CreatedBy", step.get("created_by", ""))).split())
        if re.fullmatch(r"COPY (\. |in )?/", created) and (name := next(names, None)):
            created = f"COPY in /opt/spacy-models/{name}/ (a model layer)"
        lines.append(f"  {text:>10}  {created[:100]}")
    print(f"docker: the layers of {image}, newest first:", *reversed(lines), sep="\n")

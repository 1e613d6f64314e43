"""Images: the engine, the image's platform and Python, its wheelhouse, and the build command.

The image gets wheels for its own platform and Python, not the host's: when
they differ from this machine's, the lock is resolved again for the image
(uv pip compile --python-platform, the committed lock's versions as
constraints) and its wheels are downloaded for it into build/image/<target>/.
Credentials reach a build only as a build secret, never as a build argument.

Each model is a layer of its own, below everything else, made by a build of its
own with a fixed time (MODEL_EPOCH): its bytes depend on its wheel alone. The app
is built on top with SOURCE_DATE_EPOCH as podman's --timestamp (BuildKit's
SOURCE_DATE_EPOCH for docker): the same inputs, the same image ID.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as host
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nlp_modeltools import imagediff, lockfile, wheelhouse
from nlp_modeltools.engine import HISTORY_NOISE, Engine, detect, engine_environment
from nlp_modeltools.errors import UserError
from nlp_modeltools.files import read_json, write_atomic, write_if_changed
from nlp_modeltools.settings import SOURCE_VARIABLES, Settings

SECRET_ID = "pip_env"  # noqa: S105 - the name of the build secret, not a value
ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64"}
MACHINE_ALIASES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
MODEL_EPOCH = 315532800  # 1980-01-01, the oldest time a zip can hold: every model layer's file times
MODEL_LAYER = "ARG FROM\nFROM ${FROM}\nCOPY . /\n"


@dataclass(frozen=True)
class ImageTarget:
    platform: str  # linux/amd64
    python_version: str  # 3.11
    glibc: str  # 2.28: the newest glibc the image's wheels may need (the base image's)
    glibc_given: bool = False  # IMAGE_GLIBC set: the host's wheels fit only an image with a glibc as new

    @property
    def arch(self) -> str:
        return ARCHITECTURES[self.platform.split("/")[1]]

    @property
    def key(self) -> str:
        return f"{self.platform.replace('/', '-')}-py{self.python_version}"

    @property
    def uv_platform(self) -> str:
        """uv pip compile's --python-platform, e.g. aarch64-manylinux_2_28."""
        return f"{self.arch}-manylinux_{self.glibc.replace('.', '_')}"

    def pip_options(self) -> list[str]:
        """pip download's options for wheels of this platform and Python only."""
        options = ["--only-binary=:all:", "--python-version", self.python_version, "--implementation", "cp"]
        options += ["--abi", "cp" + self.python_version.replace(".", ""), "--abi", "abi3", "--abi", "none"]
        return options + [item for tag in manylinux_tags(self.glibc, self.arch) for item in ("--platform", tag)]

    def marker_environment(self) -> dict[str, str]:
        """The values a requirement's marker sees inside the image (for a lock entry such as `; sys_platform…`)."""
        return {
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": self.arch,
            "python_version": self.python_version, "python_full_version": f"{self.python_version}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
        }  # fmt: skip


def manylinux_tags(glibc: str, arch: str) -> tuple[str, ...]:
    """Every platform tag a wheel may carry to run on this glibc, newest first (pip needs each one named)."""
    major, minor = (int(part) for part in glibc.split("."))
    tags = [f"manylinux_{major}_{older}_{arch}" for older in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}  # PEP 599, 571, 513
    tags += [f"{name}_{arch}" for floor, name in legacy.items() if floor <= minor and (floor == 17 or arch == "x86_64")]
    return (*tags, f"linux_{arch}")


def native_platform() -> str:
    machine = MACHINE_ALIASES.get(host.machine().lower())
    return f"linux/{machine}" if machine else "linux/amd64"


def image_target(settings: Settings) -> ImageTarget:
    platform = settings.get("PLATFORM") or native_platform()
    if platform not in (f"linux/{arch}" for arch in ARCHITECTURES):
        raise UserError(f"PLATFORM={platform} is not supported: use linux/amd64 or linux/arm64")
    python = settings.get("IMAGE_PYTHON") or settings.python_version
    glibc = settings.get("IMAGE_GLIBC")
    for name, value in (("IMAGE_PYTHON", python), ("IMAGE_GLIBC", glibc or "2.28")):
        if not re.fullmatch(r"\d+\.\d+", value):
            raise UserError(
                f"{name}={value} is not major.minor: write it like 3.11 (IMAGE_PYTHON) or 2.28 (IMAGE_GLIBC)"
            )
    return ImageTarget(platform, python, glibc or "2.28", glibc_given=bool(glibc))


def host_glibc() -> tuple[int, ...] | None:
    library, version = host.libc_ver()
    return tuple(int(part) for part in version.split(".")[:2]) if library == "glibc" and version else None


def is_host(target: ImageTarget, python_version: str) -> bool:
    """Whether this machine's lock and wheelhouse fit the image as they are.

    Same OS, architecture and Python; and, when IMAGE_GLIBC is given, a host glibc no newer than
    the image's (this machine's wheels could otherwise need a glibc the image lacks).
    """
    if sys.platform != "linux" or target.platform != native_platform() or target.python_version != python_version:
        return False
    glibc = host_glibc()
    wanted = tuple(int(part) for part in target.glibc.split("."))
    return not target.glibc_given or (glibc is not None and glibc <= wanted)


def engine_for(settings: Settings) -> Engine:
    """The engine of CONTAINER_ENGINE (or found), checked before anything is built, with its environment."""
    return detect(settings.get("CONTAINER_ENGINE"), engine_environment(settings.environ, list(settings.env_values)))


def build_inputs(settings: Settings, target: ImageTarget, requirements: Path, house: Path, extra: tuple) -> str:
    """A digest of all an image is built from: what the Dockerfile reads of the context, and the settings."""
    root = settings.paths.root
    digest = hashlib.sha256(repr((target, settings.get("IMAGE"), settings.get("BASE_IMAGE"), extra)).encode())
    sources = [p for p in sorted((root / "src").rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    script = root / "scripts" / "image-install.sh"
    for path in [root / "Dockerfile", root / ".dockerignore", script, requirements, house / ".complete", *sources]:
        digest.update(f"{path.relative_to(root)} {settings.hashes.sha256(path) if path.exists() else '-'}\n".encode())
    settings.hashes.save()
    return digest.hexdigest()


def is_up_to_date(settings: Settings, engine: Engine, inputs: str) -> bool:
    """Built from these very inputs, and still in the engine: nothing to do (DOCKER_BUILD_ARGS always builds)."""
    built = read_json(settings.paths.build / "image" / "built.json").get(settings.get("IMAGE"))
    return (
        isinstance(built, dict)
        and not settings.get("DOCKER_BUILD_ARGS")
        and built.get("inputs") == inputs
        and (built.get("id") is not None and built.get("id") == engine.image_id(settings.get("IMAGE")))
    )


def remember_build(settings: Settings, engine: Engine, inputs: str) -> None:
    record = settings.paths.build / "image" / "built.json"
    known = read_json(record)
    known[settings.get("IMAGE")] = {"inputs": inputs, "id": engine.image_id(settings.get("IMAGE"))}
    write_atomic(record, json.dumps(known, indent=1) + "\n")


def build(
    settings: Settings,
    engine: Engine,
    target: ImageTarget,
    requirements: Path,
    wheelhouse_dir: Path,
    sbom: Path,
    *,
    model_tag_suffix: str = "",
    made: list[str] | None = None,
) -> None:
    """The engine's build, offline, the pip sources of .env handed over as a build secret.

    Every image it tags (its model layers', then IMAGE) is added to made as soon as it is asked for, so a
    caller can remove them, even after a failure; model_tag_suffix keeps a verify run's model layers apart.
    """
    made = made if made is not None else []
    image, base = settings.get("IMAGE"), settings.get("BASE_IMAGE")
    if not image or not base:
        raise UserError("IMAGE and BASE_IMAGE must be set (the Makefile sets both): run make docker")
    root, epoch, uv = settings.paths.root, source_date_epoch(settings), uv_wheel(settings, target)
    inputs = build_inputs(
        settings, target, requirements, wheelhouse_dir,
        (epoch, uv and uv.name, settings.hashes.sha256(sbom), engine.program, engine.version, engine.store),
    )  # fmt: skip
    if is_up_to_date(settings, engine, inputs):
        print(f"docker: {image} is up to date: nothing it is built from changed (DOCKER_BUILD_ARGS=--no-cache builds)")
        return
    if not engine.reproducible:
        print(f"docker: Docker Engine {'.'.join(map(str, engine.version))} cannot build reproducible images (its "
              "BuildKit ignores SOURCE_DATE_EPOCH): the image is built, but another build gets another ID; "
              "Docker Engine 24 or newer, or podman, give the same image every time", flush=True)  # fmt: skip
    house, locked = wheelhouse.Wheelhouse(wheelhouse_dir, settings.hashes), lockfile.parse(requirements.read_text())
    wheels = sorted(filter(None, (house.find(e) for e in locked.entries if e.is_model)))
    models = models_image(settings, engine, target, base, wheels, model_tag_suffix, made)
    secrets = {name: settings.get(name) for name in SOURCE_VARIABLES if settings.get(name)}
    uv_args = [f"UV_WHEEL={uv.relative_to(root)}", f"UV_SHA256={settings.hashes.sha256(uv)}"] if uv else []
    with tempfile.TemporaryDirectory(prefix="image-secret-") as private:
        secret = Path(private) / SECRET_ID
        write_atomic(secret, "".join(f"{name}={value}\n" for name, value in secrets.items()), private=True)
        command = ["build", "--network=none", "--platform", target.platform,
                   "--secret", f"id={SECRET_ID},src={secret}", *engine.build_flags(epoch),
                   *(item for arg in [f"BASE_IMAGE={base}", f"MODELS_IMAGE={models}", "MODEL_LAYERS=1",
                                      f"REQUIREMENTS={requirements.relative_to(root)}",
                                      f"WHEELHOUSE={wheelhouse_dir.relative_to(root)}",
                                      f"SBOM={sbom.relative_to(root)}", *uv_args] for item in ("--build-arg", arg)),
                   "--label", f"nlp-template.sbom.sha256={settings.hashes.sha256(sbom)}",
                   "--tag", image, *shlex.split(settings.get("DOCKER_BUILD_ARGS")), str(root)]  # fmt: skip
        print(settings.redact("$ " + shlex.join([engine.program, *command]).replace(str(secret), "<build secret>")),
              flush=True)  # fmt: skip
        made.append(image)
        engine.tool(command, what=f"{engine.program} build", redact=settings.redact,
                    fix="Read the build's output above; the wheelhouse was complete and verified")  # fmt: skip
    if not model_tag_suffix:
        remember_build(settings, engine, inputs)
    show_layers(settings, engine, image, [model_directory(wheel) for wheel in wheels])
    print(f"docker: built {image} for {target.platform}; try: {engine.program} run --rm --network=none {image} "
          "'Acme hired Ada'")  # fmt: skip


def source_date_epoch(settings: Settings) -> int:
    """SOURCE_DATE_EPOCH, else the commit time of requirements.txt, else MODEL_EPOCH (no git, or not committed)."""
    git = ["git", "-C", str(settings.paths.root), "log", "-1", "--format=%ct", "--", settings.paths.lock.name]
    committed = subprocess.run(git, capture_output=True, text=True).stdout.strip() if shutil.which("git") else ""
    value = settings.get("SOURCE_DATE_EPOCH") or committed
    if value and not value.isdigit():
        raise UserError(f"SOURCE_DATE_EPOCH={value} is not a number of seconds since 1970: set it like 1700000000")
    return int(value or MODEL_EPOCH)


def models_image(
    settings: Settings,
    engine: Engine,
    target: ImageTarget,
    base: str,
    wheels: list[Path],
    tag_suffix: str,
    made: list[str],
) -> str:
    """The base image plus one layer a model, each made by a build of its own with MODEL_EPOCH as its time.

    Each build's context is the model's files laid out as they land (opt/spacy-models/<name>-<version>/),
    every entry with MODEL_EPOCH as its time, copied with COPY . /: the layer's bytes depend on the wheel
    alone, on any engine or machine, with or without a cache. Returns the top image; each tag goes to made.
    """
    root = settings.paths.build / "image" / "models"
    key, parent = hashlib.sha256(f"{base} {target.platform}".encode()), base
    directories = {settings.hashes.sha256(wheel)[:32]: wheel for wheel in wheels}
    for stale in [p for p in root.iterdir() if p.name.split(".")[0] not in directories] if root.is_dir() else []:
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    no_cache = ["--no-cache"] if "--no-cache" in settings.get("DOCKER_BUILD_ARGS") else []
    for name, wheel in directories.items():
        key.update(name.encode())
        tag = f"localhost/spacy-models:{key.hexdigest()[:20]}{tag_suffix}"
        print(f"docker: {wheel.name}: a layer of its own under {tag}", flush=True)
        dockerfile = root / f"{name}.Dockerfile"  # beside its context, not in it
        write_if_changed(dockerfile, MODEL_LAYER)
        context = unpack(wheel, root / name, f"opt/spacy-models/{model_directory(wheel)}")
        command = ["build", "--quiet", "--network=none", "--platform", target.platform,
                   *engine.build_flags(MODEL_EPOCH), "--build-arg", f"FROM={parent}", "--file", str(dockerfile),
                   "--tag", tag, *no_cache, str(context)]  # fmt: skip
        made.append(tag)
        engine.tool(command, what=f"{engine.program} build of {wheel.name}'s layer", redact=settings.redact,
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
        os.utime(path, (MODEL_EPOCH, MODEL_EPOCH))
    partial.rename(directory)
    return directory


def uv_wheel(settings: Settings, target: ImageTarget) -> Path | None:
    """uv's wheel for the image's platform, by its hash in scripts/tools.txt; None: the builder uses pip."""
    choice = settings.get("IMAGE_INSTALLER", "uv")
    if choice not in ("uv", "pip"):
        raise UserError(f"IMAGE_INSTALLER={choice} is neither uv nor pip: set it to uv (the default) or pip")
    (entry,) = [e for e in lockfile.parse((settings.paths.root / "scripts" / "tools.txt").read_text()).entries
                if e.name == "uv"]  # fmt: skip
    directory = settings.paths.build / "image" / "tools" / target.platform.replace("/", "-")
    directory.mkdir(parents=True, exist_ok=True)
    if choice == "uv" and not wheelhouse.Wheelhouse(directory, settings.hashes).find(entry) and not settings.offline:
        wheelhouse.pip_download(
            settings, [entry], directory, None if is_host(target, settings.python_version) else target
        )
    return wheelhouse.Wheelhouse(directory, settings.hashes).find(entry) if choice == "uv" else None


def show_layers(settings: Settings, engine: Engine, image: str, models: list[str]) -> None:
    """The image's layers with their sizes, newest first; the model layers (models: their directories under
    /opt/spacy-models, lowest first) sit at the bottom, above the base image's."""
    form = "json" if engine.podman else "{{json .}}"  # Docker 20.10 knows the template only
    found = engine.tool(["history", "--no-trunc", "--format", form, image], quiet=True, redact=settings.redact,
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

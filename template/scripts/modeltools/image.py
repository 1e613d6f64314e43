"""Images: the engine, the image's platform and Python, its wheelhouse, and the build command.

The image gets wheels for its own platform and Python, not the host's: when
they differ from this machine's, the lock is resolved again for the image
(uv pip compile --python-platform, the committed lock's versions as
constraints) and its wheels are downloaded for it into build/image/<target>/.
Credentials reach a build only as a build secret, never as a build argument.
"""

from __future__ import annotations

import hashlib
import json
import platform as host
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modeltools.errors import UserError, run_tool
from modeltools.files import write_atomic
from modeltools.resolve import Target
from modeltools.settings import SOURCE_VARIABLES, Settings
from modeltools.wheelhouse import Platform

SECRET_ID = "pip_env"  # noqa: S105 - the name of the build secret, not a value
ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64"}
MACHINE_ALIASES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class ImageTarget:
    platform: str  # linux/amd64
    python_version: str  # 3.11
    glibc: str  # 2.28: the oldest glibc the image's wheels may need

    @property
    def arch(self) -> str:
        return ARCHITECTURES[self.platform.split("/")[1]]

    @property
    def key(self) -> str:
        return f"{self.platform.replace('/', '-')}-py{self.python_version}"

    def resolver_target(self) -> Target:
        return Target(f"{self.arch}-manylinux_{self.glibc.replace('.', '_')}", self.python_version)

    def download_platform(self) -> Platform:
        return Platform(manylinux_tags(self.glibc, self.arch), self.python_version)


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
    return ImageTarget(platform, python, settings.get("IMAGE_GLIBC", "2.28"))


def is_host(target: ImageTarget, python_version: str) -> bool:
    """Whether this machine's lock and wheelhouse fit the image as they are."""
    return sys.platform == "linux" and target.platform == native_platform() and target.python_version == python_version


def detect_engine(requested: str) -> str:
    if requested:
        if shutil.which(requested) is None:
            raise UserError(f"CONTAINER_ENGINE={requested} is not installed: install it or set CONTAINER_ENGINE")
        return requested
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    if shutil.which("podman"):
        return "podman"
    raise UserError("no container engine found: install podman or docker, or set CONTAINER_ENGINE")


def build_inputs(settings: Settings, target: ImageTarget, requirements: Path, wheelhouse: Path) -> str:
    """A digest of all an image is built from: what the Dockerfile reads of the context, and the settings."""
    root = settings.paths.root
    digest = hashlib.sha256(repr((target, settings.get("IMAGE"), settings.get("BASE_IMAGE"))).encode())
    sources = [p for p in sorted((root / "src").rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    for path in [root / "Dockerfile", root / ".dockerignore", requirements, wheelhouse / ".complete", *sources]:
        digest.update(f"{path.relative_to(root)} {settings.hashes.sha256(path) if path.exists() else '-'}\n".encode())
    settings.hashes.save()
    return digest.hexdigest()


def image_id(engine: str, image: str) -> str | None:
    result = subprocess.run([engine, "image", "inspect", image], capture_output=True, text=True)
    try:
        return json.loads(result.stdout)[0]["Id"] if result.returncode == 0 else None
    except (ValueError, LookupError, TypeError):
        return None


def is_up_to_date(settings: Settings, engine: str, inputs: str) -> bool:
    """Built from these very inputs, and still in the engine: nothing to do (DOCKER_BUILD_ARGS always builds)."""
    record = settings.paths.build / "image" / "built.json"
    try:
        built = json.loads(record.read_text()).get(settings.get("IMAGE"), {})
    except (OSError, ValueError, AttributeError):
        return False
    return (
        not settings.get("DOCKER_BUILD_ARGS")
        and built.get("inputs") == inputs
        and (built.get("id") is not None and built.get("id") == image_id(engine, settings.get("IMAGE")))
    )


def remember_build(settings: Settings, engine: str, inputs: str) -> None:
    record = settings.paths.build / "image" / "built.json"
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = {}
    known[settings.get("IMAGE")] = {"inputs": inputs, "id": image_id(engine, settings.get("IMAGE"))}
    write_atomic(record, json.dumps(known, indent=1) + "\n")


def build(settings: Settings, target: ImageTarget, requirements: Path, wheelhouse: Path) -> None:
    """The engine's build, offline, the pip sources of .env handed over as a build secret."""
    engine = detect_engine(settings.get("CONTAINER_ENGINE"))
    image, base = settings.get("IMAGE"), settings.get("BASE_IMAGE")
    if not image or not base:
        raise UserError("IMAGE and BASE_IMAGE must be set (the Makefile sets both): run make docker")
    inputs = build_inputs(settings, target, requirements, wheelhouse)
    if is_up_to_date(settings, engine, inputs):
        print(f"docker: {image} is up to date: nothing it is built from changed (DOCKER_BUILD_ARGS=--no-cache builds)")
        return
    secrets = {name: settings.get(name) for name in SOURCE_VARIABLES if settings.get(name)}
    root = settings.paths.root
    with tempfile.TemporaryDirectory(prefix="image-secret-") as private:
        secret = Path(private) / SECRET_ID
        write_atomic(secret, "".join(f"{name}={value}\n" for name, value in secrets.items()), private=True)
        command = [engine, "build", "--network=none", "--platform", target.platform,
                   "--secret", f"id={SECRET_ID},src={secret}",
                   "--build-arg", f"BASE_IMAGE={base}",
                   "--build-arg", f"REQUIREMENTS={requirements.relative_to(root)}",
                   "--build-arg", f"WHEELHOUSE={wheelhouse.relative_to(root)}",
                   "--tag", image, *shlex.split(settings.get("DOCKER_BUILD_ARGS")), str(root)]  # fmt: skip
        print("$ " + shlex.join(command).replace(str(secret), "<build secret>"), flush=True)
        run_tool(command, what=f"{engine} build", redact=settings.redact,
                 fix="Read the build's output above; the wheelhouse was complete and verified")  # fmt: skip
    remember_build(settings, engine, inputs)
    print(
        f"docker: built {image} for {target.platform}; try: {engine} run --rm --network=none {image} 'Acme hired Ada'"
    )

"""Images: the engine, the image's platform and Python, its wheelhouse, and the build command.

The image gets wheels for its own platform and Python, not the host's: when
they differ from this machine's, the lock is resolved again for the image
(uv pip compile --python-platform, the committed lock's versions as
constraints) and its wheels are downloaded for it into build/image/<target>/.
Credentials reach a build only as a build secret, never as a build argument.
"""

from __future__ import annotations

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
from modeltools.secrets import SOURCE_VARIABLES
from modeltools.settings import Settings
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


def build(settings: Settings, target: ImageTarget, requirements: Path, wheelhouse: Path) -> None:
    """The engine's build, offline, the pip sources of .env handed over as a build secret."""
    engine = detect_engine(settings.get("CONTAINER_ENGINE"))
    image, base = settings.get("IMAGE"), settings.get("BASE_IMAGE")
    if not image or not base:
        raise UserError("IMAGE and BASE_IMAGE must be set (the Makefile sets both): run make docker")
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
    print(
        f"docker: built {image} for {target.platform}; try: {engine} run --rm --network=none {image} 'Acme hired Ada'"
    )

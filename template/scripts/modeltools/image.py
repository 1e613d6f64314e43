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
import re
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
    glibc: str  # 2.28: the newest glibc the image's wheels may need (the base image's)
    glibc_given: bool = False  # IMAGE_GLIBC set: the host's wheels fit only an image with a glibc as new

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
        print(settings.redact("$ " + shlex.join(command).replace(str(secret), "<build secret>")), flush=True)
        # .env's variables stay out of the engine's environment: a `--build-arg NAME` could not take one
        engine_env = {k: v for k, v in settings.environ.items() if k not in settings.env_values}
        run_tool(command, what=f"{engine} build", redact=settings.redact, env=engine_env,
                 fix="Read the build's output above; the wheelhouse was complete and verified")  # fmt: skip
    remember_build(settings, engine, inputs)
    print(
        f"docker: built {image} for {target.platform}; try: {engine} run --rm --network=none {image} 'Acme hired Ada'"
    )

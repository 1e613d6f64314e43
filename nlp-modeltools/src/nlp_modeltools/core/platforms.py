"""Where an image's packages run: its platform, Python and glibc (a pure value), and whether this machine is like it.

The image gets wheels for its own platform and Python, not the host's; the tags
a wheel may carry there are PEP 600's (manylinux_X_Y), PEP 599's, 571's and 513's.
"""

from __future__ import annotations

import platform as host
import re
import sys
from dataclasses import dataclass

from nlp_modeltools.core.errors import UserError

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


def image_target(platform: str, python: str, glibc: str) -> ImageTarget:
    """The target of PLATFORM, IMAGE_PYTHON and IMAGE_GLIBC (each may be empty: this machine's, 2.28).

    Raises UserError naming the variable to fix.
    """
    platform = platform or native_platform()
    if platform not in (f"linux/{arch}" for arch in ARCHITECTURES):
        raise UserError(f"PLATFORM={platform} is not supported: use linux/amd64 or linux/arm64")
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

"""The container engine: which one, what its builder can do, and the one environment of every call.

Every build, run, inspect, push and removal goes through an Engine, so the engine's
settings from .env (DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG, BUILDX_BUILDER,
CONTAINERS_CONF, REGISTRY_*) reach each of them alike, while .env's other variables
(package-index credentials, licence keys) reach none: they go to a build only as a
build secret. docker builds with BuildKit or not at all: the Dockerfile needs
`RUN --mount`, and the legacy builder would fail late with a misleading message.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nlp_modeltools.core.errors import UserError, run_tool
from nlp_modeltools.core.redact import Redactor

# .env variables that configure the engine itself, handed to every engine call.
ENGINE_PREFIXES = ("DOCKER_", "BUILDX_", "BUILDKIT_", "CONTAINERS_", "CONTAINER_", "REGISTRY_", "BUILDAH_", "PODMAN_")
FALSE = ("0", "false", "no", "off")
# The engine's words around a history step's command: podman's and BuildKit's prefixes, sources, markers.
HISTORY_NOISE = r"^(RUN )?(\|\d+ (\S+=\S* )*)?(/bin/sh -c )?(#\(nop\) )?|\b(dir|file|multi):[0-9a-f]+ | # buildkit$"
# Docker Engine 24 (BuildKit 0.11) is the first whose builder honours SOURCE_DATE_EPOCH.
REPRODUCIBLE_DOCKER = (24, 0)


@dataclass(frozen=True)
class Engine:
    """One container engine as this run calls it.

    program: what to run (docker, podman, or a path); kind: "docker" or "podman";
    version: the server's (major, minor); store: "podman", "classic" (docker's graph
    drivers) or "containerd" (docker's containerd image store); buildx: docker's
    builds go through the buildx plugin (Docker 23+), which takes --provenance.
    """

    program: str
    kind: str
    environ: Mapping[str, str] = field(hash=False, compare=False)
    version: tuple[int, int] = (0, 0)
    store: str = "podman"
    buildx: bool = False

    @property
    def podman(self) -> bool:
        return self.kind == "podman"

    @property
    def reproducible(self) -> bool:
        """Whether a build can give the same image twice (podman's --timestamp, or BuildKit 0.11+)."""
        return self.podman or self.version >= REPRODUCIBLE_DOCKER

    def build_flags(self, epoch: int) -> list[str]:
        """What makes a build reproducible on this engine, and keeps attestations out of the image."""
        flags = ["--build-arg", f"SOURCE_DATE_EPOCH={epoch}"]
        if self.podman:
            return [*flags, "--timestamp", str(epoch), "--identity-label=false"]
        return [*flags, "--provenance=false", "--sbom=false"] if self.buildx else flags

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The engine's own command, in the engine's environment, its output captured (never raises)."""
        return subprocess.run([self.program, *args], input=stdin, env=dict(self.environ), capture_output=True,
                              text=True, errors="replace")  # fmt: skip

    def tool(self, args: Sequence[str], *, what: str, fix: str, redact: Redactor, quiet: bool = False) -> str:
        """run_tool for the engine: its output streamed (or held when quiet), a failure one UserError."""
        return run_tool([self.program, *args], what=what, fix=fix, env=self.environ, redact=redact, quiet=quiet)

    def image_id(self, image: str) -> str | None:
        """The image's ID as the engine's store has it (classic docker, podman: the config digest)."""
        found = self.run("image", "inspect", "--format", "{{.Id}}", image)
        return found.stdout.strip() or None if found.returncode == 0 else None

    def untag(self, name: str) -> None:
        """Take one name off its image; the image stays (under its other names)."""
        self.run(*(["untag", name, name] if self.podman else ["rmi", name]))

    def remove(self, *images: str) -> None:
        """Remove images this run made (their untagged parents go with them); what is gone already is fine."""
        if images:
            self.run("rmi", "--force", *images)


def engine_environment(environ: Mapping[str, str], env_file_names: Sequence[str]) -> dict[str, str]:
    """The environment of every engine call: this one without .env's variables, but for the engine's own."""
    dropped = {name for name in env_file_names if not name.startswith(ENGINE_PREFIXES)}
    return {name: value for name, value in environ.items() if name not in dropped}


def detect(requested: str, environ: Mapping[str, str]) -> Engine:
    """The engine to use (CONTAINER_ENGINE, else a docker whose daemon answers, else podman), checked.

    Raises UserError, before anything is built, when docker cannot build with BuildKit:
    DOCKER_BUILDKIT=0, a Docker 23+ client without the buildx plugin, or a daemon older than 18.09.
    """
    program = requested or _default_program(environ)
    if shutil.which(program, path=environ.get("PATH")) is None:
        raise UserError(f"CONTAINER_ENGINE={program} is not installed: install it or set CONTAINER_ENGINE")
    if "podman" in Path(program).name:
        return Engine(program, "podman", dict(environ))
    if "docker" not in Path(program).name:
        raise UserError(f"CONTAINER_ENGINE={program} is neither docker nor podman: set it to one of them (or leave "
                        "it empty to use docker when its daemon answers, else podman)")  # fmt: skip
    return _docker(program, dict(environ))


def _default_program(environ: Mapping[str, str]) -> str:
    if shutil.which("docker", path=environ.get("PATH")):
        answered = subprocess.run(["docker", "info"], env=dict(environ), capture_output=True)
        if answered.returncode == 0:
            return "docker"
    if shutil.which("podman", path=environ.get("PATH")):
        return "podman"
    raise UserError("no container engine found: install podman or docker, or set CONTAINER_ENGINE")


def _docker(program: str, environ: dict[str, str]) -> Engine:
    if environ.get("DOCKER_BUILDKIT", "").strip().lower() in FALSE and environ.get("DOCKER_BUILDKIT", "").strip():
        raise UserError("DOCKER_BUILDKIT=0 turns off BuildKit, which the image build needs (RUN --mount): unset "
                        "DOCKER_BUILDKIT (in .env or your shell), then run make docker again")  # fmt: skip
    found = subprocess.run([program, "version", "--format", "{{json .}}"], env=environ, capture_output=True,
                           text=True, errors="replace")  # fmt: skip
    try:
        versions = json.loads(found.stdout)
    except ValueError:
        versions = {}
    client, server = _version((versions.get("Client") or {}).get("Version")), versions.get("Server") or {}
    if not server:
        where = environ.get("DOCKER_HOST") or environ.get("DOCKER_CONTEXT") or "the default socket"
        reason = " ".join(found.stderr.split())[:200] or "no answer"
        raise UserError(f"docker's daemon does not answer at {where} ({reason}): start it, or set DOCKER_HOST "
                        "(in .env or your shell) to one that runs, or CONTAINER_ENGINE=podman")  # fmt: skip
    version = _version(server.get("Version"))
    if version < (18, 9):
        raise UserError(f"Docker Engine {server.get('Version')} has no BuildKit, which the image build needs: "
                        "install Docker Engine 24 or newer, or set CONTAINER_ENGINE=podman")  # fmt: skip
    buildx = client >= (23, 0)
    if buildx and subprocess.run([program, "buildx", "version"], env=environ, capture_output=True).returncode:
        raise UserError(f"docker {'.'.join(map(str, client))} builds with BuildKit through the buildx plugin, which "
                        "is not installed: install docker-buildx-plugin (Docker's packages) or docker-buildx "
                        "(Debian's), then run make docker again")  # fmt: skip
    if not buildx:
        environ = {**environ, "DOCKER_BUILDKIT": "1"}  # a client before 23 asks the daemon's BuildKit only when told
    info = subprocess.run([program, "info", "--format", "{{json .DriverStatus}}"], env=environ, capture_output=True,
                          text=True, errors="replace").stdout  # fmt: skip
    store = "containerd" if "io.containerd.snapshotter" in info else "classic"
    return Engine(program, "docker", environ, version, store, buildx)


def _version(text: object) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", str(text or ""))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

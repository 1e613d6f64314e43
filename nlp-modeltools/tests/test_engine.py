"""ship/engine.py: the engine's environment and the checks made before anything is built (no daemon needed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.ship.engine import Engine, _version, detect, engine_environment


def program(directory: Path, name: str) -> Path:
    """An executable named `name` that leaves a mark if anything runs it."""
    path = directory / name
    path.write_text(f"#!/bin/sh\ntouch {directory / 'ran'}\nexit 1\n")
    path.chmod(0o755)
    return path


def refusal(requested: str, environ: dict[str, str]) -> str:
    with pytest.raises(UserError) as refused:
        detect(requested, environ)
    return str(refused.value)


def test_the_engine_keeps_env_s_engine_settings_and_drops_its_other_variables() -> None:
    environ = {"PATH": "/bin", "HOME": "/h", "DOCKER_HOST": "ssh://builder", "CONTAINERS_CONF": "/c.conf",
               "BUILDX_BUILDER": "b", "REGISTRY_PASSWORD": "p", "CONTAINER_ENGINE": "podman", "PRODIGY_KEY": "k-1234",
               "PIP_EXTRA_INDEX_URL": "https://ci:k-1234@h/simple", "HF_TOKEN": "hf_x"}  # fmt: skip
    in_env_file = ["DOCKER_HOST", "CONTAINERS_CONF", "REGISTRY_PASSWORD", "CONTAINER_ENGINE", "PRODIGY_KEY",
                   "PIP_EXTRA_INDEX_URL", "HF_TOKEN"]  # fmt: skip
    assert engine_environment(environ, in_env_file) == {
        "PATH": "/bin", "HOME": "/h", "DOCKER_HOST": "ssh://builder", "CONTAINERS_CONF": "/c.conf",
        "BUILDX_BUILDER": "b", "REGISTRY_PASSWORD": "p", "CONTAINER_ENGINE": "podman",
    }  # fmt: skip


def test_an_engine_that_is_not_installed_is_named(tmp_path: Path) -> None:
    assert refusal("nerdctl", {"PATH": str(tmp_path)}) == (
        "CONTAINER_ENGINE=nerdctl is not installed: install it or set CONTAINER_ENGINE"
    )


def test_a_program_that_is_neither_docker_nor_podman_is_refused_unrun(tmp_path: Path) -> None:
    program(tmp_path, "nerdctl")
    assert refusal("nerdctl", {"PATH": str(tmp_path)}) == (
        "CONTAINER_ENGINE=nerdctl is neither docker nor podman: set it to one of them (or leave it empty to use "
        "docker when its daemon answers, else podman)"
    )
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
def test_docker_buildkit_off_is_refused_before_docker_runs(tmp_path: Path, value: str) -> None:
    docker = program(tmp_path, "docker")
    assert refusal(str(docker), {"PATH": str(tmp_path), "DOCKER_BUILDKIT": value}) == (
        "DOCKER_BUILDKIT=0 turns off BuildKit, which the image build needs (RUN --mount): unset DOCKER_BUILDKIT (in "
        ".env or your shell), then run make docker again"
    )
    assert not (tmp_path / "ran").exists()


def test_podman_is_taken_as_it_is_named(tmp_path: Path) -> None:
    podman = program(tmp_path, "podman")
    engine = detect(str(podman), {"PATH": str(tmp_path), "CONTAINERS_CONF": "/c"})
    assert (engine.kind, engine.podman, engine.reproducible, dict(engine.environ)) == (
        "podman", True, True, {"PATH": str(tmp_path), "CONTAINERS_CONF": "/c"},
    )  # fmt: skip
    assert not (tmp_path / "ran").exists()


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker client (no daemon)")
def test_a_docker_whose_daemon_does_not_answer_is_named_with_the_ways_out(tmp_path: Path) -> None:
    socket = f"unix://{tmp_path / 'none.sock'}"
    message = refusal("docker", {"PATH": os.environ["PATH"], "DOCKER_HOST": socket,
                                 "DOCKER_CONFIG": str(tmp_path)})  # fmt: skip
    assert message.startswith(f"docker's daemon does not answer at {socket} (")
    assert message.endswith("): start it, or set DOCKER_HOST (in .env or your shell) to one that runs, or "
                            "CONTAINER_ENGINE=podman")  # fmt: skip


def test_build_flags_make_each_engine_reproducible() -> None:
    podman = Engine("podman", "podman", {})
    assert podman.build_flags(1700000000) == ["--build-arg", "SOURCE_DATE_EPOCH=1700000000", "--timestamp",
                                              "1700000000", "--identity-label=false"]  # fmt: skip
    buildx = Engine("docker", "docker", {}, (26, 1), "containerd", buildx=True)
    assert buildx.build_flags(5) == ["--build-arg", "SOURCE_DATE_EPOCH=5", "--provenance=false", "--sbom=false"]
    assert Engine("docker", "docker", {}, (20, 10)).build_flags(5) == ["--build-arg", "SOURCE_DATE_EPOCH=5"]


def test_docker_builds_reproducibly_from_engine_24() -> None:
    assert not Engine("docker", "docker", {}, (23, 0)).reproducible
    assert Engine("docker", "docker", {}, (24, 0)).reproducible


def test_versions_are_read_as_major_minor() -> None:
    assert (_version("26.1.3"), _version("24.0.0-rc1"), _version(None), _version("dev")) == (
        (26, 1), (24, 0), (0, 0), (0, 0),
    )  # fmt: skip

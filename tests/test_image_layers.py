"""Reproducible images whose model layers travel, built and compared with a real engine (podman in CI).

The same commit gives the same image ID on a --no-cache rebuild and from a clone
in another directory; each model is a layer of its own below the dependencies,
so a dependency bump leaves it as it was (test_push), and two projects that lock
the same model wheel share its layer (test_docker). Layers are compared by their digests (RootFS.Layers).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.project import copy_project, make
from tests.test_docker import run

pytestmark = pytest.mark.container


def settings(engine: str, base: str, image: str) -> list[str]:
    return [f"BASE_IMAGE={base}", f"IMAGE={image}", f"CONTAINER_ENGINE={engine}"]


def unique(name: str) -> str:
    return f"localhost/nlp-template-{name}-{uuid.uuid4().hex[:8]}:latest"


def image_id(engine: str, image: str) -> str:
    return run(engine, "image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


def model_images(engine: str) -> set[str]:
    listed = run(engine, "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/spacy-models").stdout
    return set(listed.split())


def git_commit(project: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "--quiet", "-m", message], cwd=project, check=True)


@pytest.fixture
def images(engine: str) -> Iterator[list[str]]:
    """The images a test names here, removed afterwards with the model images its builds made."""
    before, made = model_images(engine), []
    yield made
    for image in made:
        subprocess.run([engine, "rmi", "--force", image], capture_output=True)
    for tag in model_images(engine) - before:
        subprocess.run([engine, "rmi", tag], capture_output=True)
    subprocess.run([engine, "image", "prune", "--force"], capture_output=True)  # the layers the builds left


def test_a_no_cache_rebuild_gives_the_same_image_id_even_on_a_cache_of_another_commit(
    thin: Path, tmp_path: Path, engine: str, base_image: str, images: list[str]
) -> None:
    """podman's --timestamp: a make docker on a cache another commit's build left (another SOURCE_DATE_EPOCH) is the
    image a --no-cache rebuild gives: no step is taken from that cache with its older time (a clone on a fresh
    machine, a failed verify and where it names the difference are test_docker_engine's, on Docker's stores).
    The older cache is an image of the same files built uncommitted (the 1980 epoch); conftest's thin project (one
    small model wheel, no spaCy) keeps both builds small."""
    project = copy_project(thin, tmp_path / "proj")
    older = unique("older")
    images.append(older)
    uncommitted = make(project, "docker", *settings(engine, base_image, older))
    assert "--timestamp 315532800 " in uncommitted.stdout and image_id(engine, older), "no older cache"
    git_commit(project, "the project")
    epoch = subprocess.run(["git", "log", "-1", "--format=%ct", "--", "requirements.txt"], cwd=project,
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    image = unique("same")
    images += [image, f"{image}-verify"]
    verified = make(project, "docker-verify", *settings(engine, base_image, image))
    first = image_id(engine, image)
    assert f"docker-verify: a --no-cache rebuild of {image} gave the same image, {first}" in verified.stdout
    assert f"--timestamp {epoch} --identity-label=false" in verified.stdout, "the commit time of requirements.txt"
    created = json.loads(run(engine, "image", "inspect", image).stdout)[0]["Created"]
    assert created.startswith(subprocess.run(["date", "-u", "-d", f"@{epoch}", "+%Y-%m-%dT%H:%M:%S"],
                                             capture_output=True, text=True).stdout.strip())  # fmt: skip
    assert not {tag for tag in model_images(engine) if tag.endswith("-verify")}, "the rebuild's tags are gone"

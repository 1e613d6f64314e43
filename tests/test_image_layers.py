"""Reproducible images whose model layers travel, built and compared with a real engine (podman in CI).

The same commit gives the same image ID on a --no-cache rebuild and from a clone
in another directory; each model is a layer of its own below the dependencies,
so a dependency bump leaves it as it was, and two projects that lock the same
model wheel share its layer. Layers are compared by their digests (RootFS.Layers).
"""

# ruff: noqa: F811 (engine and base_image are test_docker's fixtures, imported)
from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST, Installed
from tests.support.mirror import Mirror
from tests.support.project import make, render
from tests.test_docker import base_image, engine, layers, run  # noqa: F401 (fixtures)

pytestmark = pytest.mark.container


def settings(engine: str, base: str, image: str) -> list[str]:
    return [f"BASE_IMAGE={base}", f"IMAGE={image}", f"CONTAINER_ENGINE={engine}"]


def unique(name: str) -> str:
    return f"localhost/nlp-template-{name}-{uuid.uuid4().hex[:8]}:latest"


def image_id(engine: str, image: str) -> str:
    return run(engine, "image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


def config(engine: str, image: str) -> dict:
    """What an image ID is the digest of, less its name."""
    found = json.loads(run(engine, "image", "inspect", image).stdout)[0]
    return {key: found[key] for key in ("Created", "Config", "History", "Labels", "Architecture", "Os")}


def model_images(engine: str) -> set[str]:
    listed = run(engine, "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/spacy-models").stdout
    return set(listed.split())


def git_commit(project: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "--quiet", "-m", message], cwd=project, check=True)


def copy_build(source: Path, target: Path) -> None:
    """The model wheels and the wheelhouse (gitignored): what make models and make wheelhouse leave."""
    shutil.copytree(source / "build", target / "build", ignore=shutil.ignore_patterns("tools", "image", "lock"),
                    copy_function=_link, dirs_exist_ok=True)  # fmt: skip


def _link(source: str, target: str) -> None:
    """Archives are hard-linked (never written in place); stamps are copied: touching one must not touch its twin."""
    if not source.endswith((".whl", ".tar.gz")):
        shutil.copy2(source, target)
        return
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


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


def test_a_no_cache_rebuild_gives_the_same_image_id(
    project: Path, engine: str, base_image: str, images: list[str]
) -> None:
    """podman's --timestamp: the same image ID on a --no-cache rebuild (a clone on a fresh machine, a failed verify
    and where it names the difference are test_docker_engine's, on Docker's stores)."""
    git_commit(project, "the project")
    epoch = subprocess.run(["git", "log", "-1", "--format=%ct", "--", "requirements.txt"], cwd=project,
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    image = unique("same")
    images += [image, f"{image}-verify"]
    verified = make(project, "docker-verify", *settings(engine, base_image, image), "DOCKER_BUILD_ARGS=--no-cache")
    first = image_id(engine, image)
    assert f"docker-verify: a --no-cache rebuild of {image} gave the same image, {first}" in verified.stdout
    assert f"--timestamp {epoch} --identity-label=false" in verified.stdout, "the commit time of requirements.txt"
    created = json.loads(run(engine, "image", "inspect", image).stdout)[0]["Created"]
    assert created.startswith(subprocess.run(["date", "-u", "-d", f"@{epoch}", "+%Y-%m-%dT%H:%M:%S"],
                                             capture_output=True, text=True).stdout.strip())  # fmt: skip
    assert not {tag for tag in model_images(engine) if tag.endswith("-verify")}, "the rebuild's tags are gone"


@pytest.fixture
def two_models(installed: Installed, mirror: Mirror, wheels: dict, tmp_path: Path) -> Path:
    """Another project (another name, another image time) that locks the same model wheel and one more."""
    other = render(tmp_path / "other" / "service", project_name="Other Service", spacy_models_url=mirror.download_base)
    copy_build(installed.path, other)
    urls = other / "requirements-model.in.url"
    urls.write_text(urls.read_text() + mirror.add_download(wheels["md-3.8.0"]) + "\n")
    return other


def test_two_projects_share_the_model_layer(
    project: Path, two_models: Path, engine: str, base_image: str, images: list[str]
) -> None:
    """Another project (another name, another image time) that locks the same model wheel and one more gets the
    same layer for it (a dependency bump keeping it is test_docker_engine's and test_push's)."""
    below = len(layers(engine, base_image))
    image, other = unique("mine"), unique("other")
    images += [image, other]
    built = make(project, "docker", *settings(engine, base_image, image), env=FAST)
    assert "COPY in /opt/spacy-models/en_core_web_sm-3.8.0/ (a model layer)" in built.stdout, "make docker lists them"
    (model_layer,) = layers(engine, image)[below : below + 1]
    make(two_models, "docker", *settings(engine, base_image, other), "SOURCE_DATE_EPOCH=1700000000", env=FAST)
    theirs = layers(engine, other)
    # en_core_web_md sorts first: the shared model's layer sits on another model's, and is the same all the same
    assert theirs[below + 1] == model_layer, "another project got another layer for the same model wheel"
    assert theirs[below] not in layers(engine, image)

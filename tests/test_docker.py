"""Container images with the models baked in, built and run with a real engine (podman in CI).

These tests skip on a developer's machine without podman or docker, and fail
instead when CI=true: .ci/run installs podman, buildah, runc, debootstrap and uidmap.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Built, Installed, InstalledProjects
from tests.support.containers import ensure_base_image, remove_image
from tests.support.mirror import Mirror
from tests.support.project import copy_project, make
from tests.support.wheels import build_plain_wheel
from tests.test_package import LABEL, save_pipeline

pytestmark = pytest.mark.container
SENTENCE = "Apple is looking at buying U.K. startup for $1 billion"
TOKEN = "FAKE-IMAGE-BUILD-TOKEN-5e3a91"


def run(engine: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([engine, *args], input=stdin, capture_output=True, text=True)
    assert result.returncode == 0, f"{engine} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def layers(engine: str, image: str) -> list[str]:
    return run(engine, "image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout.strip().split(",")


def image_files(engine: str, image: str, work: Path) -> list[tuple[str, bytes]]:
    """Every file of every layer of the image (name and content), from `save`."""
    archive = work / "image.tar"
    run(engine, "save", "--output", str(archive), image)
    files = []
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member).read() if member.isfile() else b""
            files.append((member.name, data))
            if member.name.endswith(".tar") and data:
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for inner in layer.getmembers():
                        content = layer.extractfile(inner).read() if inner.isfile() else b""
                        files.append((f"{member.name}!{inner.name}", content))
    return files


def test_make_docker_builds_offline_and_loads_each_model(built: Built, engine: str) -> None:
    assert f"$ {engine} build --network=none --platform linux/amd64 --secret id=pip_env,src=<build secret>" in (
        built.result.stdout
    )
    assert "image: installing requirements.txt from build/wheels with uv, with no index" in built.result.output
    assert "loaded core_web_sm" in built.result.output


def test_a_cold_make_docker_lists_fetches_and_checks_each_model_once(built: Built) -> None:
    """make models runs once (it writes the manifest); lock, wheelhouse, sbom and the build read that manifest."""
    assert built.result.stdout.count("nlp-models models") == 1, built.result.stdout
    assert built.result.stdout.count("models: 1 model wheels in build/") == 1
    downloads = [r for r in built.requests if r.path.endswith(".whl")]
    assert len(downloads) == 1, f"the model was asked for {len(downloads)} times"


def test_the_image_runs_offline_as_a_fixed_non_root_user(built: Built, engine: str) -> None:
    out = run(engine, "run", "--rm", "--network=none", built.image, SENTENCE).stdout
    assert "en_core_web_sm: Apple (ORG), U.K. (GPE), $1 billion (MONEY)" in out
    piped = run(engine, "run", "--rm", "-i", "--network=none", built.image, stdin="Google hired Ada in Paris.").stdout
    assert "Google (ORG)" in piped and "Paris (GPE)" in piped
    assert run(engine, "run", "--rm", "--entrypoint", "id", built.image).stdout.startswith("uid=10001(app) gid=10001")
    environment = run(engine, "image", "inspect", "--format", "{{json .Config.Env}}", built.image).stdout
    assert "HF_HUB_OFFLINE=1" in environment and "TRANSFORMERS_OFFLINE=1" in environment


def test_no_wheel_and_no_env_file_is_in_any_layer(built: Built, engine: str, tmp_path: Path) -> None:
    names = [name for name, _ in image_files(engine, built.image, tmp_path)]
    debian_wheels = "usr/share/python-wheels/"  # the base image's own pip and setuptools
    assert not [n for n in names if n.endswith(".whl") and debian_wheels not in n], "a wheel is in a layer"
    assert not [n for n in names if "app/build" in n]
    assert not [n for n in names if re.search(r"(^|/)\.env$", n.split("!")[-1])]
    assert [n for n in names if n.endswith("app/src/my_nlp_project/nlp.py")]


def test_a_change_in_src_reuses_the_dependency_layers(built: Built, engine: str, installed: Installed) -> None:
    settings = [f"BASE_IMAGE={ensure_base_image(engine)}", f"IMAGE={built.image}", f"CONTAINER_ENGINE={engine}"]
    (built.project / "build" / "image" / "built.json").unlink()  # a build with the cache: its own view of it
    make(built.project, "docker", *settings)
    unchanged = make(built.project, "docker", *settings)
    assert f"docker: {built.image} is up to date" in unchanged.stdout and f"$ {engine} build" not in unchanged.stdout
    before = layers(engine, built.image)
    main = built.project / "src" / "my_nlp_project" / "__main__.py"
    main.write_text(main.read_text() + "\n# a change that must not reinstall anything\n")
    result = make(built.project, "docker", *settings)
    after = layers(engine, built.image)
    assert after[:-1] == before[:-1], "the dependency layers were rebuilt"
    assert after[-1] != before[-1]
    assert (
        "Using cache" in result.output and "image: installing requirements.txt from build/wheels" not in result.output
    )
    assert not re.search(r"nlp-models models|^models:", result.stdout, re.M), "no model step for src/"
    print(f"layers reused: {len(before) - 1} of {len(before)}")


@pytest.fixture
def private_index(mirror: Mirror, thin: Path, tmp_path: Path) -> Iterator[Mirror]:
    """A token-protected PEP 503 index that serves conftest's thin project's wheels and a private package."""
    files = {p.name: p for p in (thin / "build" / "wheels").glob("*.whl")}
    private = build_plain_wheel("acme_private", "1.0.0", tmp_path / "private")
    mirror.private_files = {**files, private.name: private}
    mirror.private_credentials = ("ci", TOKEN)
    yield mirror
    mirror.private_files, mirror.private_credentials = {}, ("", "")


def test_plain_build_after_make_models_with_a_build_secret(
    tmp_path: Path, thin: Path, private_index: Mirror, engine: str, base_image: str
) -> None:
    """`docker build .` with only the models in build/: the rest comes from a private index, whose
    token arrives as a build secret and is in no layer and not in the history. On conftest's thin project (one
    small model wheel): a plain build that loads a spaCy model is test_docker_engine's."""
    project = copy_project(thin, tmp_path / "proj")
    requirements = project / "requirements.in"
    requirements.write_text(requirements.read_text() + "acme-private==1.0.0\n")
    index = private_index.private_url(f"ci:{TOKEN}", "simple")
    (project / ".env").write_text(f"PIP_EXTRA_INDEX_URL={index}\n")
    make(project, "lock")
    assert "acme-private==1.0.0" in (project / "requirements.txt").read_text()
    subprocess.run(["rm", "-rf", str(project / "build" / "wheels")], check=True)

    secret = tmp_path / "pip_env"
    secret.write_text(f"PIP_INDEX_URL={index}\n")
    image = f"localhost/nlp-template-plain-{uuid.uuid4().hex[:8]}:latest"
    build = subprocess.run(
        [engine, "build", "--no-cache", "--network=host", "--secret", f"id=pip_env,src={secret}",
         "--build-arg", f"BASE_IMAGE={base_image}", "--tag", image, "."],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    try:
        assert build.returncode == 0, build.stdout + build.stderr
        assert (
            "no complete wheelhouse in build/: models from build/ with no index, the other packages from the index"
            in (build.stdout + build.stderr)
        )
        assert TOKEN not in build.stdout + build.stderr
        code = "import acme_private, en_thin_model; print(acme_private.__version__, en_thin_model.__version__)"
        out = run(engine, "run", "--rm", "--network=none", "--entrypoint", "python", image, "-c", code)
        assert out.stdout.split() == ["1.0.0", "1.0.0"]
        history = run(engine, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
        assert TOKEN not in history
        leaked = [name for name, data in image_files(engine, image, tmp_path) if TOKEN.encode() in data]
        assert leaked == [], f"the token is in {leaked}"
    finally:
        remove_image(engine, image)


def test_an_image_from_a_uv_lock_bakes_in_a_packaged_pipeline_and_shares_the_model_layer(
    tmp_path: Path, installed_projects: InstalledProjects, engine: str, base_image: str, built: Built
) -> None:
    """Another project (uv, another image time) that locks the same model wheel and a pipeline of its own: the
    model's layer is the one the pip-tools project's image has, though it sits on the pipeline's (en_acme_ner
    sorts first). A dependency bump keeping it is test_push's and test_docker_engine's."""
    project = copy_project(installed_projects.get("uv").path, tmp_path / "proj")
    save_pipeline(project / "pipelines" / "acme", "1.0.0", ["Acme"])
    image = f"localhost/nlp-template-uv-{uuid.uuid4().hex[:8]}:latest"
    try:
        make(
            project,
            "docker",
            f"BASE_IMAGE={base_image}",
            f"IMAGE={image}",
            f"CONTAINER_ENGINE={engine}",
            "INSTALLER=uv",
            "SOURCE_DATE_EPOCH=1700000000",
        )
        assert "en_acme_ner==1.0.0" in (project / "requirements.txt").read_text()
        below = len(layers(engine, base_image))
        theirs, mine = layers(engine, image), layers(engine, built.image)
        assert theirs[below + 1] == mine[below], "another project got another layer for the same model wheel"
        assert theirs[below] not in mine
        out = run(engine, "run", "--rm", "--network=none", image, SENTENCE).stdout
        assert "en_core_web_sm: Apple (ORG), U.K. (GPE), $1 billion (MONEY)" in out
        code = "import spacy; print(spacy.load('en_acme_ner')('Acme hired Ada').ents[0].label_)"
        own = run(engine, "run", "--rm", "--network=none", "--entrypoint", "python", image, "-c", code).stdout
        assert own.strip() == LABEL
    finally:
        remove_image(engine, image)

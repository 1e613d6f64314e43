"""make push to a real registry on loopback: Debian's docker-registry with TLS from a private CA and htpasswd.

The password reaches the engine through `login --password-stdin` only; a second
push after a dependency bump sends no model layer (the registry's log: the blob
is asked for with HEAD, answered 200, and never uploaded); a refused login is
one line naming the registry and the fix.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST
from tests.support.project import copy_project, make
from tests.support.registry import Registry, start_registry
from tests.test_docker import layers

pytestmark = pytest.mark.container
PASSWORD = "FAKE-REGISTRY-PASSWORD-41c9"
WRONG = "FAKE-WRONG-PASSWORD-77d0"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    found, process = start_registry(tmp_path_factory.mktemp("registry"), "ci", PASSWORD)
    yield found
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def pushing(tmp_path_factory: pytest.TempPathFactory, thin: Path, registry: Registry) -> Path:
    """conftest's thin project (one small model wheel, no spaCy): what a push sends is the same for any layer."""
    return copy_project(thin, tmp_path_factory.mktemp("push") / "proj")


@pytest.fixture(scope="module")
def target(registry: Registry, engine: str) -> Iterator[str]:
    image = f"{registry.address}/nlp/app:{uuid.uuid4().hex[:8]}"
    yield image
    subprocess.run([engine, "rmi", "--force", image], capture_output=True)
    subprocess.run([engine, "image", "prune", "--force"], capture_output=True)


def push(project: Path, engine: str, base: str, image: str, registry: Registry, password: str) -> object:
    (project / ".env").write_text(f"REGISTRY_USERNAME={registry.username}\nREGISTRY_PASSWORD={password}\n")
    settings = [f"BASE_IMAGE={base}", f"IMAGE={image}", f"CONTAINER_ENGINE={engine}",
                f"REGISTRY_CERT_DIR={registry.certs}"]  # fmt: skip
    return make(project, "push", *settings, env=FAST, check=False)


def test_a_second_push_after_a_dependency_bump_sends_no_model_layer(
    pushing: Path, registry: Registry, engine: str, base_image: str, target: str
) -> None:
    repository, tag = target.split("/", 1)[1].split(":")
    first = push(pushing, engine, base_image, target, registry, PASSWORD)
    assert first.returncode == 0, first.output
    assert PASSWORD not in first.output
    assert f"push: {target} is in {registry.address}" in first.stdout
    manifest = registry.manifest(repository, tag)
    below = len(layers(engine, base_image))
    model_blob = manifest["layers"][below]["digest"]

    requirements = pushing / "requirements.in"
    requirements.write_text(requirements.read_text() + "six==1.17.0\n")
    mark = registry.mark()
    second = push(pushing, engine, base_image, target, registry, PASSWORD)
    assert second.returncode == 0, second.output
    assert PASSWORD not in second.output
    answered = registry.requests(mark)
    uploads = [r.uri for r in answered if r.method == "PUT" and "/blobs/uploads/" in r.uri]
    assert uploads, "the bump's new layers were uploaded"
    assert not [uri for uri in uploads if model_blob in uri], "the model layer was uploaded again"
    assert any(r.method == "HEAD" and r.uri.endswith(f"/blobs/{model_blob}") and r.status == 200 for r in answered)
    after = registry.manifest(repository, tag)
    assert after["layers"][below]["digest"] == model_blob and after != manifest
    print(f"second push: {len(uploads)} blobs uploaded, {len(after['layers']) - len(uploads)} kept")
    login_files = [Path("/run/containers/0/auth.json"), Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"))]
    assert not any(path.is_file() and registry.address in path.read_text() for path in login_files)


def test_a_refused_login_is_one_line_without_the_password(
    pushing: Path, registry: Registry, engine: str, base_image: str, target: str
) -> None:
    refused = push(pushing, engine, base_image, target, registry, WRONG)
    assert refused.returncode != 0
    assert WRONG not in refused.output and "Traceback" not in refused.output
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert f"login to {registry.address} as ci was refused" in line
    assert "check REGISTRY_USERNAME and REGISTRY_PASSWORD in .env" in line

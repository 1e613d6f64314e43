"""Hugging Face Hub wheels (`<name>-any-py3-none-any.whl`): kept under a valid name, locked by hash, token to the Hub.

The mirror serves Hub-shaped URLs (/<org>/<name>/resolve/<revision>/<file>) on
its main server, which stands for HF_ENDPOINT, and redirects them to a "CDN" on
another origin that refuses any request carrying a token, as the Hub's does.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST
from tests.support.mirror import Mirror
from tests.support.project import copy_project, make, venv_python
from tests.support.wheels import TinyModel, build_tiny

HUB_MODEL = TinyModel("en_acme_hub", "1.2.0")
HUB_NAME = "en_acme_hub-any-py3-none-any.whl"
STORED = "en_acme_hub-1.2.0-py3-none-any.whl"
TOKEN = "hf_SentinelToken4242"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_wheel() -> Path:
    return build_tiny(HUB_MODEL)


@pytest.fixture
def private_hub(mirror: Mirror) -> Iterator[Mirror]:
    """The Hub route wants `Bearer TOKEN` while the test runs."""
    mirror.hub_token = TOKEN
    try:
        yield mirror
    finally:
        mirror.hub_token = None


def hub_project(tmp_path: Path, rendered: Path, mirror: Mirror, url: str, token: str | None) -> Path:
    project = copy_project(rendered, tmp_path / "proj")
    (project / "requirements-model.in.url").write_text(f"# a pipeline from the Hub\n{url}\n")
    env_lines = [f"HF_ENDPOINT={mirror.url}"] + ([f"HF_TOKEN={token}"] if token else [])
    (project / ".env").write_text("\n".join(env_lines) + "\n")
    return project


def test_a_hub_wheel_is_stored_under_its_version_locked_by_hash_and_loaded(
    tmp_path: Path, rendered: Path, private_hub: Mirror, hub_wheel: Path, fresh_cache: dict
) -> None:
    url = private_hub.add_hub_file("acme", "en_acme_hub", "main", hub_wheel, served_name=HUB_NAME)
    project = hub_project(tmp_path, rendered, private_hub, url, TOKEN)

    mark = private_hub.mark()
    result = make(project, "install", env={**FAST, **fresh_cache})
    stored = project / "build" / STORED
    assert stored.is_file() and not (project / "build" / HUB_NAME).exists()
    sha256 = hashlib.sha256(stored.read_bytes()).hexdigest()
    lock = (project / "requirements.txt").read_text()
    assert lock[lock.index("# Models:") :].splitlines()[1:3] == ["en_acme_hub==1.2.0 \\", f"    --hash=sha256:{sha256}"]
    assert "en_acme_hub==1.2.0" in (project / "requirements-model.in").read_text().splitlines()
    label = venv_python(project, "import spacy; print(spacy.load('en_acme_hub')('Acme').ents[0].label_)")
    assert label.strip() == HUB_MODEL.marker

    assert "moving revision 'main'" in result.stdout, "a branch revision is not reproducible: say so"
    assert TOKEN not in result.output
    hub = [r for r in private_hub.requests_to(private_hub.url, mark) if "/resolve/" in r.path]
    cdn = private_hub.requests_to(private_hub.cdn_url, mark)
    assert hub and all(r.authorization == f"Bearer {TOKEN}" for r in hub), "the Hub gets the token"
    assert cdn and all(r.authorization is None for r in cdn), "the CDN, another origin, never does"

    mark = private_hub.mark()
    again = make(project, "models", env={**FAST, **fresh_cache})
    assert private_hub.since(mark) == [], "a second run downloads nothing"
    assert TOKEN not in again.output


def test_a_commit_revision_gets_no_note_and_a_missing_token_is_named(
    tmp_path: Path, rendered: Path, private_hub: Mirror, hub_wheel: Path, fresh_cache: dict
) -> None:
    url = private_hub.add_hub_file("acme", "en_acme_hub", COMMIT, hub_wheel, served_name=HUB_NAME)
    project = hub_project(tmp_path, rendered, private_hub, url, token=None)

    refused = make(project, "models", env=fresh_cache, check=False)
    assert refused.returncode != 0
    assert "HF_TOKEN" in refused.stderr and "Traceback" not in refused.output
    assert not list((project / "build").glob("*.whl"))

    (project / ".env").write_text(f"HF_ENDPOINT={private_hub.url}\nHF_TOKEN={TOKEN}\n")
    result = make(project, "models", env=fresh_cache)
    assert "moving revision" not in result.stdout
    assert (project / "build" / STORED).is_file()
    assert TOKEN not in result.output


def test_a_moved_branch_serving_other_bytes_for_the_locked_version_is_refused(
    tmp_path: Path, rendered: Path, mirror: Mirror, hub_wheel: Path, fresh_cache: dict
) -> None:
    url = mirror.add_hub_file("acme", "en_acme_moving", "main", hub_wheel, served_name=HUB_NAME)
    project = hub_project(tmp_path, rendered, mirror, url, token=None)
    make(project, "lock", env={**FAST, **fresh_cache})
    lock = (project / "requirements.txt").read_text()

    impostor = tmp_path / "impostor" / STORED
    impostor.parent.mkdir()
    shutil.copyfile(hub_wheel, impostor)
    with zipfile.ZipFile(impostor, "a") as archive:
        archive.writestr("en_acme_hub/extra.txt", "the branch moved: same version, other bytes\n")
    mirror.add_hub_file("acme", "en_acme_moving", "main", impostor, served_name=HUB_NAME)

    clone = copy_project(project, tmp_path / "clone")
    for wheel in (clone / "build").glob("*.whl"):
        wheel.unlink()
    refused = make(clone, "install", env={**FAST, "NLP_MODELS_CACHE": str(tmp_path / "other-cache")}, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.output
    assert "does not match requirements.txt, which locked en-acme-hub==1.2.0" in refused.stderr
    assert "make upgrade" in refused.stderr
    assert not list((clone / "build").glob("*.whl")), "nothing refused is kept"
    assert (clone / "requirements.txt").read_text() == lock

"""make publish to a real team index (pypiserver on 127.0.0.1, htpasswd), and a second project installing from it.

pypiserver runs as it ships: uploads need the password, reads do not, and a
project it does not hold is redirected to its fallback index (PyPI by default;
here the mirror's index of squatters), which must never count as the team's
file. `--overwrite` lets the test re-upload an impostor of a published version,
which the second project's lock must refuse.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from passlib.apache import HtpasswdFile

from tests.conftest import FAST
from tests.support.mirror import Mirror
from tests.support.project import copy_project, make, venv_python
from tests.support.wheels import TinyModel, build_tiny

USER, PASSWORD = "team", "Sentinel-Pass-5150"
SM_WHEEL = "en_core_web_sm-3.8.0-py3-none-any.whl"


@dataclass
class TeamIndex:
    url: str  # upload URL (TWINE_REPOSITORY_URL)
    packages: Path

    @property
    def simple(self) -> str:
        return f"{self.url}/simple"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pypi-server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"pypi-server did not answer {url} within {seconds} s")


@pytest.fixture(scope="module")
def team_index(tmp_path_factory: pytest.TempPathFactory, mirror: Mirror) -> Iterator[TeamIndex]:
    root = tmp_path_factory.mktemp("team-index")
    packages = root / "packages"
    packages.mkdir()
    passwords = HtpasswdFile(str(root / "htpasswd"), new=True)
    passwords.set_password(USER, PASSWORD)
    passwords.save()
    port = free_port()
    server = Path(sys.executable).with_name("pypi-server")
    command = [str(server), "run", "-p", str(port), "-i", "127.0.0.1", "-P", str(root / "htpasswd"),
               "-a", "update", "--overwrite", "--fallback-url", f"{mirror.index_url}/", str(packages)]  # fmt: skip
    with (root / "server.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        index = TeamIndex(f"http://127.0.0.1:{port}", packages)
        wait_until_up(f"{index.simple}/", process)
        yield index
    finally:
        process.terminate()
        process.wait(timeout=10)


def twine_env(index: TeamIndex) -> str:
    return f"TWINE_REPOSITORY_URL={index.url}/\nTWINE_USERNAME={USER}\nTWINE_PASSWORD={PASSWORD}\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory, rendered: Path, team_index: TeamIndex) -> Path:
    """A project whose .env names the team index; its model is the mirror's en_core_web_sm 3.8.0."""
    project = copy_project(rendered, tmp_path_factory.mktemp("publisher") / "proj")
    (project / ".env").write_text(twine_env(team_index))
    return project


@pytest.fixture(scope="module")
def published(publisher: Path, team_index: TeamIndex) -> str:
    """make publish's output, the first time."""
    return make(publisher, "publish", env=FAST).output


def test_publish_uploads_each_model_once_and_never_shows_the_password(
    publisher: Path, published: str, team_index: TeamIndex
) -> None:
    assert "publish: 1 uploaded, 0 already there:" in published
    assert sha256(team_index.packages / SM_WHEEL) == sha256(publisher / "build" / SM_WHEEL)
    assert PASSWORD not in published

    again = make(publisher, "publish", env=FAST)
    assert f"publish: {SM_WHEEL} is already on the index, same sha256; skipped" in again.stdout
    assert "publish: 0 uploaded, 1 already there:" in again.stdout
    assert "uploading" not in again.stdout and PASSWORD not in again.output


def test_missing_credentials_are_named_not_shown(rendered: Path, tmp_path: Path) -> None:
    project = copy_project(rendered, tmp_path / "proj")
    (project / ".env").write_text(f"TWINE_PASSWORD={PASSWORD}\n")
    result = make(project, "publish", env=FAST, check=False)
    assert result.returncode != 0 and "Traceback" not in result.output
    assert "TWINE_REPOSITORY_URL, TWINE_USERNAME are not set" in result.stderr
    assert PASSWORD not in result.output


def test_a_second_project_installs_from_the_index_by_hash_and_refuses_an_impostor(
    publisher: Path, published: str, team_index: TeamIndex, rendered: Path, tmp_path: Path, mirror: Mirror
) -> None:
    mirror.add_index_file("en-acme-absent", build_tiny(TinyModel("en_acme_absent", "1.0.0")))
    consumer = copy_project(rendered, tmp_path / "consumer")
    (consumer / "requirements-model.in.url").write_text("# every model comes from the team index\n")
    (consumer / "requirements-model.in.range").write_text("en_core_web_sm>=3.8,<3.9\nen_acme_absent>=1.0\n")
    (consumer / ".env").write_text(f"SPACY_MODELS_INDEX={team_index.simple}\n")
    refused = make(consumer, "install", env=FAST, check=False)
    assert "the team index sends en-acme-absent to 127.0.0.1:" in refused.stdout
    assert "another host: left out" in refused.stdout
    assert "en-acme-absent is not on the links page" in refused.stderr, "the fallback's page is never taken"

    (consumer / "requirements-model.in.range").write_text("en_core_web_sm>=3.8,<3.9\n")
    make(consumer, "install", env={**FAST, "NLP_MODELS_CACHE": str(tmp_path / "consumer-cache")})
    lock = (consumer / "requirements.txt").read_text()
    assert f"en_core_web_sm==3.8.0 \\\n    --hash=sha256:{sha256(publisher / 'build' / SM_WHEEL)}\n" in lock
    assert venv_python(consumer, "import en_core_web_sm; print(en_core_web_sm.__version__)").strip() == "3.8.0"
    subprocess.run(["git", "add", "-A"], cwd=consumer, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "models from the team index"], cwd=consumer, check=True)

    impostor = build_tiny(TinyModel("en_core_web_sm", "3.8.0"))  # same name and version, other bytes
    twine = Path(os.environ["TOOLS"]) / "envs" / "twine" / "bin" / "python"
    upload_env = {**os.environ, "TWINE_REPOSITORY_URL": f"{team_index.url}/", "TWINE_USERNAME": USER,
                  "TWINE_PASSWORD": PASSWORD, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}  # fmt: skip
    subprocess.run([str(twine), "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar", str(impostor)],
                   env=upload_env, check=True, capture_output=True)  # fmt: skip
    assert sha256(team_index.packages / SM_WHEEL) == sha256(impostor)

    clashed = make(publisher, "publish", env=FAST, check=False)
    assert clashed.returncode != 0 and PASSWORD not in clashed.output
    assert "already holds en_core_web_sm==3.8.0" in clashed.stderr and "with other content" in clashed.stderr

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(consumer), str(clone)], check=True)
    (clone / ".env").write_text(f"SPACY_MODELS_INDEX={team_index.simple}\n")
    result = make(clone, "install", env={**FAST, "NLP_MODELS_CACHE": str(tmp_path / "clone-cache")}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.output
    assert "it was replaced after it was locked, so nothing was downloaded" in result.stderr
    assert "make upgrade" in result.stderr
    assert not list((clone / "build").glob("*.whl")) and not (clone / ".venv").exists()
    assert (clone / "requirements.txt").read_text() == lock

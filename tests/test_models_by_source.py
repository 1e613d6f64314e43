"""A model is whatever the project lists, whatever its name: never taken from an index by name.

The defect this guards against: a model named outside spaCy's pattern
(`en_acme_ner`, scispaCy's `en_ner_bc5cdr_md`, a company's `de_contracts_lg`)
went to the resolver by name, and an index serving the same name won. Here an
index squats every name (a 999.9.9 and a same-version impostor), configured
the way each installer reads it, and only the build/ files may be locked.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST, Installed
from tests.support.mirror import Mirror, MirrorServer
from tests.support.project import copy_project, make, venv_python
from tests.support.wheels import TinyModel, build_tiny

OWN_MODELS = {
    "acme-1.0.0": TinyModel("en_acme_ner", "1.0.0"),
    "acme-1.1.0": TinyModel("en_acme_ner", "1.1.0"),
    "bc5cdr-0.5.4": TinyModel("en_ner_bc5cdr_md", "0.5.4"),
    "contracts-1.2.0": TinyModel("de_contracts_lg", "1.2.0"),
}
RANGES = "en_acme_ner>=1.0,<2\nen_ner_bc5cdr_md~=0.5.0\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def own_wheels() -> dict[str, Path]:
    return {key: build_tiny(model) for key, model in OWN_MODELS.items()}


@pytest.fixture(scope="module")
def releases(own_wheels: dict[str, Path]) -> Iterator[Mirror]:
    """The team's releases, GitHub-shaped: a releases API and downloads."""
    mirror = Mirror()
    with MirrorServer(mirror):
        for wheel in own_wheels.values():
            mirror.add_release(wheel)
        yield mirror


@pytest.fixture(scope="module")
def squatter() -> Iterator[Mirror]:
    """An index that serves every model name: 999.9.9, and the same versions with other content."""
    index = Mirror()
    with MirrorServer(index):
        for model in OWN_MODELS.values():
            for impostor in (TinyModel(model.name, "999.9.9"), TinyModel(model.name, model.version, requires=("six",))):
                index.add_index_file(model.name.replace("_", "-"), build_tiny(impostor))
        yield index


def configure(project: Path, releases: Mirror, own_wheels: dict[str, Path], index_variable: str, index: str) -> None:
    contracts = own_wheels["contracts-1.2.0"]
    urls = project / "requirements-model.in.url"
    urls.write_text(urls.read_text() + f"{releases.download_base}/de_contracts_lg-1.2.0/{contracts.name}\n")
    (project / "requirements-model.in.range").write_text(RANGES)
    (project / ".env").write_text(f"{index_variable}={index}\nSPACY_MODELS_API={releases.api_url}\n")


@pytest.mark.parametrize(
    ("installer", "index_variable"),
    [("pip-tools", "PIP_EXTRA_INDEX_URL"), ("uv", "PIP_EXTRA_INDEX_URL"), ("uv", "UV_EXTRA_INDEX_URL")],
    ids=["pip-tools", "uv-pip-variables", "uv-own-variables"],
)
def test_no_index_can_shadow_a_model_whatever_its_name(
    tmp_path: Path,
    installed: Installed,
    releases: Mirror,
    squatter: Mirror,
    own_wheels: dict[str, Path],
    installer: str,
    index_variable: str,
) -> None:
    project = copy_project(installed.path, tmp_path / "proj")
    configure(project, releases, own_wheels, index_variable, squatter.index_url)
    make(project, "install", f"INSTALLER={installer}")

    lock = (project / "requirements.txt").read_text()
    models = lock[lock.index("# Models:") :]
    for key in ("acme-1.1.0", "bc5cdr-0.5.4", "contracts-1.2.0"):
        model, wheel = OWN_MODELS[key], own_wheels[key]
        block = re.search(rf"^{model.name}=={re.escape(model.version)} \\\n    --hash=sha256:(\w+)\n", models, re.M)
        assert block, f"{model.name} is not locked to its build/ file with a single hash:\n{models}"
        assert block.group(1) == sha256(wheel) == sha256(project / "build" / wheel.name)
    assert "999.9.9" not in lock and "\nsix==" not in lock
    assert not [r for r in squatter.since(0) if r.path.startswith("/files/")], "no squatted file was fetched"
    code = (
        "import importlib.metadata as m, spacy;"
        "print(*[spacy.load(n)('Acme').ents[0].label_ for n in ('en_acme_ner', 'en_ner_bc5cdr_md', 'de_contracts_lg')],"
        "any('six' in r for n in ('en_acme_ner', 'de_contracts_lg') for r in m.requires(n) or ()))"
    )
    labels = venv_python(project, code).split()
    assert labels == [OWN_MODELS[k].marker for k in ("acme-1.1.0", "bc5cdr-0.5.4", "contracts-1.2.0")] + ["False"]


def test_a_model_named_in_requirements_in_is_refused_with_where_it_belongs(
    project: Path, releases: Mirror, own_wheels: dict[str, Path], squatter: Mirror
) -> None:
    configure(project, releases, own_wheels, "PIP_EXTRA_INDEX_URL", squatter.index_url)
    requirements = project / "requirements.in"
    requirements.write_text(requirements.read_text() + "en-acme-ner>=1.0\n")
    result = make(project, "install", env=FAST, check=False)
    assert result.returncode != 0
    line = len(requirements.read_text().splitlines())
    assert f"requirements.in:{line} names en-acme-ner, a model of this project" in result.stderr
    assert "requirements-model.in.url" in result.stderr and "requirements-model.in.range" in result.stderr
    assert not [r for r in squatter.since(0) if r.path.startswith("/files/")]


def test_a_wheel_put_in_build_is_a_model_whatever_requirements_in_says(project: Path, own_wheels: dict) -> None:
    shutil.copyfile(own_wheels["contracts-1.2.0"], project / "build" / own_wheels["contracts-1.2.0"].name)
    requirements = project / "requirements.in"
    requirements.write_text(requirements.read_text() + "de_contracts_lg==1.2.0\n")
    result = make(project, "lock", env=FAST, check=False)
    assert result.returncode != 0 and "names de-contracts-lg, a model of this project" in result.stderr
    assert "./build/<file>.whl" in result.stderr

    requirements.write_text(requirements.read_text().replace("de_contracts_lg==1.2.0\n", ""))
    urls = project / "requirements-model.in.url"
    urls.write_text(urls.read_text() + f"./build/{own_wheels['contracts-1.2.0'].name}\n")
    make(project, "install", env=FAST)
    assert "de_contracts_lg==1.2.0 \\\n    --hash=sha256:" in (project / "requirements.txt").read_text()


def test_pre_and_post_releases_resolve_and_lock(project: Path, tmp_path: Path) -> None:
    rc, post = TinyModel("en_core_web_md", "3.8.0rc1"), TinyModel("en_core_web_lg", "3.8.0.post1")
    mirror = Mirror()
    with MirrorServer(mirror):
        for model in (rc, post):
            mirror.add_release(build_tiny(model))
        (project / "requirements-model.in.range").write_text("en_core_web_md>=3.8.0rc1,<3.9\n")
        urls = project / "requirements-model.in.url"
        urls.write_text(urls.read_text() + f"{mirror.download_base}/en_core_web_lg-3.8.0.post1/{post.filename}\n")
        make(project, "install", f"SPACY_MODELS_API={mirror.api_url}", env=FAST)
    lock = (project / "requirements.txt").read_text()
    assert "en_core_web_md==3.8.0rc1 \\" in lock and "en_core_web_lg==3.8.0.post1 \\" in lock
    assert (project / "requirements-model.in").read_text().splitlines()[2:] == [
        "en_core_web_lg==3.8.0.post1",
        "en_core_web_md==3.8.0rc1",
        "en_core_web_sm==3.8.0",
    ]
    code = "import spacy; print(spacy.load('en_core_web_md')('Acme').ents[0].label_)"
    assert venv_python(project, code).strip() == rc.marker

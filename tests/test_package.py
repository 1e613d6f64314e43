"""make package: a pipeline under pipelines/ becomes a model wheel in build/, locked by its hash, reproducibly.

One project gets a tiny trained-and-saved pipeline (spacy.blank + entity_ruler,
nlp.to_disk, as `spacy train` leaves model-best) and is installed once; tests
copy or clone it. Everything runs for real: make, spacy package, build, uv.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FAST
from tests.support.mirror import Mirror
from tests.support.project import MakeResult, copy_project, make, venv_python
from tests.support.wheels import TinyModel, build_tiny

WHEEL = "en_acme_ner-1.0.0-py3-none-any.whl"
SM_WHEEL = "en_core_web_sm-3.8.0-py3-none-any.whl"
LABEL = "ORG_OWN"


def save_pipeline(directory: Path, version: str, patterns: list[str]) -> None:
    """What spacy train leaves in model-best/: config.cfg, meta.json and the components, via nlp.to_disk."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": LABEL, "pattern": pattern} for pattern in patterns])
    nlp.meta.update(name="acme_ner", version=version, spacy_version=">=3.8.0,<3.9.0")
    nlp.to_disk(directory)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_block(project: Path) -> list[str]:
    lock = (project / "requirements.txt").read_text()
    return lock[lock.index("# Models:") :].splitlines()[1:]


def entities(project: Path, text: str) -> list[tuple[str, str]]:
    code = f"import spacy; print([(e.text, e.label_) for e in spacy.load('en_acme_ner')({text!r}).ents])"
    return eval(venv_python(project, code))  # noqa: S307 - our own printed list


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)


@dataclass
class Packaged:
    path: Path
    result: MakeResult


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory, rendered: Path) -> Packaged:
    """A project with pipelines/acme (en_acme_ner 1.0.0), after make install, committed to git."""
    project = copy_project(rendered, tmp_path_factory.mktemp("packaged") / "proj")
    save_pipeline(project / "pipelines" / "acme", "1.0.0", ["Acme"])
    cache = {"NLP_MODELS_CACHE": str(tmp_path_factory.mktemp("package-cache"))}
    result = make(project, "install", env={**FAST, **cache})
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "a project with its own pipeline")
    return Packaged(project, result)


def test_make_install_packages_locks_and_loads_the_pipeline(packaged: Packaged) -> None:
    project, wheel = packaged.path, packaged.path / "build" / WHEEL
    assert f"package: pipelines/acme -> build/{WHEEL}" in packaged.result.stdout
    assert "en_acme_ner==1.0.0" in (project / "requirements-model.in").read_text().splitlines()
    assert model_block(project)[:3] == [
        "en_acme_ner==1.0.0 \\",
        f"    --hash=sha256:{sha256(wheel)}",
        "    # via -r requirements-model.in",
    ], "the packaged model is locked with the hash of its build/ file only"
    assert entities(project, "Acme hires") == [("Acme", LABEL)]
    assert sha256(project / "build" / "wheels" / WHEEL) == sha256(wheel), "the image's wheelhouse holds it too"

    before = wheel.stat().st_mtime_ns
    assert make(project, "-q", "install", env=FAST, check=False).returncode == 0, "a warm install has nothing to do"
    again = make(project, "package")
    assert f"package: pipelines/acme is unchanged: build/{WHEEL}" in again.stdout
    assert wheel.stat().st_mtime_ns == before


def test_a_fresh_clone_packages_the_very_bytes_the_lock_pins(packaged: Packaged, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(packaged.path), str(clone)], check=True)
    for path in (clone / "pipelines" / "acme").rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)  # another umask, and new mtimes: the same wheel
    lock = (clone / "requirements.txt").read_text()

    result = make(clone, "install", env={**FAST, "NLP_MODELS_CACHE": str(tmp_path / "cache")})
    assert sha256(clone / "build" / WHEEL) == sha256(packaged.path / "build" / WHEEL)
    assert "requirements.txt already matches its inputs" in result.stdout, "no re-resolution"
    assert (clone / "requirements.txt").read_text() == lock
    assert entities(clone, "Acme") == [("Acme", LABEL)]

    (clone / "build" / "pipelines" / "acme.json").unlink()  # what a clone that changed the pipeline has
    save_pipeline(clone / "pipelines" / "acme", "1.0.0", ["Acme", "Initech"])
    refused = make(clone, "package", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.output
    assert "requirements.txt locked en_acme_ner==1.0.0" in refused.stderr
    assert 'bump "version" in pipelines/acme/meta.json' in refused.stderr
    assert sha256(clone / "build" / WHEEL) == sha256(packaged.path / "build" / WHEEL), "the locked file stays"


def test_a_changed_pipeline_needs_a_new_version_and_no_index_can_serve_it(
    packaged: Packaged, tmp_path: Path, mirror: Mirror
) -> None:
    project = copy_project(packaged.path, tmp_path / "proj")
    env = {**FAST, "NLP_MODELS_CACHE": str(tmp_path / "cache")}
    lock = (project / "requirements.txt").read_text()
    save_pipeline(project / "pipelines" / "acme", "1.0.0", ["Acme", "Globex"])
    refused = make(project, "install", env=env, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.output
    assert 'bump "version" in pipelines/acme/meta.json (e.g. to 1.0.1)' in refused.stderr
    assert (project / "requirements.txt").read_text() == lock

    for version in ("1.0.1", "999.9.9"):  # squatters of the same name, on an index pip and uv are given
        mirror.add_index_file("en-acme-ner", build_tiny(TinyModel("en_acme_ner", version)))
    with (project / ".env").open("a") as env_file:
        env_file.write(f"PIP_EXTRA_INDEX_URL={mirror.index_url}\n")
    meta = json.loads((project / "pipelines" / "acme" / "meta.json").read_text())
    (project / "pipelines" / "acme" / "meta.json").write_text(json.dumps({**meta, "version": "1.0.1"}))
    mark = mirror.mark()
    result = make(project, "install", env=env)
    bumped = project / "build" / "en_acme_ner-1.0.1-py3-none-any.whl"
    assert "package: pipelines/acme -> build/en_acme_ner-1.0.1-py3-none-any.whl" in result.stdout
    assert model_block(project)[:2] == ["en_acme_ner==1.0.1 \\", f"    --hash=sha256:{sha256(bumped)}"]
    asked = [r.path for r in mirror.since(mark) if r.path.startswith("/simple/")]
    assert asked, "the resolver did read the squatted index (for the other packages)"
    assert not [path for path in asked if "acme" in path], "but never asked it for the model"
    assert entities(project, "Acme and Globex") == [("Acme", LABEL), ("Globex", LABEL)]


def test_a_changed_packaged_wheel_is_rebuilt_by_the_command_the_error_names(packaged: Packaged, tmp_path: Path) -> None:
    project = copy_project(packaged.path, tmp_path / "proj")
    env = {**FAST, "NLP_MODELS_CACHE": str(tmp_path / "cache")}
    wheel = project / "build" / WHEEL
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.unlink()  # its own inode: the fixture's hard-linked file stays as it was
    wheel.write_bytes(bytes(data))
    refused = make(project, "install", env=env, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.output
    assert f"build/{WHEEL} is missing or changed since make package built it: run make package" in refused.stderr

    make(project, "package", env=env)
    make(project, "install", env=env)
    assert sha256(wheel) == sha256(packaged.path / "build" / WHEEL)
    assert entities(project, "Acme") == [("Acme", LABEL)]


def test_a_meta_json_without_a_version_is_named(rendered: Path, tmp_path: Path) -> None:
    project = copy_project(rendered, tmp_path / "proj")
    pipeline = project / "pipelines" / "draft"
    pipeline.mkdir(parents=True)
    (pipeline / "config.cfg").write_text('[nlp]\nlang = "en"\n')
    (pipeline / "meta.json").write_text(json.dumps({"lang": "en", "name": "draft"}))
    result = make(project, "package", check=False)
    assert result.returncode != 0 and "Traceback" not in result.output
    assert "pipelines/draft/meta.json has no version" in result.stderr
    assert not (project / "build" / "pipelines" / ".packaged").exists()
    assert not list((project / "build").glob("*.whl"))


def test_a_bump_relocked_with_pip_tools_shows_no_resolver_chatter_and_prune_drops_the_old_wheel(
    packaged: Packaged, tmp_path: Path
) -> None:
    project = copy_project(packaged.path, tmp_path / "proj")
    meta = json.loads((project / "pipelines" / "acme" / "meta.json").read_text())
    save_pipeline(project / "pipelines" / "acme", "1.0.1", ["Acme", "Hooli"])
    (project / "pipelines" / "acme" / "meta.json").write_text(json.dumps({**meta, "version": "1.0.1"}))
    make(project, "package")
    result = make(project, "lock", "INSTALLER=pip-tools", env={"NLP_MODELS_CACHE": str(tmp_path / "cache")})
    assert "en_acme_ner: 1.0.0 -> 1.0.1" in result.stdout
    assert "ERROR" not in result.output and "Discarding" not in result.output, "backtracking is not an error"
    old, new = project / "build" / WHEEL, project / "build" / "en_acme_ner-1.0.1-py3-none-any.whl"
    assert old.exists() and new.exists()
    pruned = make(project, "prune", env=FAST)
    assert f"prune: removed build/{WHEEL} (requirements.txt does not name it)" in pruned.stdout
    assert not old.exists() and new.exists() and (project / "build" / SM_WHEEL).exists()

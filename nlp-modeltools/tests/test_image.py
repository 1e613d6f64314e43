"""ship/image.py: a model layer's build context (fixed modes and times), the build's epoch, its inputs' digest."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import ZIP_EPOCH, HashCache
from nlp_modeltools.core.platforms import ImageTarget
from nlp_modeltools.ship.engine import Engine
from nlp_modeltools.ship.image import ImageBuild, build_inputs, model_directory, source_date_epoch, unpack

WITHIN = "opt/spacy-models/en_a-1.0.0"


@pytest.fixture
def wheel(tmp_path: Path, make_wheel) -> Path:
    files = {"en_a/en_a-1.0.0/config.cfg": "[nlp]\n", "en_a/en_a-1.0.0/ner/model": b"\0weights"}
    return make_wheel(tmp_path / "build", "en_a", "1.0.0", files=files)


def test_a_model_layer_s_context_is_the_wheel_as_installed_with_fixed_modes_and_times(
    tmp_path: Path, wheel: Path
) -> None:
    before = os.umask(0o077)
    try:
        context = unpack(wheel, tmp_path / "image" / "models" / "abc", WITHIN)
    finally:
        os.umask(before)
    assert context == tmp_path / "image" / "models" / "abc" and not (context.parent / "abc.partial").exists()
    found = {str(p.relative_to(context)): p for p in [context, *context.rglob("*")]}
    assert set(found) == {".", "opt", "opt/spacy-models", WITHIN, f"{WITHIN}/en_a", f"{WITHIN}/en_a/__init__.py",
                          f"{WITHIN}/en_a/en_a-1.0.0", f"{WITHIN}/en_a/en_a-1.0.0/config.cfg",
                          f"{WITHIN}/en_a/en_a-1.0.0/ner", f"{WITHIN}/en_a/en_a-1.0.0/ner/model",
                          f"{WITHIN}/en_a-1.0.0.dist-info", f"{WITHIN}/en_a-1.0.0.dist-info/METADATA",
                          f"{WITHIN}/en_a-1.0.0.dist-info/WHEEL", f"{WITHIN}/en_a-1.0.0.dist-info/RECORD"}  # fmt: skip
    for name, path in found.items():
        info = path.lstat()
        assert stat.S_IMODE(info.st_mode) == (0o755 if path.is_dir() else 0o644), name
        assert info.st_mtime == ZIP_EPOCH, name
    assert (context / WITHIN / "en_a" / "en_a-1.0.0" / "ner" / "model").read_bytes() == b"\0weights"


def test_a_context_already_laid_out_is_used_as_it_is(tmp_path: Path, wheel: Path) -> None:
    context = unpack(wheel, tmp_path / "ctx", WITHIN)
    marker = context / WITHIN / "kept"
    marker.write_text("")
    assert unpack(wheel, tmp_path / "ctx", WITHIN) == context and marker.exists()


def test_a_context_of_an_older_layout_is_made_again(tmp_path: Path, wheel: Path) -> None:
    (tmp_path / "ctx" / "en_a").mkdir(parents=True)  # the wheel's files at the top, as an older engine laid them
    context = unpack(wheel, tmp_path / "ctx", WITHIN)
    assert sorted(p.name for p in context.iterdir()) == ["opt"]


def test_a_wheel_with_a_data_directory_is_refused(tmp_path: Path, make_wheel) -> None:
    wheel = make_wheel(tmp_path, "en_a", "1.0.0", files={"en_a-1.0.0.data/scripts/run": "#!/bin/sh\n"})
    with pytest.raises(UserError) as refused:
        unpack(wheel, tmp_path / "ctx", WITHIN)
    assert str(refused.value) == (
        "en_a-1.0.0-py3-none-any.whl has a .data directory: package the model with spacy package, then make models"
    )
    assert not (tmp_path / "ctx").exists()


def test_a_model_s_directory_is_its_name_and_version() -> None:
    assert model_directory(Path("build/en_core_web_sm-3.8.0-py3-none-any.whl")) == "en_core_web_sm-3.8.0"


def git(root: Path, *args: str, date: str = "") -> None:
    env = {**os.environ, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date} if date else None
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   check=True, capture_output=True, env=env)  # fmt: skip


def test_the_epoch_is_the_given_one_else_the_lock_s_commit_time_else_1980(tmp_path: Path) -> None:
    assert source_date_epoch(tmp_path, "requirements.txt", "") == ZIP_EPOCH, "not a git repository"
    git(tmp_path, "init", "-q")
    (tmp_path / "requirements.txt").write_text("a==1\n")
    assert source_date_epoch(tmp_path, "requirements.txt", "") == ZIP_EPOCH, "not committed"
    git(tmp_path, "add", "requirements.txt")
    git(tmp_path, "commit", "-q", "-m", "lock", date="@1700000000 +0000")
    (tmp_path / "later.txt").write_text("")
    git(tmp_path, "add", "later.txt")
    git(tmp_path, "commit", "-q", "-m", "later", date="@1800000000 +0000")
    assert source_date_epoch(tmp_path, "requirements.txt", "") == 1700000000, "the lock's commit, not the last one"
    assert source_date_epoch(tmp_path, "requirements.txt", "1600000000") == 1600000000


def test_an_epoch_that_is_not_a_number_names_how_to_write_it(tmp_path: Path) -> None:
    with pytest.raises(UserError) as refused:
        source_date_epoch(tmp_path, "requirements.txt", "2023-11-14")
    assert str(refused.value) == (
        "SOURCE_DATE_EPOCH=2023-11-14 is not a number of seconds since 1970: set it like 1700000000"
    )


def test_an_image_s_inputs_digest_changes_with_what_it_is_built_from(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for name, text in (("Dockerfile", "FROM x\n"), ("src/app/__init__.py", ""), ("requirements.txt", "a==1\n"),
                       ("build/wheels/.complete", "sha256:x\n"), ("build/sbom.cdx.json", "{}")):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    spec = ImageBuild(root, "acme:1", "python:3.11-slim", ImageTarget("linux/amd64", "3.11", "2.28"),
                      root / "requirements.txt", root / "build" / "wheels", root / "build" / "sbom.cdx.json",
                      ZIP_EPOCH, None)  # fmt: skip
    engine = Engine("docker", "docker", {}, (26, 1), "classic", True)
    hashes = HashCache(tmp_path / "cache.json")
    digest = build_inputs(spec, engine, hashes)
    assert build_inputs(spec, engine, hashes) == digest
    (root / "src" / "app" / "__pycache__").mkdir()
    (root / "src" / "app" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert build_inputs(spec, engine, hashes) == digest, "bytecode is not an input"
    (root / "src" / "app" / "__init__.py").write_text("VERSION = 2\n")
    changed = build_inputs(spec, engine, hashes)
    assert changed != digest
    assert build_inputs(spec, Engine("podman", "podman", {}), hashes) != changed
    assert ImageBuild(root, "a", "b", spec.target, spec.requirements, spec.wheelhouse, spec.sbom, 1, None,
                      ("--no-cache",)).no_cache  # fmt: skip

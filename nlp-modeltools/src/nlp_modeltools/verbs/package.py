"""Your own pipelines: each directory under pipelines/ packaged with `spacy package` into build/ (make package).

A pipeline directory holds config.cfg and meta.json (what `spacy train` writes
to model-best/). Its wheel, `{lang}_{name}-{version}-py3-none-any.whl` after
meta.json, is a model like any other: listed in requirements-model.in, locked
with its build/ file's hash only, installed from build/, never from an index.

The wheel is reproducible, so that a fresh clone packages the very file
requirements.txt locked: spaCy writes the package (`spacy package --build
none`), file modes are normalised, and the tools venv's pinned setuptools
builds the wheel (`python -m build --no-isolation`) with SOURCE_DATE_EPOCH
fixed. spaCy runs in .venv when .venv holds requirements.txt; otherwise (the
first install, a fresh clone) in $(TOOLS)/envs/spacy, made with uv from
requirements.txt's packages (models aside), or from requirements.in before
the first lock.

build/pipelines/<dir>.json records each pipeline's content digest and its
wheel's name and sha256, so a pipeline is packaged again only when it changed,
and a change without a new version in meta.json is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from packaging.utils import canonicalize_name

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError, run_tool
from nlp_modeltools.core.files import project_lock, touch, write_if_changed
from nlp_modeltools.lock import lockfile
from nlp_modeltools.lock.resolve import write_input
from nlp_modeltools.models.fetch import wheels_in_build
from nlp_modeltools.models.inputs import check_no_model_by_name, read_range_sources, read_wheel_sources
from nlp_modeltools.models.pipelines import (
    STAMP,
    Pipeline,
    Record,
    content_digest,
    current_wheel,
    pipeline_dirs,
    read_pipeline,
    read_record,
    record_path,
)
from nlp_modeltools.models.wheels import build_wheel
from nlp_modeltools.ship import envs

# ---- make package


def package(settings: Settings) -> None:
    """Package every pipeline that changed; record each; mark build/pipelines/.packaged for make."""
    paths = settings.paths
    with project_lock(paths.build):
        for stale in paths.build.glob(".stage-*"):  # left by a packaging that was killed
            shutil.rmtree(stale, ignore_errors=True)
        directories = pipeline_dirs(paths.pipelines)
        for directory in directories:
            package_one(settings, read_pipeline(directory))
        forget_removed(settings, directories)
        settings.hashes.save()
        touch(paths.build / "pipelines" / STAMP)
    if not directories:
        print("package: no pipeline under pipelines/ (a directory holding config.cfg and meta.json)", flush=True)


def package_one(settings: Settings, pipeline: Pipeline) -> None:
    build, hashes = settings.paths.build, settings.hashes
    digest, record = content_digest(hashes, pipeline.directory), read_record(build, pipeline.directory)
    if current_wheel(build, hashes, pipeline, digest, record) is not None:
        print(f"package: {pipeline.label} is unchanged: build/{pipeline.filename}", flush=True)
        return
    if record is not None and record.wheel == pipeline.filename and record.digest != digest:
        raise_not_bumped(pipeline, "it was packaged")
    stage = Path(tempfile.mkdtemp(prefix=f".stage-{pipeline.directory.name}-", dir=settings.paths.build))
    try:
        built = package_wheel(settings, pipeline, stage)
        sha256 = settings.hashes.sha256(built)
        check_version_is_new(settings, pipeline, sha256)
        os.replace(built, settings.paths.build / pipeline.filename)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    record = Record(digest, pipeline.filename, sha256)
    write_if_changed(record_path(build, pipeline.directory), json.dumps(asdict(record), indent=1) + "\n")
    print(f"package: {pipeline.label} -> build/{pipeline.filename} (sha256 {record.sha256[:12]}…)", flush=True)


def raise_not_bumped(pipeline: Pipeline, since: str) -> None:
    release = pipeline.version.release
    bumped = ".".join(map(str, (*release[:-1], release[-1] + 1)))
    raise UserError(
        f'{pipeline.label} changed since {since}, but its version is still {pipeline.version}: bump "version" in '
        f"{pipeline.label}/meta.json (e.g. to {bumped}) and run make install again; one version, one content"
    )


def check_version_is_new(settings: Settings, pipeline: Pipeline, sha256: str) -> None:
    """Other bytes under a version already locked, or already in build/, mean the version was not bumped.

    This is what stops a fresh clone (no record yet) whose pipeline changed:
    reproducible packaging gives the very file requirements.txt locked, or another version.
    """
    lock = lockfile.read(settings.paths.lock)
    entry = lock.by_name().get(canonicalize_name(pipeline.model)) if lock else None
    if entry is not None and entry.version == str(pipeline.version):
        if f"sha256:{sha256}" not in entry.hashes:
            raise_not_bumped(pipeline, f"requirements.txt locked {pipeline.model}=={pipeline.version}")
        return
    record = read_record(settings.paths.build, pipeline.directory)
    existing = settings.paths.build / pipeline.filename
    rebuilt = record is not None and record.sha256 == sha256  # the recorded content again: a changed file is replaced
    if existing.is_file() and not rebuilt and settings.hashes.sha256(existing) != sha256:
        raise_not_bumped(pipeline, f"build/{pipeline.filename} was packaged")


def forget_removed(settings: Settings, directories: list[Path]) -> None:
    """Records of pipelines no longer under pipelines/ go.

    Wheels stay, theirs and those of earlier versions (until make distclean):
    make has already listed build/*.whl as the lock's prerequisites.
    """
    names = {directory.name for directory in directories}
    for record in (settings.paths.build / "pipelines").glob("*.json"):
        if record.stem not in names:
            record.unlink()


def package_wheel(settings: Settings, pipeline: Pipeline, stage: Path) -> Path:
    """spacy package writes the package into stage; the tools venv builds its wheel, the same bytes every time."""
    fix = f"Read spaCy's message above; {pipeline.label} must load with spacy.load (config.cfg, meta.json)"
    with spacy_python(settings) as python:
        run_tool([python, "-m", "spacy", "package", str(pipeline.directory.resolve()), str(stage), "--build", "none",
                  "--force"], what=f"spacy package {pipeline.label}", fix=fix, redact=settings.redact,
                 quiet=True)  # fmt: skip
    source = next((d for d in stage.iterdir() if (d / "setup.py").is_file()), None)
    if source is None:
        raise UserError(f"spacy package wrote no package for {pipeline.label}: check its meta.json")
    fix = "Run make clean, then make package again (it sets up the tools venv afresh)"
    wheel = build_wheel(settings.run, source, stage / "dist", f"building the wheel of {pipeline.label}", fix)
    if (wheel.name, wheel.version) != (canonicalize_name(pipeline.model), pipeline.version):
        raise UserError(f"packaging {pipeline.label} gave {wheel.path.name}, not {pipeline.filename}")
    return wheel.path


@contextmanager
def spacy_python(settings: Settings) -> Iterator[str]:
    """.venv's Python when .venv holds requirements.txt; else one made for packaging, from the same pins (held
    until the block ends)."""
    lock = settings.paths.lock
    if lockfile.venv_holds(settings.venv, settings.paths.lock):
        yield str((settings.venv / "bin" / "python").absolute())
        return
    work = settings.paths.build / "pipelines"
    if lock.is_file():
        parsed = lockfile.parse(lock.read_text())
        others = [entry for entry in parsed.entries if not entry.is_model]
        requirements = work / "requirements.txt"
        write_if_changed(requirements, lockfile.Lock([], others).render())
        locked = True
    else:
        # no lock yet: requirements.in goes to the index, so first make sure it names no model
        paths = settings.paths
        listed = [s.name for s in read_wheel_sources(paths.urls, settings.models_url)]
        listed += [s.name for s in read_range_sources(paths.ranges)]
        listed += [canonicalize_name(read_pipeline(d).model) for d in pipeline_dirs(paths.pipelines)]
        check_no_model_by_name(
            paths.requirements, paths.pins, listed + [name for name, _ in wheels_in_build(paths.build)]
        )
        requirements = write_input(paths, {}, work / "unlocked")
        locked = False
    wheels = settings.paths.wheels if settings.paths.wheels.is_dir() else None
    with envs.job_env(settings.tools / "envs", settings.run, "spacy", requirements, job="make package",
                      locked=locked, find_links=wheels) as python:  # fmt: skip
        yield str(python.absolute())

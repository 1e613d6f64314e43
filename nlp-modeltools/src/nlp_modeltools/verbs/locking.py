"""make lock and make upgrade: requirements.txt from requirements.in and the models in build/, by hash.

lock reads the manifest make models wrote (build/models.json) and finds each model file by its hash;
upgrade lists and fetches the models again first (it moves them to their newest allowed versions).
"""

from __future__ import annotations

import platform
import sys

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import mark_fresh, project_lock, write_if_changed
from nlp_modeltools.core.redact import mask
from nlp_modeltools.core.secrets import check_no_leaks, check_private_sources, find_leaks, require_variables
from nlp_modeltools.lock import lockfile
from nlp_modeltools.lock.resolve import compile_lock
from nlp_modeltools.models import manifest
from nlp_modeltools.models.collect import SpacyCheck, collect_models
from nlp_modeltools.models.fetch import wheels_in_build
from nlp_modeltools.models.inputs import check_no_model_by_name, requirement_files, requirement_lines
from nlp_modeltools.models.manifest import ModelRecord


def lock(settings: Settings, upgrade: bool = False) -> None:
    with project_lock(settings.paths.build):
        _lock(settings, upgrade)


def _lock(settings: Settings, upgrade: bool) -> None:
    paths = settings.paths
    previous = lockfile.read(paths.lock)
    found = collect_models(paths, settings.fetcher, settings.model_sources, upgrade=True) if upgrade else None
    records = manifest.read(paths.manifest) if upgrade else settings.models()
    models = manifest.by_key(records)
    # a model by name in requirements.in (one listed, or a wheel someone put in build/) never reaches a resolver
    in_build = [name for name, _ in wheels_in_build(paths.build)]
    check_no_model_by_name(paths.requirements, paths.pins, [*models, *in_build])
    files = requirement_files(paths.requirements, skip=paths.pins)
    digest = lockfile.inputs_digest(files, {name: r.sha256 for name, r in models.items()}, settings.python_version)
    lock_sources = [*files, paths.pins, paths.manifest, *(r.path(paths.build) for r in records)]
    # the files requirements.in pulls in (-r, -c) become prerequisites of requirements.txt for make
    included = " ".join(str(f) for f in files if f != paths.requirements and " " not in str(f))
    write_if_changed(
        paths.work / "inputs.mk",
        f"# Written by make lock: files requirements.in includes.\nlock_inputs := {included}\n",
    )
    if not upgrade and lockfile.recorded_digest(paths.lock) == digest:
        check_no_leaks(paths, settings.secrets)
        write_runtime_manifest(settings, records, previous)
        mark_fresh(paths.lock, lock_sources)
        print(f"lock: {paths.lock.name} already matches its inputs; nothing to resolve", flush=True)
        return
    if settings.offline:
        raise UserError(
            f"OFFLINE=1, but {paths.lock.name} does not match its inputs: run make lock with network access"
        )
    require_variables(settings.get("REQUIRED_ENV").split(), settings.environ, paths.env_file)
    check_private_sources(settings.session, settings.environ, settings.secrets)
    new = compile_lock(settings.resolver, models, lock_scope(settings), work=paths.work, upgrade=upgrade,
                       previous=paths.lock)  # fmt: skip
    text = new.render(digest)
    problems = lockfile.problems(new, text)
    draft_file = paths.work / "requirements.txt"
    draft_file.write_text(text)
    problems += find_leaks(paths.root, paths.env_file, settings.secrets, [draft_file])
    if problems:
        raise UserError(f"the compiled lock is unsafe, so {paths.lock.name} was kept as it was: " + "; ".join(problems))
    spacy = SpacyCheck(paths, new)
    for item in records:
        spacy.check(item, item.where)
    if found is not None:
        spacy.series_move(found, previous.version_of("spacy") if previous else None, new.version_of("spacy"))
    write_runtime_manifest(settings, records, new)  # before the lock: a failure here leaves the old lock as it was
    write_if_changed(paths.lock, text)
    mark_fresh(paths.lock, lock_sources)
    sources = {r.key: mask(r.url) if r.url else f"build/{r.filename}" for r in records}
    moved = lockfile.changes(previous, new, sources)
    if previous is None:
        print(f"lock: wrote {paths.lock.name}: {len(new.entries)} packages, each pinned with its hashes", flush=True)
    else:
        print(f"lock: {paths.lock.name}: " + ("\n" + "\n".join(moved) if moved else "no package changed"), flush=True)


def lock_scope(settings: Settings) -> str:
    """Which machines a new lock serves; with pip-tools, each requirement its marker leaves out here is named."""
    if settings.installer == "uv":
        return lockfile.UNIVERSAL
    here = f"{sys.platform} {platform.machine()} and Python {settings.python_version}"
    for where, requirement in requirement_lines(settings.paths.requirements, settings.paths.pins):
        if requirement.marker is not None and not requirement.marker.evaluate():
            print(
                f"lock: {requirement.name} ({where}) is left out: its marker {requirement.marker} is false on "
                f"{here}; pip-compile locks for this machine only (INSTALLER=uv locks for every platform)"
            )
    return f"for {here} only (pip-compile resolves for the machine it runs on; INSTALLER=uv locks for every platform)"


def upgrade(settings: Settings) -> None:
    lock(settings, upgrade=True)


def write_runtime_manifest(settings: Settings, records: list[ModelRecord], lock: lockfile.Lock | None) -> None:
    """src/<package>/models.lock.json: the manifest of the locked models, for the runtime self-install (only when
    the project uses it): the same format as build/models.json, with the locked spaCy."""
    path = settings.manifest
    if path is None:
        return
    spacy = lock.version_of("spacy") if lock else None
    manifest.write(
        path, records, manifest.inputs_digest(settings.paths, settings.hashes), str(spacy) if spacy else None
    )

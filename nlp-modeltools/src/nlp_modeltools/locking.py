"""make lock and make upgrade: requirements.txt from requirements.in and the models in build/, by hash."""

from __future__ import annotations

import json
import platform
import sys

from nlp_modeltools import lockfile, secrets
from nlp_modeltools.collect import Model, SpacyCheck, collect_models
from nlp_modeltools.errors import UserError, mask
from nlp_modeltools.files import mark_fresh, project_lock, write_if_changed
from nlp_modeltools.inputs import requirement_files, requirement_lines
from nlp_modeltools.resolve import compile_lock
from nlp_modeltools.settings import Settings


def lock(settings: Settings, upgrade: bool = False) -> None:
    with project_lock(settings.paths.build):
        _lock(settings, upgrade)


def _lock(settings: Settings, upgrade: bool) -> None:
    paths = settings.paths
    previous = lockfile.read(paths.lock)
    found = collect_models(settings, upgrade)
    by_name = {m.wheel.name: m.wheel for m in found}
    hashes = {name: settings.hashes.sha256(wheel.path) for name, wheel in by_name.items()}
    settings.hashes.save()
    files = requirement_files(paths.requirements, skip=paths.pins)
    digest = lockfile.inputs_digest(files, hashes, settings.python_version)
    lock_sources = [*files, paths.pins, *(m.wheel.path for m in found)]
    # the files requirements.in pulls in (-r, -c) become prerequisites of requirements.txt for make
    included = " ".join(str(f) for f in files if f != paths.requirements and " " not in str(f))
    write_if_changed(
        paths.work / "inputs.mk",
        f"# Written by make lock: files requirements.in includes.\nlock_inputs := {included}\n",
    )
    if not upgrade and lockfile.recorded_digest(paths.lock) == digest:
        secrets.check_no_leaks(settings)
        write_manifest(settings, found, previous)
        mark_fresh(paths.lock, lock_sources)
        print(f"lock: {paths.lock.name} already matches its inputs; nothing to resolve", flush=True)
        return
    if settings.offline:
        raise UserError(
            f"OFFLINE=1, but {paths.lock.name} does not match its inputs: run make lock with network access"
        )
    secrets.require_variables(settings)
    secrets.check_private_sources(settings)
    new = compile_lock(settings, by_name, lock_scope(settings), work=paths.work, upgrade=upgrade, previous=paths.lock)
    text = new.render(digest)
    problems = lockfile.problems(new, text)
    draft_file = paths.work / "requirements.txt"
    draft_file.write_text(text)
    problems += secrets.find_leaks(settings, [draft_file])
    if problems:
        raise UserError(f"the compiled lock is unsafe, so {paths.lock.name} was kept as it was: " + "; ".join(problems))
    spacy = SpacyCheck(settings, new)
    for model in found:
        spacy.check(model.wheel, model.where)
    if upgrade:
        spacy.series_move(found, previous.version_of("spacy") if previous else None, new.version_of("spacy"))
    write_manifest(settings, found, new)  # before the lock: a failure here leaves the old lock as it was
    write_if_changed(paths.lock, text)
    mark_fresh(paths.lock, lock_sources)
    sources = {m.wheel.name: mask(m.url) if m.url else f"build/{m.wheel.path.name}" for m in found}
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


def write_manifest(settings: Settings, found: list[Model], lock: lockfile.Lock | None) -> None:
    """src/<package>/models.lock.json: the runtime self-install's pins (only when the project uses it)."""
    path = settings.manifest
    if path is None:
        return
    models = []
    for model in sorted(found, key=lambda m: m.wheel.name):
        needs = model.wheel.requirement_on("spacy")
        models.append({
            "name": model.wheel.display_name, "version": str(model.wheel.version), "filename": model.wheel.filename,
            "sha256": settings.hashes.sha256(model.wheel.path), "url": mask(model.url) if model.url else None,
            "requires_spacy": str(needs.specifier) if needs else None,
        })  # fmt: skip
    spacy = lock.version_of("spacy") if lock else None
    manifest = {"format": 1, "spacy": str(spacy) if spacy else None, "models": models}
    write_if_changed(path, json.dumps(manifest, indent=2) + "\n")

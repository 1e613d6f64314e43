"""The Makefile's steps, one function a verb; each takes the project lock and is a no-op when nothing changed."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import Version

from modeltools import image, lockfile, pipelines, releases, secrets, wheelhouse
from modeltools.errors import UserError, mask
from modeltools.fetch import Fetcher, expectation, hub_note, wheels_in_build
from modeltools.files import mark_fresh, project_lock, write_if_changed
from modeltools.inputs import (
    RangeSource,
    check_no_model_by_name,
    check_unique,
    project_spacy,
    read_pins,
    read_range_sources,
    read_wheel_sources,
    render_pins,
    requirement_files,
    requirement_lines,
)
from modeltools.ranges import StaleLinksError, pinned_wheel, resolve_range
from modeltools.resolve import add_missing_hashes, compile_lock
from modeltools.settings import Settings
from modeltools.venv import require_lock
from modeltools.wheels import ModelWheel, check_fits_python, spacy_fits


@dataclass(frozen=True)
class Model:
    """A model of the project: its wheel in build/, where it comes from, and where it is listed."""

    wheel: ModelWheel
    url: str | None
    where: str


class SpacyCheck:
    """Whether a model's own spaCy requirement fits the spaCy the project installs."""

    def __init__(self, settings: Settings, lock: lockfile.Lock | None) -> None:
        found = project_spacy(settings.paths.requirements, settings.paths.pins)
        self.project = found[0] if found else None
        self.where = found[1] if found else ""
        self.locked = lock.version_of("spacy") if lock else None

    def series(self) -> tuple[int, ...] | None:
        """The project's spaCy (major, minor): the locked one, else the lowest its requirement allows."""
        if self.locked is not None:
            return self.locked.release[:2]
        if self.project is None:
            return None
        floors = [Version(s.version).release[:2] for s in self.project.specifier if s.operator in (">=", "~=", "==")]
        return min(floors) if floors else None

    def misfit(self, wheel: ModelWheel) -> str | None:
        needs = wheel.requirement_on("spacy")
        if needs is None or self.project is None:
            return None
        if spacy_fits(needs.specifier, self.project.specifier, self.locked):
            return None
        locked = f", locked at {self.locked}" if self.locked and self.project.specifier.contains(self.locked) else ""
        return f"needs {needs}, but this project uses {self.project} ({self.where}{locked})"

    def check(self, wheel: ModelWheel, where: str) -> None:
        reason = self.misfit(wheel)
        if reason:
            raise UserError(
                f"{wheel.pin} ({where}) {reason}: pick a release of {wheel.display_name} built for that spaCy "
                "(make check-models lists them), or change the spaCy version; nothing was installed"
            )

    def unbounded(self, wheel: ModelWheel) -> bool:
        """The model admits every later spaCy: spaCy warns (W094) at each load, and no upgrade is stopped."""
        needs = wheel.requirement_on("spacy")
        return needs is not None and not any(s.operator in ("<", "<=", "==", "~=", "===") for s in needs.specifier)

    def series_move(self, models: list[Model], before: Version | None, after: Version | None) -> None:
        """make upgrade moves spaCy to a later series only when requirements.in or every model says it may."""
        if before is None or after is None or after.release[:2] <= before.release[:2]:
            return
        if self.project is not None and any(s.operator in ("<", "<=", "==", "~=") for s in self.project.specifier):
            return  # the project chose the series
        for model in (m for m in models if self.unbounded(m.wheel)):
            series = f"{before.major}.{before.minor}"
            raise UserError(
                f"make upgrade would move spaCy {before} -> {after}, past the {series} series {model.wheel.pin} "
                f"({model.where}) was locked with, and its requirement {model.wheel.requirement_on('spacy')} has no "
                f"upper bound; nothing was changed. Write the series you want in requirements.in (e.g. "
                f"spacy>={after.major}.{after.minor},<{after.major}.{after.minor + 1} if the model works with it, "
                f"or spacy<{after.major}.{after.minor}), then run make upgrade again"
            )


def locked_hashes(lock: lockfile.Lock | None) -> dict[NormalizedName, tuple[str, str]]:
    """name -> (version, sha256) of each model the lock pins (its block: one hash, its build/ file's)."""
    found = {}
    for entry in lock.entries if lock else []:
        if "-r requirements-model.in" in entry.via and entry.hashes and entry.hashes[0].startswith("sha256:"):
            found[entry.name] = (entry.version, entry.hashes[0].removeprefix("sha256:"))
    return found


def links_page(settings: Settings, names: list[str], refresh: bool) -> list[releases.ModelLink]:
    page = settings.paths.links
    if settings.offline and not page.exists():
        raise UserError(f"OFFLINE=1, but {page} is missing: run make links once with network access")
    if (refresh or not page.exists()) and not settings.offline:
        return releases.write_links(settings, names)
    return releases.read_links(page)


class LinksPages:
    """The links page, read (or made) only when a ranged model needs it, and refreshed once when stale."""

    def __init__(self, settings: Settings, names: list[str], refresh: bool) -> None:
        self.settings, self.names, self.refresh = settings, names, refresh
        self.loaded: list[releases.ModelLink] = []
        self.read = False

    def links(self, refresh: bool = False) -> list[releases.ModelLink]:
        if not self.read or refresh:
            self.loaded = links_page(self.settings, self.names, refresh=self.refresh or refresh)
            self.read, self.refresh = True, False
        return self.loaded

    def resolve(self, source: RangeSource, locked: dict, upgrade: bool, misfit: Callable) -> ModelWheel:
        try:
            return resolve_range(self.settings, source, self.links(), locked, upgrade, misfit)
        except StaleLinksError:
            if self.settings.offline:
                raise
            return resolve_range(self.settings, source, self.links(refresh=True), locked, upgrade, misfit)


def collect_models(settings: Settings, upgrade: bool = False, check_fit: bool = True) -> list[Model]:
    """Every model of the project in build/, each checked (check_fit: its spaCy too); writes requirements-model.in."""
    paths = settings.paths
    lock = None if upgrade else lockfile.read(paths.lock)
    locked = locked_hashes(lock)
    wheel_sources = read_wheel_sources(paths.urls, settings.models_url)
    range_sources = read_range_sources(paths.ranges)
    packaged = pipelines.packaged(settings)
    check_unique([*wheel_sources, *range_sources, *packaged])
    spacy = SpacyCheck(settings, lock)
    fetcher = Fetcher.of(settings)
    models = []
    for source in wheel_sources:
        note = hub_note(source.url, settings.get("HF_ENDPOINT", "https://huggingface.co"))
        if note:
            print(f"models: {note}", flush=True)
        wheel = fetcher.wheel(source, expectation(source, locked, upgrade))
        models.append(Model(wheel, None if source.local else source.url, source.where))
    if range_sources:
        pages = LinksPages(settings, [s.requirement.name for s in range_sources], refresh=upgrade)
        for source in range_sources:
            wheel = None if not source.applies() else pinned_wheel(settings, source, locked, upgrade)
            if wheel is None and source.applies():
                wheel = pages.resolve(source, locked, upgrade, spacy.misfit)
            if wheel is not None:
                link = next((x for x in pages.loaded if x.filename == wheel.path.name), None)
                models.append(Model(wheel, link.url if link else None, source.where))
    models += [Model(wheel, None, f"pipelines/ ({wheel.path.name})") for wheel in packaged]
    for model in models:
        try:
            if check_fit:
                spacy.check(model.wheel, model.where)
            check_fits_python(model.wheel, model.where)
        except UserError:
            if model.url:  # a refused download leaves build/ (the machine's cache keeps it, until make cache-prune)
                model.wheel.path.unlink(missing_ok=True)
            raise
    # a wheel someone put in build/ is a model too, listed or not: its name must not reach a resolver
    in_build = [name for name, _ in wheels_in_build(paths.build)]
    check_no_model_by_name(paths.requirements, paths.pins, [m.wheel.name for m in models] + in_build)
    if write_if_changed(paths.pins, render_pins(m.wheel for m in models)):
        print(f"models: wrote {paths.pins.name}", flush=True)
    # make cannot see a deleted prerequisite: it compares this list with the lists that exist now
    listed = " ".join(path.name for path in (paths.urls, paths.ranges) if path.is_file())
    write_if_changed(
        paths.work / "models.mk",
        f"# Written by make models: the model lists it read.\nmodel_lists_seen := {listed}\n",
    )
    settings.hashes.save()
    return models


def models(settings: Settings) -> None:
    with project_lock(settings.paths.build):
        found = collect_models(settings)
        paths = settings.paths
        mark_fresh(paths.pins, [paths.urls, paths.ranges, paths.pipelines, paths.build / "pipelines" / ".packaged"])
    size = sum(m.wheel.path.stat().st_size for m in found) / 1e6
    print(f"models: {len(found)} model wheels in build/ ({size:.1f} MB), each checked", flush=True)


def prune(settings: Settings) -> None:
    """build/ keeps the model wheels requirements.txt and requirements-model.in name; the others go (refused,
    superseded). The machine's cache keeps them until make cache-prune's age rule."""
    paths = settings.paths
    with project_lock(paths.build):
        lock = lockfile.read(paths.lock)
        locked = locked_hashes(lock)
        pins = read_pins(paths.pins)
        removed = 0
        for (name, version), path in wheels_in_build(paths.build).items():
            by_lock = locked.get(name) == (str(version), settings.hashes.sha256(path))
            if by_lock or (name not in locked and pins.get(name) == str(version)):
                continue
            removed += path.stat().st_size
            path.unlink()
            print(f"prune: removed build/{path.name} (requirements.txt does not name it)", flush=True)
        settings.hashes.save()
    print(f"prune: {removed / 1e6:.1f} MB freed in build/; make cache-prune trims the machine's cache", flush=True)


def links(settings: Settings) -> None:
    with project_lock(settings.paths.build):
        releases.write_links(settings, [s.requirement.name for s in read_range_sources(settings.paths.ranges)])


def check_models(settings: Settings) -> None:
    """A line for every model: its own spaCy requirement and whether it fits; for one that does not, the
    releases of the links page made for the project's spaCy series. Fails only when a model does not fit."""
    with project_lock(settings.paths.build):
        found = collect_models(settings, check_fit=False)
    spacy = SpacyCheck(settings, lockfile.read(settings.paths.lock))
    links = releases.read_links(settings.paths.links)
    misfits = []
    for model in found:
        needs, reason = model.wheel.requirement_on("spacy"), spacy.misfit(model.wheel)
        line = f"check-models: {model.wheel.pin} needs {needs or 'any spaCy'}: "
        if reason is None:
            print(line + f"fits {spacy.project or 'spaCy'}")
            if spacy.unbounded(model.wheel):
                print(f"check-models: warning: {model.wheel.pin} sets no upper bound on spaCy: spaCy warns (W094) at "
                      "each load, and a spaCy upgrade is not stopped by it; keep spacy's series pinned in "
                      "requirements.in")  # fmt: skip
            continue
        misfits.append(model.wheel.pin)
        print(line + f"does not fit: {reason.split(', but ', 1)[1]}")
        series = spacy.series()
        fitting = sorted(
            {str(i[1]) for link in links if (i := link.identity()) and i[0] == model.wheel.name and series
             and i[1].release[:2] == series}, key=Version,
        )  # fmt: skip
        if fitting:
            print(f"check-models:   releases of {model.wheel.display_name} made for spaCy {series[0]}.{series[1]} "
                  f"(spaCy's model versions follow its own): {', '.join(fitting)}")  # fmt: skip
        else:
            print(f"check-models:   run make links to list the releases of {model.wheel.display_name} (or see "
                  "where it is published), and pick one made for the project's spaCy")  # fmt: skip
    if misfits:
        raise UserError(f"{', '.join(misfits)} do(es) not fit the project's spaCy: see the lines above")


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
    draft = compile_lock(settings, by_name, upgrade=upgrade, previous=paths.lock, work=paths.work)
    new = lockfile.finish(draft, by_name, hashes, lock_scope(settings))
    add_missing_hashes(settings, new)
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


def model_files(settings: Settings, lock: lockfile.Lock) -> dict[str, Path]:
    """The model wheels of build/ the lock names, each verified against the lock's hash."""
    found = collect_models(settings)
    pinned = {e.name for e in lock.entries}
    return {m.wheel.name: m.wheel.path for m in found if m.wheel.name in pinned}


def wheelhouse_step(settings: Settings) -> None:
    """build/wheels, or the wheelhouse of PLATFORM / IMAGE_PYTHON (build/image/<target>/wheels) when they are set."""
    target = image.image_target(settings)
    with project_lock(settings.paths.build):
        parsed, text = require_lock(settings)
        if image.is_host(target, settings.python_version):
            house = wheelhouse.fill(settings, parsed, text, settings.paths.wheels, model_files(settings, parsed))
            where = f"{settings.paths.wheels}/, each matching requirements.txt"
        else:
            requirements, directory = image_wheelhouse(settings, target, parsed, text)
            house, where = wheelhouse.Wheelhouse(directory, settings.hashes), f"{directory}/, for {requirements}"
    print(f"wheelhouse: {len(house.by_hash)} wheels in {where}", flush=True)


def docker(settings: Settings) -> None:
    from modeltools import sbom  # it reads the models' sources, from here

    target = image.image_target(settings)
    paths = settings.paths
    with project_lock(paths.build):  # held through the build: nothing changes the wheelhouse while it is read
        parsed, text = require_lock(settings)
        if image.is_host(target, settings.python_version):
            wheelhouse.verify(settings.hashes, parsed, paths.wheels)
            requirements, house = paths.lock, paths.wheels
        else:
            requirements, house = image_wheelhouse(settings, target, parsed, text)
        image.build(settings, target, requirements, house, sbom.write(settings, requirements, collect_models(settings)))


def docker_verify(settings: Settings) -> None:
    """make docker, then the same build with --no-cache under another tag: both must get the same image ID."""
    docker(settings)
    engine, name = image.detect_engine(settings.get("CONTAINER_ENGINE")), settings.get("IMAGE")
    options = f"{settings.get('DOCKER_BUILD_ARGS')} --no-cache"
    again = Settings({**settings.environ, "IMAGE": f"{name}-verify", "DOCKER_BUILD_ARGS": options}, settings.paths)
    docker(again)
    first, second = image.image_id(engine, name), image.image_id(engine, again.get("IMAGE"))
    if first != second:
        raise UserError(f"a --no-cache rebuild of {name}, {again.get('IMAGE')}, has another image ID: compare the "
                        f"RootFS.Layers of both ({engine} image inspect) to find the step that varies")  # fmt: skip
    subprocess.run([engine, "rmi", again.get("IMAGE")], capture_output=True)
    print(f"docker-verify: a --no-cache rebuild of {name} gave the same image ID, {first}")


def image_wheelhouse(
    settings: Settings, target: image.ImageTarget, parsed: lockfile.Lock, text: str
) -> tuple[Path, Path]:
    """build/image/<platform>-py<version>/: the target's requirements.txt and its wheels, each by hash.

    From a universal lock (uv's) the target's entries are those its markers select: no resolver runs.
    A pip-tools lock serves the machine that made it only, so it is resolved again for the target
    (uv pip compile --python-platform, the lock's versions as constraints), and that is said.
    """
    directory = settings.paths.build / "image" / target.key
    requirements = directory / "requirements.txt"
    found = collect_models(settings)
    by_name = {m.wheel.name: m.wheel for m in found}
    inputs = hashlib.sha256(f"{text}\n{target}".encode()).hexdigest()
    if lockfile.recorded_digest(requirements) != inputs and parsed.universal:
        entries = [entry for entry in parsed.entries if wheelhouse.applies(entry, target.marker_environment())]
        write_if_changed(requirements, lockfile.Lock(parsed.header, entries).render(inputs))
    elif lockfile.recorded_digest(requirements) != inputs:
        print(f"lock: requirements.txt was made by pip-compile for one machine; resolving it again for {target.key}"
              " (INSTALLER=uv writes one lock for every platform, and no resolver runs here)", flush=True)  # fmt: skip
        constraints = directory / "host-pins.txt"
        directory.mkdir(parents=True, exist_ok=True)
        constraints.write_text("".join(f"{e.name}=={e.version}\n" for e in parsed.entries if e.name not in by_name))
        draft = compile_lock(settings, by_name, upgrade=False, previous=None, work=directory / "resolve",
                             target=target.resolver_target(), constraints=[constraints])  # fmt: skip
        hashes = {name: settings.hashes.sha256(w.path) for name, w in by_name.items()}
        image_lock = lockfile.finish(draft, by_name, hashes, f"for {target.key} only, resolved from requirements.txt")
        add_missing_hashes(settings, image_lock)
        write_if_changed(requirements, image_lock.render(inputs))
    image_lock = lockfile.parse(requirements.read_text())
    models = {m.wheel.name: m.wheel.path for m in found}
    wheelhouse.fill(settings, image_lock, requirements.read_text(), directory / "wheels", models,
                    target.download_platform(), target.marker_environment())  # fmt: skip
    return requirements, directory / "wheels"


def check_secrets(settings: Settings) -> None:
    secrets.check_no_leaks(settings)
    print("check-secrets: no value of .env appears in a tracked file or in requirements.txt")


def check_env(settings: Settings) -> None:
    """Run by make whenever .env changed (settings.env_values checks every line first); says so once without one."""
    if not settings.paths.env_file.is_file():
        print("make: this project has no .env, so it runs with the Makefile's settings alone; to give credentials "
              "or settings, cp .env.example .env && chmod 600 .env and edit it", flush=True)  # fmt: skip

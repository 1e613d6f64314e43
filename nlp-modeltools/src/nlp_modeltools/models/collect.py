"""The project's models, from the listed sources into build/: the data flow of make models, top-down.

collect_models: the listed sources (requirements-model.in.url, .range, pipelines/)
-> the files fetched into build/ -> each wheel checked (hash, identity, spaCy,
Python) -> requirements-model.in and the manifest (build/models.json). It runs in
make models and make upgrade only; every later step reads the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import write_if_changed
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.lock import lockfile
from nlp_modeltools.models import manifest, pipelines, releases
from nlp_modeltools.models.fetch import Fetcher, expectation, hub_note, wheels_in_build
from nlp_modeltools.models.inputs import (
    RangeSource,
    check_no_model_by_name,
    check_unique,
    project_spacy,
    read_range_sources,
    read_wheel_sources,
    render_pins,
)
from nlp_modeltools.models.manifest import ModelRecord
from nlp_modeltools.models.ranges import Mirror, StaleLinksError, pinned_wheel, resolve_range
from nlp_modeltools.models.wheels import ModelWheel, check_fits_python, spacy_fits


@dataclass(frozen=True)
class Model:
    """A model of the project: its wheel in build/, where it comes from, and where it is listed."""

    wheel: ModelWheel
    url: str | None
    where: str


class SpacyCheck:
    """Whether a model's own spaCy requirement fits the spaCy the project installs."""

    def __init__(self, paths: Paths, lock: lockfile.Lock | None) -> None:
        found = project_spacy(paths.requirements, paths.pins)
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

    def misfit(self, wheel: ModelWheel | ModelRecord) -> str | None:
        needs = spacy_requirement(wheel)
        if needs is None or self.project is None:
            return None
        if spacy_fits(needs.specifier, self.project.specifier, self.locked):
            return None
        locked = f", locked at {self.locked}" if self.locked and self.project.specifier.contains(self.locked) else ""
        return f"needs {needs}, but this project uses {self.project} ({self.where}{locked})"

    def check(self, wheel: ModelWheel | ModelRecord, where: str) -> None:
        reason = self.misfit(wheel)
        if reason:
            shown = wheel.display_name if isinstance(wheel, ModelWheel) else wheel.name
            raise UserError(
                f"{wheel.pin} ({where}) {reason}: pick a release of {shown} built for that spaCy "
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


def spacy_requirement(model: ModelWheel | ModelRecord) -> Requirement | None:
    """A model's own requirement on spaCy: from its METADATA, or as the manifest recorded it."""
    if isinstance(model, ModelWheel):
        return model.requirement_on("spacy")
    return Requirement(f"spacy{model.requires_spacy}") if model.requires_spacy is not None else None


def locked_hashes(lock: lockfile.Lock | None) -> dict[NormalizedName, tuple[str, str]]:
    """name -> (version, sha256) of each model the lock pins (its block: one hash, its build/ file's)."""
    found = {}
    for entry in lock.entries if lock else []:
        if entry.is_model and entry.hashes and entry.hashes[0].startswith("sha256:"):
            found[entry.name] = (entry.version, entry.hashes[0].removeprefix("sha256:"))
    return found


@dataclass(frozen=True)
class ModelSources:
    """Where the models come from: SPACY_MODELS_URL, the Hub (HF_ENDPOINT), and the links page's source."""

    models_url: str
    hub: str
    links: releases.LinksSource
    mirror: Mirror


class LinksPages:
    """The links page, read (or made) only when a ranged model needs it, and refreshed once when stale."""

    def __init__(self, sources: ModelSources, fetcher: Fetcher, names: list[str], refresh: bool) -> None:
        self.sources, self.fetcher, self.names, self.refresh = sources, fetcher, names, refresh
        self.mirror = sources.mirror
        self.loaded: list[releases.ModelLink] | None = None

    def links(self, refresh: bool = False) -> list[releases.ModelLink]:
        page, offline = self.sources.links.output, self.fetcher.offline
        if self.loaded is None or refresh:
            if offline and not page.exists():
                raise UserError(f"OFFLINE=1, but {page} is missing: run make links once with network access")
            if (refresh or self.refresh or not page.exists()) and not offline:
                self.loaded = releases.write_links(self.sources.links, self.names)
            else:
                self.loaded = releases.read_links(page)
            self.refresh = False
        return self.loaded

    def resolve(self, source: RangeSource, locked: dict, upgrade: bool, misfit: Callable) -> ModelWheel:
        try:
            return resolve_range(self.fetcher, self.mirror, source, self.links(), locked, upgrade, misfit)
        except StaleLinksError:
            if self.fetcher.offline:
                raise
            return resolve_range(self.fetcher, self.mirror, source, self.links(refresh=True), locked, upgrade, misfit)


def collect_models(
    paths: Paths, fetcher: Fetcher, sources: ModelSources, upgrade: bool = False, check_fit: bool = True
) -> list[Model]:
    """Every model of the project in build/, each checked (check_fit: its spaCy too); writes requirements-model.in
    and the manifest (build/models.json) that every later step reads.

    The one back edge of the flow is here: the previous requirements.txt is read, so that a relock keeps the
    versions (and files) the lock has for ranged models and checks each file against its locked hash; make
    upgrade (upgrade=True) reads none. Raises UserError naming the line and the fix.
    """
    hashes = fetcher.hashes
    lock = None if upgrade else lockfile.read(paths.lock)
    locked = locked_hashes(lock)
    wheel_sources = read_wheel_sources(paths.urls, sources.models_url)
    range_sources = read_range_sources(paths.ranges)
    packaged = pipelines.packaged(paths.pipelines, paths.build, hashes)
    check_unique([*wheel_sources, *range_sources, *packaged])
    spacy = SpacyCheck(paths, lock)
    models = []
    for source in wheel_sources:
        note = hub_note(source.url, sources.hub)
        if note:
            print(f"models: {note}", flush=True)
        wheel = fetcher.wheel(source, expectation(source, locked, upgrade))
        models.append(Model(wheel, None if source.local else source.url, source.where))
    pages = LinksPages(sources, fetcher, [s.requirement.name for s in range_sources], refresh=upgrade)
    for source in (s for s in range_sources if s.applies()):  # its marker may leave it out here
        wheel = pinned_wheel(fetcher, source, locked, upgrade) or pages.resolve(source, locked, upgrade, spacy.misfit)
        link = next((x for x in pages.loaded or [] if x.filename == wheel.path.name), None)
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
    # nor a deleted model file: the install depends on each one, and a missing one makes make models run
    listed = " ".join(path.name for path in (paths.urls, paths.ranges) if path.is_file())
    files = " ".join(f"build/{m.wheel.path.name}" for m in models if " " not in m.wheel.path.name)
    write_if_changed(
        paths.work / "models.mk",
        f"# Written by make models: the model lists it read, the files it left.\nmodel_lists_seen := {listed}\n"
        f"model_files := {files}\n",
    )
    records = [manifest.record(m.wheel, hashes.sha256(m.wheel.path), m.url, m.where) for m in models]
    manifest.write(paths.manifest, records, manifest.inputs_digest(paths, hashes))
    hashes.save()
    return models

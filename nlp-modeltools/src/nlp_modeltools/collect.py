"""make models, prune, links and check-models: the project's models, from the listed sources into build/.

collect_models is the data flow of make models, top-down: the listed sources
(requirements-model.in.url, .range, pipelines/) -> the files fetched into
build/ -> each wheel checked (hash, identity, spaCy, Python) ->
requirements-model.in. Every other verb that needs the models calls it; it is a
no-op on the network when build/ already holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import Version

from nlp_modeltools import lockfile, pipelines, releases
from nlp_modeltools.errors import UserError
from nlp_modeltools.fetch import Fetcher, expectation, hub_note, wheels_in_build
from nlp_modeltools.files import mark_fresh, project_lock, write_if_changed
from nlp_modeltools.inputs import (
    RangeSource,
    check_no_model_by_name,
    check_unique,
    project_spacy,
    read_pins,
    read_range_sources,
    read_wheel_sources,
    render_pins,
)
from nlp_modeltools.ranges import Mirror, StaleLinksError, pinned_wheel, resolve_range
from nlp_modeltools.settings import HF_ENDPOINT, Settings
from nlp_modeltools.wheels import ModelWheel, check_fits_python, spacy_fits


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
        if entry.is_model and entry.hashes and entry.hashes[0].startswith("sha256:"):
            found[entry.name] = (entry.version, entry.hashes[0].removeprefix("sha256:"))
    return found


class LinksPages:
    """The links page, read (or made) only when a ranged model needs it, and refreshed once when stale."""

    def __init__(self, settings: Settings, fetcher: Fetcher, names: list[str], refresh: bool) -> None:
        self.settings, self.fetcher, self.names, self.refresh = settings, fetcher, names, refresh
        self.mirror = Mirror(settings.models_url, settings.models_index, settings.paths.links)
        self.loaded: list[releases.ModelLink] | None = None

    def links(self, refresh: bool = False) -> list[releases.ModelLink]:
        page, offline = self.settings.paths.links, self.settings.offline
        if self.loaded is None or refresh:
            if offline and not page.exists():
                raise UserError(f"OFFLINE=1, but {page} is missing: run make links once with network access")
            if (refresh or self.refresh or not page.exists()) and not offline:
                self.loaded = releases.write_links(self.settings, self.names)
            else:
                self.loaded = releases.read_links(page)
            self.refresh = False
        return self.loaded

    def resolve(self, source: RangeSource, locked: dict, upgrade: bool, misfit: Callable) -> ModelWheel:
        try:
            return resolve_range(self.fetcher, self.mirror, source, self.links(), locked, upgrade, misfit)
        except StaleLinksError:
            if self.settings.offline:
                raise
            return resolve_range(self.fetcher, self.mirror, source, self.links(refresh=True), locked, upgrade, misfit)


def collect_models(settings: Settings, upgrade: bool = False, check_fit: bool = True) -> list[Model]:
    """Every model of the project in build/, each checked (check_fit: its spaCy too); writes requirements-model.in."""
    paths = settings.paths
    lock = None if upgrade else lockfile.read(paths.lock)
    locked = locked_hashes(lock)
    wheel_sources = read_wheel_sources(paths.urls, settings.models_url)
    range_sources = read_range_sources(paths.ranges)
    packaged = pipelines.packaged(paths.pipelines, paths.build, settings.hashes)
    check_unique([*wheel_sources, *range_sources, *packaged])
    spacy = SpacyCheck(settings, lock)
    fetcher = Fetcher.of(settings)
    models = []
    for source in wheel_sources:
        note = hub_note(source.url, settings.get("HF_ENDPOINT", HF_ENDPOINT))
        if note:
            print(f"models: {note}", flush=True)
        wheel = fetcher.wheel(source, expectation(source, locked, upgrade))
        models.append(Model(wheel, None if source.local else source.url, source.where))
    pages = LinksPages(settings, fetcher, [s.requirement.name for s in range_sources], refresh=upgrade)
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
        versions = sorted(releases.releases_of(model.wheel.name, links))
        fitting = [str(version) for version in versions if series and version.release[:2] == series]
        if fitting:
            print(f"check-models:   releases of {model.wheel.display_name} made for spaCy {series[0]}.{series[1]} "
                  f"(spaCy's model versions follow its own): {', '.join(fitting)}")  # fmt: skip
        else:
            print(f"check-models:   run make links to list the releases of {model.wheel.display_name} (or see "
                  "where it is published), and pick one made for the project's spaCy")  # fmt: skip
    if misfits:
        raise UserError(f"{', '.join(misfits)} do(es) not fit the project's spaCy: see the lines above")


def model_files(found: list[Model], lock: lockfile.Lock) -> dict[str, Path]:
    """The model wheels of build/ the lock names (found: collect_models', each verified against the lock's hash)."""
    pinned = {e.name for e in lock.entries}
    return {m.wheel.name: m.wheel.path for m in found if m.wheel.name in pinned}

"""make models, prune, links and check-models: the project's models, from the listed sources into build/.

make models runs models/collect.py's collect_models (the listed sources -> build/
-> checked wheels -> requirements-model.in and build/models.json); check-models
runs it without the spaCy check, to report on every model.
"""

from __future__ import annotations

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import mark_fresh, project_lock
from nlp_modeltools.lock import lockfile
from nlp_modeltools.models import releases
from nlp_modeltools.models.collect import Model, SpacyCheck, collect_models, locked_hashes
from nlp_modeltools.models.fetch import wheels_in_build
from nlp_modeltools.models.inputs import read_pins, read_range_sources


def models(settings: Settings) -> None:
    with project_lock(settings.paths.build):
        found = collect(settings)
        paths = settings.paths
        mark_fresh(paths.pins, [paths.urls, paths.ranges, paths.pipelines, paths.build / "pipelines" / ".packaged"])
        mark_fresh(paths.manifest, [m.wheel.path for m in found])
    size = sum(m.wheel.path.stat().st_size for m in found) / 1e6
    print(f"models: {len(found)} model wheels in build/ ({size:.1f} MB), each checked", flush=True)


def collect(settings: Settings, check_fit: bool = True) -> list[Model]:
    return collect_models(settings.paths, settings.fetcher, settings.model_sources, check_fit=check_fit)


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
        releases.write_links(
            settings.links_source, [s.requirement.name for s in read_range_sources(settings.paths.ranges)]
        )


def check_models(settings: Settings) -> None:
    """A line for every model: its own spaCy requirement and whether it fits; for one that does not, the
    releases of the links page made for the project's spaCy series. Fails only when a model does not fit."""
    with project_lock(settings.paths.build):
        found = collect(settings, check_fit=False)
    spacy = SpacyCheck(settings.paths, lockfile.read(settings.paths.lock))
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

"""Models given by name and range: the release to use, chosen from the links page.

The lock's version is kept while it is in range (reproducible), until make
upgrade; otherwise the newest release in range whose own spaCy requirement
fits the project. Version order, pre-releases and markers are packaging's.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.models.fetch import Expected, Fetcher, wheels_in_build
from nlp_modeltools.models.inputs import RangeSource, WheelSource, mirror_url
from nlp_modeltools.models.releases import ModelLink, releases_of
from nlp_modeltools.models.wheels import ModelWheel, read_model_wheel, wheel_filename

MAX_TRIES = 3  # releases in range tried, newest first, before giving up on a model that does not fit


def candidates(source: RangeSource, links: list[ModelLink]) -> list[tuple[Version, ModelLink]]:
    """The releases of this model in range, newest first (pre-releases as packaging allows them); a wheel wins
    over an sdist of the same release."""
    releases = releases_of(source.name, links)
    allowed = set(source.requirement.specifier.filter(releases))
    return sorted(((v, releases[v]) for v in allowed), key=lambda item: item[0], reverse=True)


@dataclass(frozen=True)
class Mirror:
    """Where a links page's releases are fetched from, and the page itself (named in messages)."""

    models_url: str  # SPACY_MODELS_URL: GitHub's release URLs are rewritten onto it
    models_index: str  # SPACY_MODELS_INDEX: its user-info goes with its own files
    page: Path

    def source(self, link: ModelLink, where: str) -> WheelSource:
        """Where to fetch a links-page wheel: through the mirror, with the team index's credentials if it is there."""
        url = mirror_url(link.url, self.models_url)
        index = urllib.parse.urlsplit(self.models_index)
        parts = urllib.parse.urlsplit(url)
        if index.username and (parts.scheme, parts.netloc) == (index.scheme, index.netloc.rpartition("@")[2]):
            url = urllib.parse.urlunsplit(parts._replace(netloc=index.netloc))
        return WheelSource(url, link.sha256, f"{where} ({link.filename})")


class StaleLinksError(UserError):
    """The lock pins a release the links page does not list: the page is older than the lock."""


def checked(wheel: ModelWheel, source: RangeSource) -> ModelWheel:
    """What the links page pointed at must be this model, in range (the page's file names are not trusted)."""
    if wheel.name != source.name or not source.requirement.specifier.contains(wheel.version, prereleases=True):
        raise UserError(
            f"{source.where}: the links page's file for {source.display_name} is {wheel.pin}, which is not in "
            f"{source.requirement}; nothing was kept. Check SPACY_MODELS_API / SPACY_MODELS_INDEX"
        )
    return wheel


def locked_release(
    source: RangeSource, locked: dict[NormalizedName, tuple[str, str]], upgrade: bool
) -> tuple[str, Expected] | None:
    """The version requirements.txt locks for a ranged model, and its file's hash: kept while in range, until
    make upgrade."""
    pinned = locked.get(source.name)
    if upgrade or not pinned or not source.requirement.specifier.contains(pinned[0], prereleases=True):
        return None
    return pinned[0], Expected(pinned[1], "requirements.txt", "run make upgrade to lock a new file")


def pinned_wheel(
    fetcher: Fetcher, source: RangeSource, locked: dict[NormalizedName, tuple[str, str]], upgrade: bool
) -> ModelWheel | None:
    """The locked release of a ranged model from build/ or the machine's store, by its hash: no page needed."""
    if (release := locked_release(source, locked, upgrade)) is None:
        return None
    version, expected = Version(release[0]), release[1]
    present = wheels_in_build(fetcher.build).get((source.name, version))
    if present is not None:
        fetcher.check_hash(present, expected, f"build/{present.name}")
        return checked(read_model_wheel(present), source)
    if fetcher.store.get(expected.sha256) is None:
        return None
    target = fetcher.store.link(expected.sha256, fetcher.build / wheel_filename(source.display_name, version))
    return checked(read_model_wheel(target), source)


def resolve_range(
    fetcher: Fetcher,
    mirror: Mirror,
    source: RangeSource,
    links: list[ModelLink],
    locked: dict[NormalizedName, tuple[str, str]],
    upgrade: bool,
    misfit: Callable[[ModelWheel], str | None],
) -> ModelWheel:
    """The wheel of a ranged model in build/: the locked release while in range, else the newest that fits."""
    requirement = source.requirement
    found = candidates(source, links)
    if not found:
        known = [str(version) for version in sorted(releases_of(source.name, links))]
        where_from = "SPACY_MODELS_INDEX" if mirror.models_index else "SPACY_MODELS_API"
        if not known:
            raise UserError(
                f"{source.where}: {source.name} is not on the links page ({mirror.page}): check the name, "
                f"point {where_from} at where it is published, or run make links to refresh the list"
            )
        raise UserError(
            f"{source.where}: no release of {source.name} is in {requirement.specifier} "
            f"(there are {', '.join(known)}): widen the range"
        )
    if release := locked_release(source, locked, upgrade):
        link = next((link for version, link in found if str(version) == release[0]), None)
        if link is None:
            raise StaleLinksError(
                f"{source.where}: requirements.txt locks {source.name} {release[0]}, which the links page "
                f"({mirror.page}) does not list: run make links to refresh it"
            )
        return checked(fetcher.wheel(mirror.source(link, source.where), release[1]), source)
    refused = []
    for _, link in found[:MAX_TRIES]:
        offered = link.sha256 if link.filename.endswith(".whl") else None  # an sdist's is checked as it downloads
        listed = Expected(offered, "the digest the links page gives", "run make links") if offered else None
        wheel = checked(fetcher.wheel(mirror.source(link, source.where), listed), source)
        reason = misfit(wheel)
        if reason is None:
            return wheel
        wheel.path.unlink()  # refused: not left in build/ under its name (the machine's cache keeps it)
        print(f"models: skipped {wheel.pin}: {reason}", flush=True)
        refused.append(f"{wheel.pin} ({reason})")
    raise UserError(
        f"{source.where}: {requirement} allows {', '.join(str(v) for v, _ in found)}, but none of the newest "
        f"fits: {'; '.join(refused)}. Narrow the range to releases built for the project's spaCy, or change spaCy"
    )

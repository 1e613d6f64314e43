"""The project's spaCy models: loaded on first use, once per process.

Models are Python packages installed by `make install` (from the wheels that
`make models` downloaded into build/); nothing is downloaded at run time.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language


class ModelNotInstalledError(LookupError):
    """A model that is not installed in this environment."""


def installed_models() -> list[str]:
    """Names of the spaCy model packages installed here, sorted."""
    return sorted({entry.name for entry in metadata.entry_points(group="spacy_models")})


@cache
def load(name: str) -> Language:
    """Load a model the first time it is asked for; later calls return the same object."""
    if name not in installed_models():
        installed = ", ".join(installed_models()) or "none"
        raise ModelNotInstalledError(
            f"spaCy model {name!r} is not installed (installed: {installed}). "
            f"List its wheel URL in requirements-model.in.url and run `make install`."
        )
    import spacy  # imported here so that importing this module stays cheap

    return spacy.load(name)

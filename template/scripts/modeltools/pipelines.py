"""Your own pipelines: pipelines/<dir>/ packaged with `spacy package` into build/ (make package)."""

from __future__ import annotations

from modeltools.settings import Settings
from modeltools.wheels import ModelWheel


def packaged(settings: Settings) -> list[ModelWheel]:
    """The packaged wheel of every pipeline under pipelines/ (none yet)."""
    return []

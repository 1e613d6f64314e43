"""The project's spaCy models: loaded on first use, once per process.

Models are Python packages installed by `make install` (from the wheels that
`make models` downloaded into build/). When the project has the runtime
self-install (its `models` module) and NLP_MODELS_AUTO_INSTALL=1 is set,
`load` first installs the locked version of a missing model; otherwise nothing
is downloaded at run time.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language

AUTO_INSTALL = "NLP_MODELS_AUTO_INSTALL"
_RUNTIME_INSTALLER = f"{__package__}.models"


class ModelNotInstalledError(LookupError):
    """A model that is not installed in this environment."""


def env_flag(name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether an environment variable is switched on: 1, true, yes or on."""
    return environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def installed_models() -> list[str]:
    """Names of the spaCy model packages installed here, sorted."""
    return sorted({entry.name for entry in metadata.entry_points(group="spacy_models")})


def _runtime_installer() -> ModuleType | None:
    """The runtime self-install module, when the project has it and NLP_MODELS_AUTO_INSTALL is on."""
    if not env_flag(AUTO_INSTALL) or importlib.util.find_spec(_RUNTIME_INSTALLER) is None:
        return None
    return importlib.import_module(_RUNTIME_INSTALLER)


@cache
def load(name: str) -> Language:
    """Load a model the first time it is asked for; later calls return the same object."""
    if (installer := _runtime_installer()) is not None:
        installer.ensure(name)
    if name not in installed_models():
        installed = ", ".join(installed_models()) or "none"
        can_self_install = importlib.util.find_spec(_RUNTIME_INSTALLER) is not None
        hint = f", or set {AUTO_INSTALL}=1 to install the locked version at first use" if can_self_install else ""
        raise ModelNotInstalledError(
            f"spaCy model {name!r} is not installed (installed: {installed}). "
            f"List its wheel URL in requirements-model.in.url and run `make install`{hint}."
        )
    import spacy  # imported here so that importing this module stays cheap

    return spacy.load(name)

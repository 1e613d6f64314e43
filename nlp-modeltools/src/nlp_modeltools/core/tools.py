"""What a step that runs an outside tool (pip, uv, pip-compile, the engine) is given: a value, passed down.

The environment is read once, at the top (config.py); lower modules get a Tools
and never read os.environ themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nlp_modeltools.core.redact import Redactor

TRUE = ("1", "yes", "true", "on")
# Where pip and uv look for packages: never given to an install, handed to a resolver, a build secret.
SOURCE_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL",
                    "UV_FIND_LINKS", "UV_INDEX", "UV_DEFAULT_INDEX")  # fmt: skip


def is_true(value: str | None) -> bool:
    """An environment flag as make and the README spell it: 1, yes, true or on (any case)."""
    return (value or "").strip().lower() in TRUE


@dataclass(frozen=True)
class Tools:
    """The environment a tool runs in, what to hide in what it prints, and whether the network may be used."""

    environ: Mapping[str, str] = field(default_factory=dict)
    redact: Redactor = field(default_factory=Redactor)
    offline: bool = False

    @staticmethod
    def program(name: str) -> str:
        """A program of the environment this engine runs in (python, uv), as an absolute path.

        "python" is its own interpreter; the others sit beside it (a venv's bin/, where pip put them).
        """
        here = Path(sys.executable).absolute()  # not resolve(): a venv python is a symlink
        return str(here if name == "python" else here.parent / name)

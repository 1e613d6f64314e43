"""make sbom: build/sbom.cdx.json, a CycloneDX SBOM of the lock by cyclonedx-py ($(TOOLS)/envs/cyclonedx).

Every package with its version and each locked file's sha256; no serial number or time (the same lock, the
same bytes). A model never comes from an index: its entry names the URL its wheel came from, credentials cut.
"""

from __future__ import annotations

import json

from nlp_modeltools.config import Settings
from nlp_modeltools.core.files import project_lock
from nlp_modeltools.ship import sbom as writer


def sbom(settings: Settings) -> None:
    paths = settings.paths
    with project_lock(paths.build):
        records = settings.models()
        dest = writer.dest_for(paths.lock, paths.lock, paths.build)
        path = writer.write(paths.lock, dest, records, settings.tools / "envs", settings.run)
    count = len(json.loads(path.read_text()).get("components", []))
    print(f"sbom: {path.relative_to(paths.root)}: {count} packages, each with its version and sha256")

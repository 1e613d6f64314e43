"""make sbom: build/sbom.cdx.json, a CycloneDX SBOM of the lock by cyclonedx-py ($(TOOLS)/envs/cyclonedx).

Every package with its version and each locked file's sha256; no serial number or time (the same lock, the
same bytes). A model never comes from an index: its entry names the URL its wheel came from, credentials cut.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from packaging.utils import canonicalize_name

from nlp_modeltools.core.errors import run_tool
from nlp_modeltools.core.files import write_atomic
from nlp_modeltools.core.paths import LOCKS
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.lock import lockfile
from nlp_modeltools.models.manifest import ModelRecord
from nlp_modeltools.ship.envs import job_env

INPUTS = "nlp-template:inputs"


def dest_for(requirements: Path, lock: Path, build: Path) -> Path:
    """build/sbom.cdx.json for requirements.txt; an image's lock gets one beside it."""
    return build / "sbom.cdx.json" if requirements == lock else requirements.with_name("sbom.cdx.json")


def write(requirements: Path, dest: Path, records: list[ModelRecord], envs: Path, tools: Tools) -> Path:
    """dest: the SBOM of the lock requirements (models: the manifest's records, for their URLs), written again
    only when its inputs changed. cyclonedx-py runs from envs/cyclonedx (locks/sbom.txt, by hash); raises
    UserError with its reason."""
    locked = {e.name for e in lockfile.parse(requirements.read_text()).entries if e.is_model}
    urls = {r.key: r.url for r in records if r.url and r.key in locked}  # the manifest's URLs have no user-info
    tool = LOCKS / "sbom.txt"
    digest = hashlib.sha256(requirements.read_bytes() + tool.read_bytes() + repr(sorted(urls.items())).encode())
    inputs = {"name": INPUTS, "value": digest.hexdigest()}
    if dest.is_file() and inputs in json.loads(dest.read_text())["metadata"].get("properties", []):
        return dest
    draft = dest.with_name(f".{dest.name}.draft")
    env = {k: v for k, v in tools.environ.items() if k != "SOURCE_DATE_EPOCH"}
    with job_env(envs, tools, "cyclonedx", tool, job="make sbom", locked=True) as python:
        run_tool([str(python), "-m", "cyclonedx_py", "requirements", "--output-reproducible", "--output-file",
                  str(draft), str(requirements)], what="cyclonedx-py", quiet=True, redact=tools.redact,
                 fix="See its message above", env=env)  # fmt: skip
    bom = json.loads(draft.read_text())
    draft.unlink()
    for component in bom.get("components", []):
        name = canonicalize_name(component["name"])
        if name in locked:  # its index page (a same-named package) is not where it came from
            component["hashes"] = [h for ref in component.pop("externalReferences", []) for h in ref.get("hashes", [])]
            component["purl"] = f"pkg:generic/{component['name']}@{component['version']}"
            if name in urls:
                component["externalReferences"] = [{"type": "distribution", "url": urls[name]}]
    bom["metadata"].setdefault("properties", []).append(inputs)
    write_atomic(dest, json.dumps(bom, indent=2, sort_keys=True) + "\n")
    return dest

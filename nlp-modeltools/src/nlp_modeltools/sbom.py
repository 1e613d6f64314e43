"""make sbom: build/sbom.cdx.json, a CycloneDX SBOM of the lock by cyclonedx-py ($(TOOLS)/envs/cyclonedx).

Every package with its version and each locked file's sha256; no serial number or time (the same lock, the
same bytes). A model never comes from an index: its entry names the URL its wheel came from, credentials cut.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from packaging.utils import canonicalize_name

from nlp_modeltools import collect, envs, lockfile
from nlp_modeltools.errors import run_tool
from nlp_modeltools.files import project_lock, write_atomic
from nlp_modeltools.http import without_userinfo
from nlp_modeltools.settings import Settings

INPUTS = "nlp-template:inputs"
LOCKS = Path(__file__).parent / "locks"  # the package's own hash locks of the venvs its verbs run


def sbom(settings: Settings) -> None:
    with project_lock(settings.paths.build):
        path = write(settings, settings.paths.lock, collect.collect_models(settings))
    count = len(json.loads(path.read_text()).get("components", []))
    print(f"sbom: {path.relative_to(settings.paths.root)}: {count} packages, each with its version and sha256")


def write(settings: Settings, requirements: Path, models: list[collect.Model]) -> Path:
    """The SBOM of one lock (build/sbom.cdx.json for requirements.txt), written again only when its inputs changed."""
    paths = settings.paths
    dest = paths.build / "sbom.cdx.json" if requirements == paths.lock else requirements.with_name("sbom.cdx.json")
    locked = {e.name for e in lockfile.parse(requirements.read_text()).entries if e.is_model}
    urls = {m.wheel.name: without_userinfo(m.url, keep_query=False) for m in models if m.url and m.wheel.name in locked}
    tool = LOCKS / "sbom.txt"
    digest = hashlib.sha256(requirements.read_bytes() + tool.read_bytes() + repr(sorted(urls.items())).encode())
    inputs = {"name": INPUTS, "value": digest.hexdigest()}
    if dest.is_file() and inputs in json.loads(dest.read_text())["metadata"].get("properties", []):
        return dest
    python = envs.job_env(settings, "cyclonedx", tool, job="make sbom", locked=True)
    draft = dest.with_name(f".{dest.name}.draft")
    run_tool([str(python), "-m", "cyclonedx_py", "requirements", "--output-reproducible", "--output-file", str(draft),
              str(requirements)], what="cyclonedx-py", quiet=True, redact=settings.redact, fix="See its message above",
             env={k: v for k, v in settings.environ.items() if k != "SOURCE_DATE_EPOCH"})  # fmt: skip
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

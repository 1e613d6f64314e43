"""make sbom: a CycloneDX SBOM of the lock, valid by CycloneDX's own schema, carried by the image.

Every pin of requirements.txt is in it with each of its hashes; a model names
the URL its wheel came from (never a credential) instead of a package index;
the image holds the same file, and a label with its sha256.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.utils import canonicalize_name

from tests.conftest import FAST, Built
from tests.support.mirror import Mirror
from tests.support.project import make
from tests.test_docker import run

TOKEN = "FAKE-SBOM-TOKEN-d41f"
MODEL_FILE = "en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl"


def pins(lock: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, sha256 hashes) of each entry of a lock."""
    found = {}
    for match in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", lock, re.M):
        found[canonicalize_name(match[1])] = (match[2], set(re.findall(r"sha256:([0-9a-f]{64})", match[3])))
    return found


def hashes(component: dict) -> set[str]:
    listed = [
        *component.get("hashes", []),
        *(h for r in component.get("externalReferences", []) for h in r.get("hashes", [])),
    ]
    return {h["content"] for h in listed if h["alg"] == "SHA-256"}


def read_sbom(project: Path) -> tuple[str, dict[str, dict]]:
    text = (project / "build" / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    return text, {canonicalize_name(c["name"]): c for c in json.loads(text)["components"]}


@pytest.mark.container
def test_the_sbom_lists_every_pin_with_its_hashes_and_the_image_carries_it(
    built: Built, engine: str, mirror: Mirror
) -> None:
    result = make(built.project, "sbom")
    text, components = read_sbom(built.project)
    locked = pins((built.project / "requirements.txt").read_text())
    assert len(locked) > 40 and f"sbom: build/sbom.cdx.json: {len(locked)} packages" in result.stdout
    for name, (version, sha256) in locked.items():
        assert components[name]["version"] == version, name
        assert sha256 and sha256 <= hashes(components[name]), name
    model = components["en-core-web-sm"]
    assert model["purl"] == "pkg:generic/en_core_web_sm@3.8.0"
    assert [r["url"] for r in model["externalReferences"]] == [f"{mirror.download_base}/{MODEL_FILE}"]

    inside = run(engine, "run", "--rm", "--entrypoint", "cat", built.image, "/app/sbom.cdx.json").stdout
    assert inside == text
    labels = json.loads(run(engine, "image", "inspect", built.image).stdout)[0]["Config"]["Labels"]
    assert labels["nlp-template.sbom.sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_a_model_url_with_credentials_is_named_without_them(project: Path, mirror: Mirror) -> None:
    url = f"{mirror.download_base}/{MODEL_FILE}".replace("://", f"://ci:{TOKEN}@")
    (project / "requirements-model.in.url").write_text(f"{url}?token={TOKEN}\n")
    result = make(project, "sbom", env=FAST)
    text, components = read_sbom(project)
    assert TOKEN not in text and TOKEN not in result.output
    assert [r["url"] for r in components["en-core-web-sm"]["externalReferences"]] == [
        f"{mirror.download_base}/{MODEL_FILE}"
    ]

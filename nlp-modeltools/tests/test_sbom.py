"""ship/sbom.py: where an SBOM goes."""

from __future__ import annotations

from pathlib import Path

from nlp_modeltools.ship.sbom import dest_for


def test_the_project_s_lock_gets_build_sbom_and_an_image_s_lock_one_beside_it() -> None:
    root = Path("/p")
    assert (
        dest_for(root / "requirements.txt", root / "requirements.txt", root / "build")
        == root / "build" / "sbom.cdx.json"
    )
    image_lock = root / "build" / "image" / "linux-arm64-py3.12" / "requirements.txt"
    assert dest_for(image_lock, root / "requirements.txt", root / "build") == image_lock.with_name("sbom.cdx.json")

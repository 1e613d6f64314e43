"""Images for the image's platform and Python, not the host's: the wheelhouse is resolved and fetched for them.

No engine is needed to check what an image would get: `make wheelhouse PLATFORM=… IMAGE_PYTHON=…`
makes and verifies the wheelhouse `make docker` builds from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from tests.conftest import FAST
from tests.support.project import make


@pytest.mark.parametrize(
    ("platform", "python", "machine"),
    [("linux/arm64", "3.11", "aarch64"), ("linux/amd64", "3.12", "x86_64")],
    ids=["arm64", "python3.12"],
)
def test_the_image_wheelhouse_fits_the_image(project: Path, platform: str, python: str, machine: str) -> None:
    make(project, "wheelhouse", env=FAST)
    host_wheels = sorted(p.name for p in (project / "build" / "wheels").glob("*.whl"))
    settings = [f"PLATFORM={platform}", f"IMAGE_PYTHON={python}"]
    make(project, "wheelhouse", *settings, env=FAST)

    directory = project / "build" / "image" / f"{platform.replace('/', '-')}-py{python}"
    lock = (directory / "requirements.txt").read_text()
    wheels = sorted((directory / "wheels").glob("*.whl"))
    assert len(wheels) == len([line for line in lock.splitlines() if line[:1].isalnum()])
    cpython = f"cp{python.replace('.', '')}"
    for wheel in wheels:
        tags = parse_wheel_filename(wheel.name)[3]
        assert any(tag.platform == "any" or machine in tag.platform for tag in tags), wheel.name
        assert any(tag.interpreter in ("py3", "py2.py3", cpython) or tag.abi == "abi3" for tag in tags), wheel.name
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() in lock, f"{wheel.name} is not the locked file"
    model = directory / "wheels" / "en_core_web_sm-3.8.0-py3-none-any.whl"
    assert model.read_bytes() == (project / "build" / "en_core_web_sm-3.8.0-py3-none-any.whl").read_bytes()
    assert "# Models:" in lock and "file:" not in lock
    assert sorted(p.name for p in (project / "build" / "wheels").glob("*.whl")) == host_wheels, "kept apart"

    again = make(project, "wheelhouse", *settings, env=FAST)
    assert "downloading" not in again.stdout and "uv pip compile" not in again.stdout


def test_an_unsupported_platform_is_named(project: Path) -> None:
    result = make(project, "docker", "PLATFORM=windows/amd64", env=FAST, check=False)
    assert result.returncode != 0
    assert "PLATFORM=windows/amd64 is not supported: use linux/amd64 or linux/arm64" in result.stderr

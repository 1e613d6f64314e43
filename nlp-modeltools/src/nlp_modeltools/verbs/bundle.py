"""make bundle: an offline install kit for one target (PLATFORM and IMAGE_PYTHON; default this machine).

build/bundle/<slug>-<platform>-py<version>.tar.gz holds wheels/ (every file the target installs, models
included, each by hash), the target's requirements.txt (its pins, each with its file's hash), pylock.toml
(PEP 751, written with packaging.pylock and validated before it is written: each wheel by relative path,
size and sha256, models marked in [packages.tool.nlp-template]), SHA256SUMS and install.sh. The archive is
reproducible: sorted entries, fixed times and owners, a gzip header without a time or name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import tomli_w
from packaging.pylock import Package, PackageWheel, Pylock, PylockValidationError
from packaging.version import Version

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import ZIP_EPOCH, project_lock, replace_atomic
from nlp_modeltools.core.platforms import ImageTarget
from nlp_modeltools.core.redact import mask
from nlp_modeltools.lock import lockfile
from nlp_modeltools.models.manifest import ModelRecord, by_key
from nlp_modeltools.ship import targets, wheelhouse


def bundle(settings: Settings) -> None:
    settings.require_files("bundle", "scripts/install-bundle.sh")
    target = settings.image_target()
    paths = settings.paths
    with project_lock(paths.build):
        lock, text = lockfile.read_required(paths.lock)
        records = settings.models()
        _, lock, wheels = targets.target_wheelhouse(settings.resolver, target, lock, text, records)
        files = kit(settings, lock, wheels, target, by_key(records))
        leaked = [name for name, value in settings.secrets for data in files.values()
                  if isinstance(data, bytes) and value.encode() in data]  # fmt: skip
        if leaked:
            raise UserError(f"the kit would carry the value of {leaked[0]} from .env; nothing was written")
        archive = paths.build / "bundle" / f"{settings.get('SLUG', 'project')}-{target.key}.tar.gz"
        replace_atomic(archive, lambda temporary: write_tar(temporary, files))
    size = archive.stat().st_size / 1e6
    count = sum(name.startswith("wheels/") for name in files)
    print(f"bundle: {archive} ({size:.1f} MB, {count} wheels): unpack it on the target, then sh install.sh")


def kit(
    settings: Settings, lock: lockfile.Lock, wheels: Path, target: ImageTarget, models: dict[str, ModelRecord]
) -> dict[str, bytes | Path]:
    """Archive name -> content: the target's wheels, requirements.txt, pylock.toml, install.sh, SHA256SUMS."""
    house = wheelhouse.Wheelhouse(wheels, settings.hashes)
    environment = target.marker_environment()
    files: dict[str, bytes | Path] = {}
    entries, packages = [], []
    for entry in (e for e in lock.entries if wheelhouse.applies(e, environment)):
        path = house.find(entry)
        if path is None:
            raise UserError(f"{wheels}/ lacks the locked file of {entry.requirement}: run make wheelhouse")
        sha256 = settings.hashes.sha256(path)
        files[f"wheels/{path.name}"] = path
        entries.append(lockfile.LockEntry(entry.requirement, [f"sha256:{sha256}"], entry.via))
        model = models.get(entry.name)
        tool = {"nlp-template": {"model": True, "source": mask(model.url or "build/")}} if model else None
        size = path.stat().st_size
        wheel = PackageWheel(name=path.name, path=f"wheels/{path.name}", size=size, hashes={"sha256": sha256})
        packages.append(Package(name=entry.name, version=Version(entry.version), wheels=[wheel], tool=tool))
    pylock = Pylock(lock_version=Version("1.0"), created_by="nlp-template (make bundle)", packages=packages)
    try:
        Pylock.from_dict(pylock.to_dict())  # the PEP 751 rules, checked before anything is written
    except PylockValidationError as error:
        raise UserError(f"the kit's pylock.toml would not be valid ({error}); nothing was written") from None
    header = [
        f"# {settings.get('SLUG')}'s packages for {target.platform}, Python {target.python_version}: sh install.sh"
    ]
    files["requirements.txt"] = lockfile.Lock(header, entries).render().encode()
    files["pylock.toml"] = tomli_w.dumps(pylock.to_dict()).encode()
    files["install.sh"] = (settings.paths.root / "scripts" / "install-bundle.sh").read_bytes()
    sums = [f"{sha256_bytes(files[name])}  {name}\n" for name in sorted(files)]
    files["SHA256SUMS"] = "".join(sums).encode()
    return files


def sha256_bytes(data: bytes | Path) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.read_bytes()).hexdigest()


def write_tar(path: Path, files: dict[str, bytes | Path]) -> None:
    """A tar.gz whose bytes depend on the files alone: sorted, 1980-01-01, root-owned, no gzip time or name."""
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as archive:
            for name in sorted(files):
                content = files[name]
                data = content if isinstance(content, bytes) else content.read_bytes()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = ZIP_EPOCH
                info.mode = 0o755 if name.endswith(".sh") else 0o644
                archive.addfile(info, io.BytesIO(data))

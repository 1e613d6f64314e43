"""A container engine for the tests, and a base image made without any registry.

No registry is reachable from these machines, so the base image is made with
debootstrap from the Debian mirror apt already uses (read from the machine's
apt sources, never written down here), imported as localhost/nlp-base:bookworm,
and kept between runs: the engine's image store holds it, and its root
filesystem tarball is cached under build/test-cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from tests.support.wheels import CACHE_DIR, cache_lock

BASE_IMAGE = "localhost/nlp-base:bookworm"
SUITE = "bookworm"
# Machine-level podman settings these hosts need (hybrid cgroups, rlimits); see
# ENVIRONMENT.md. They go in a containers.conf, never into the generated Makefile.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
"""


def engine_works(engine: str) -> bool:
    if shutil.which(engine) is None:
        return False
    return subprocess.run([engine, "info"], capture_output=True, timeout=60).returncode == 0


def find_engine() -> str | None:
    """CONTAINER_ENGINE if set, else podman, else a docker whose daemon answers."""
    requested = os.environ.get("CONTAINER_ENGINE")
    candidates = [requested] if requested else ["podman", "docker"]
    return next((engine for engine in candidates if engine_works(engine)), None)


def configure_podman(conf_dir: Path) -> None:
    if "CONTAINERS_CONF" not in os.environ:
        conf_dir.mkdir(parents=True, exist_ok=True)
        conf = conf_dir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        os.environ["CONTAINERS_CONF"] = str(conf)


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The URI apt uses for the Debian suite, from sources.list or deb822 *.sources files."""
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text()
        for match in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", text, re.MULTILINE):
            return match.group(1)
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w+):\s*(.+)$", stanza, re.MULTILINE))
            if SUITE in fields.get("Suites", "").split() and "security" not in fields.get("URIs", ""):
                return fields["URIs"].split()[0]
    raise RuntimeError(f"no apt source for Debian {SUITE} in {sources}: cannot debootstrap a base image")


def remove_image(engine: str, image: str) -> None:
    """Remove a test image and the build layers it leaves behind: each build holds the wheelhouse and a venv,
    and the model layers below it (localhost/spacy-models, kept while another image is built on them)."""
    subprocess.run([engine, "rmi", "--force", image], capture_output=True)
    listed = [engine, "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/spacy-models"]
    for found in subprocess.run(listed, capture_output=True, text=True).stdout.split():
        subprocess.run([engine, "rmi", found], capture_output=True)
    subprocess.run([engine, "image", "prune", "--force"], capture_output=True)


# What Debian's slim images leave out (dpkg path-exclude: documentation but each package's copyright, man pages,
# translations) and what every official image removes (apt's lists): a third of the root filesystem, which every
# engine would load, snapshot, save and push with each base. BASE_LAYOUT names this choice: the cached files and the
# image's label carry it, so a change of it makes them again.
SLIM_EXCLUDES = ("var/lib/apt/lists", "var/cache/apt", "usr/share/man", "usr/share/info", "usr/share/locale")
BASE_LAYOUT = "slim-1"
BASE_LABEL = "org.nlp-template.test-base"


def base_rootfs_tarball() -> Path:
    """CACHE_DIR/nlp-base-bookworm-<BASE_LAYOUT>.tar: a debootstrapped minbase root filesystem, python3 and venv.

    Made once (~1 min, ~150 MB) from the Debian mirror apt uses, then kept between runs; written atomically,
    so an interrupted run leaves no half tarball. Slim as Debian's slim images are (SLIM_EXCLUDES removed, and
    /usr/share/doc but each package's copyright). Raises CalledProcessError if debootstrap fails.
    """
    tarball = CACHE_DIR / f"nlp-base-{SUITE}-{BASE_LAYOUT}.tar"
    if not tarball.exists():
        with tempfile.TemporaryDirectory(dir=CACHE_DIR.parent if CACHE_DIR.parent.exists() else None) as work:
            rootfs = Path(work) / "rootfs"
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip",
                 SUITE, str(rootfs), debian_mirror()],
                check=True, capture_output=True,
            )  # fmt: skip
            documentation = [package for package in (rootfs / "usr/share/doc").iterdir() if not package.is_symlink()]
            removed = [entry for package in documentation if package.is_dir() for entry in package.iterdir()
                       if entry.name != "copyright"]  # fmt: skip
            for excluded in SLIM_EXCLUDES:
                removed += (rootfs / excluded).glob("*")
            for entry in removed:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            tarball.parent.mkdir(parents=True, exist_ok=True)
            partial = tarball.with_suffix(f".{os.getpid()}.part")  # two runs at once do not share one
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
    return tarball


def base_image_archive() -> Path:
    """CACHE_DIR/nlp-base-bookworm-<BASE_LAYOUT>.image.tar: the root filesystem as a docker-archive image.

    Every engine that loads it (`load`, podman or docker, either store) gets the same image, config digest
    included, as every machine pulling one base image by digest does; `import` would date each copy. The
    cached files of another BASE_LAYOUT are removed once this one's are made.
    """
    archive = CACHE_DIR / f"nlp-base-{SUITE}-{BASE_LAYOUT}.image.tar"
    with cache_lock("base-image"):  # both engines' groups want it; one debootstrap
        if not archive.exists():
            rootfs = base_rootfs_tarball()
            _write_archive(archive, rootfs)
            for stale in set(CACHE_DIR.glob(f"nlp-base-{SUITE}*.tar")) - {rootfs, archive}:
                stale.unlink()
    return archive


def _write_archive(archive: Path, rootfs: Path) -> None:
    digest = hashlib.sha256()
    with rootfs.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    config = {
        "architecture": "amd64", "os": "linux", "created": "1980-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["bash"],
                   "Labels": {BASE_LABEL: BASE_LAYOUT}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]},
        "history": [{"created": "1980-01-01T00:00:00Z", "created_by": f"debootstrap --variant=minbase {SUITE}"}],
    }  # fmt: skip
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [BASE_IMAGE], "Layers": ["layer.tar"]}]).encode()
    partial = archive.with_suffix(f".{os.getpid()}.part")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as out:
        for name, data in ((config_name, config_bytes), ("manifest.json", manifest)):
            entry = tarfile.TarInfo(name)
            entry.size, entry.mtime = len(data), 315532800
            out.addfile(entry, io.BytesIO(data))
        out.add(rootfs, arcname="layer.tar")
    partial.rename(archive)


def ensure_base_image(engine: str) -> str:
    """localhost/nlp-base:bookworm with python3 and venv: loaded from cache, or debootstrapped once. An image of
    that name without this BASE_LAYOUT's label (an older root filesystem) is replaced; one with it is kept, whichever
    checkout's archive it came from (two debootstraps are not the same bytes, and the engine's store is shared)."""
    found = subprocess.run([engine, "image", "inspect", "--format", "{{json .Config.Labels}}", BASE_IMAGE],
                           capture_output=True, text=True)  # fmt: skip
    if found.returncode == 0 and (json.loads(found.stdout or "null") or {}).get(BASE_LABEL) == BASE_LAYOUT:
        return BASE_IMAGE
    archive = base_image_archive()
    subprocess.run([engine, "load", "--input", str(archive)], check=True, capture_output=True)
    return BASE_IMAGE

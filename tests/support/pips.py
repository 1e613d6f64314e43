"""Old pips, as the Pythons that bundle them make venvs, and small wheels with extras.

Python's bundled pip differs by release (3.10.0: 21.2.3; 3.11.0: 22.3; 3.11.7: 23.2.1). A
wrapper named like an interpreter stands in for such a Python: it runs this one, and the venvs it
makes (`-m venv DIR`) get the old pip, exactly as `python -m venv` would have put it there.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.wheels import CACHE_DIR, cache_lock

# The oldest pip each part supports (the README says so): the one Python 3.10.0 bundles
# for a generated project, and the one Python 3.11.0 bundles for this repository's dev venv.
OLDEST_PROJECT_PIP = "21.2.3"
OLDEST_DEV_PIP = "22.3"


def pip_wheel(version: str) -> Path:
    """pip's own wheel of that version, downloaded once per machine into the test cache."""
    directory = CACHE_DIR / "pips"
    wheel = directory / f"pip-{version}-py3-none-any.whl"
    with cache_lock("pips"):
        if not wheel.is_file():
            directory.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest",
                            str(directory), f"pip=={version}"], check=True)  # fmt: skip
    return wheel


def python_bundling_pip(version: str, directory: Path) -> Path:
    """An interpreter (this one) whose new venvs hold pip `version`, as if Python bundled it."""
    wheel = pip_wheel(version)
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -m ] && [ "$2" = venv ]; then\n'
        f'  shift 2; {sys.executable} -m venv --without-pip "$@" || exit\n'
        f"  for d; do case $d in -*) ;; *) venv=$d ;; esac; done\n"
        f'  exec "$venv/bin/python" {wheel}/pip install --quiet --no-index --disable-pip-version-check {wheel}\n'
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def write_wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = (),
                extras: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """A minimal pure wheel (PEP 427) with the given Requires-Dist and Provides-Extra lines."""
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Provides-Extra: {extra}\n" for extra in extras)
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    files = {
        f"{name}/__init__.py": "",
        f"{dist}/METADATA": metadata,
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},sha256={_b64(text)},{len(text)}\n" for path, text in files.items())
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), text)
    return wheel


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def extra_trap(links: Path) -> str:
    """A find-links directory where an extra's base package has a newer release than the lock pins.

    needs-extra 1.0 requires extra-base[http]>=1.0; the lock pins extra-base 1.0, the directory also
    holds 2.0. pip 23.2 resolves the extra against 2.0 and refuses it unless nothing is resolved.
    Returns the complete lock, every line with its hash.
    """
    lines = []
    for name, version, requires, extras in [("extra_base", "1.0", ('six; extra == "http"',), ("http",)),
                                            ("needs_extra", "1.0", ("extra-base[http]>=1.0",), ()),
                                            ("six", "1.0", (), ())]:  # fmt: skip
        wheel = write_wheel(links, name, version, requires, extras)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{name.replace('_', '-')}=={version} --hash=sha256:{digest}\n")
    write_wheel(links, "extra_base", "2.0", ('six; extra == "http"',), ("http",))
    return "".join(lines)


def index_env(links: Path) -> dict[str, str]:
    """pip's settings for a machine whose only package source is the directory links."""
    return {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links)}

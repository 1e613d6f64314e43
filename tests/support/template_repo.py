"""The template as a git repository of its own, for tests that tag versions or change copier.yml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from copier import run_copy

from tests.support.project import REPO


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, text=True).stdout


def git_save(path: Path, message: str, tag: str | None = None) -> None:
    """Commit everything in path (a new repository if need be), and tag it."""
    if not (path / ".git").exists():
        git(path, "init", "--quiet")
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "--allow-empty", "-m", message)
    if tag:
        git(path, "tag", tag)


def clone_worktree(dst: Path) -> Path:
    """This checkout's working tree (uncommitted work included) as a fresh git repository, not yet committed."""
    listed = git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)
    git(dst, "init", "--quiet")
    return dst


def tagged_worktree(dst: Path, tag: str = "v1") -> Path:
    """clone_worktree, committed and tagged: a released version of the template."""
    template = clone_worktree(dst)
    git_save(template, tag, tag=tag)
    return template


def copy_and_commit(template: Path, project: Path, **answers: object) -> Path:
    """copier copy of the template's newest tag (tasks run), committed as the user's first version."""
    run_copy(str(template), project, data=answers, defaults=True, unsafe=True, quiet=True)
    git_save(project, "rendered")
    return project


def strip_validators(template: Path) -> dict:
    """Remove every question's validator from the template's copier.yml, as a careless or old version might."""
    path = template / "copier.yml"
    config = yaml.safe_load(path.read_text())
    for spec in config.values():
        if isinstance(spec, dict):
            spec.pop("validator", None)
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return config


def load_answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())

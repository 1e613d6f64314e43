"""`copier update` between tagged versions of the template keeps the user's edits and secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from copier import run_copy, run_update

from tests.support.project import REPO


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, text=True).stdout


def git_save(path: Path, message: str, tag: str | None = None) -> None:
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "--allow-empty", "-m", message)
    if tag:
        git(path, "tag", tag)


def clone_worktree(dst: Path) -> Path:
    """This checkout's working tree (uncommitted work included) as a fresh git repository."""
    listed = git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)
    git(dst, "init", "--quiet")
    return dst


def test_update_from_v1_to_v2_keeps_user_edits(tmp_path: Path) -> None:
    template = clone_worktree(tmp_path / "template")
    git_save(template, "v1", tag="v1")
    project = tmp_path / "proj"
    run_copy(str(template), project, data={"project_name": "Updated"}, defaults=True, unsafe=True, quiet=True)
    env_text = "PRODIGY_KEY=user-secret-kept\n"
    (project / ".env").write_text(env_text)
    urls = project / "requirements-model.in.url"
    model_line = "https://models.example/en_core_web_md-3.8.0/en_core_web_md-3.8.0-py3-none-any.whl\n"
    urls.write_text(urls.read_text() + model_line)
    requirements = project / "requirements.in"
    requirements.write_text(requirements.read_text() + "rich\n")
    git_save(project, "user edits")

    (template / "template" / "NOTES.md").write_text("New in v2.\n")
    makefile = template / "template" / "Makefile.jinja"
    makefile.write_text(makefile.read_text() + "\n# v2 of the template\n")
    git_save(template, "v2", tag="v2")

    run_update(project, defaults=True, overwrite=True, unsafe=True, quiet=True)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v2" and answers["project_name"] == "Updated"
    assert (project / "NOTES.md").read_text() == "New in v2.\n"
    assert "# v2 of the template" in (project / "Makefile").read_text()
    assert requirements.read_text().endswith("rich\n")
    assert urls.read_text().endswith(model_line)
    assert (project / ".env").read_text() == env_text
    assert not list(project.rglob("*.rej"))

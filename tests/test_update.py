"""`copier update` between tagged versions of the template keeps the user's edits and secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from copier import run_update

from tests.support.mirror import Mirror
from tests.support.project import REPO, make
from tests.support.template_repo import clone_worktree, copy_and_commit, git_save, load_answers, tagged_worktree

# The last commit whose template listed ranged models in requirements.in (before requirements-model.in.range).
BEFORE_RANGE_FILE = "9e7035a"


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_update_from_v1_to_v2_keeps_user_edits(tmp_path: Path) -> None:
    template = tagged_worktree(tmp_path / "template")
    models = ["en_core_web_sm==3.8.0", "en_acme_ner>=1.0,<2"]
    project = copy_and_commit(template, tmp_path / "proj", project_name="Updated", spacy_models=models)
    env_text = "PRODIGY_KEY=user-secret-kept\n"
    (project / ".env").write_text(env_text)
    url_line = "https://models.example.com/en_core_web_md-3.8.0/en_core_web_md-3.8.0-py3-none-any.whl\n"
    append(project / "requirements-model.in.url", url_line)
    append(project / "requirements-model.in.range", "de_contracts_lg>=2.1,<3\n")
    append(project / "requirements.in", "rich\n")
    git_save(project, "user edits")

    (template / "template" / "NOTES.md").write_text("New in v2.\n")
    range_template = template / "template" / "requirements-model.in.range.jinja"
    range_template.write_text(range_template.read_text().replace("# Models by version range", "# v2: models by range"))
    append(template / "template" / ".gitignore", "# v2 of the template\n")
    git_save(template, "v2", tag="v2")

    run_update(project, defaults=True, overwrite=True, unsafe=True, quiet=True)
    saved = load_answers(project)
    assert saved["_commit"] == "v2" and saved["project_name"] == "Updated"
    assert (project / "NOTES.md").read_text() == "New in v2.\n"
    assert "# v2 of the template" in (project / ".gitignore").read_text()
    assert (project / "requirements.in").read_text().endswith("rich\n")
    assert (project / "requirements-model.in.url").read_text().endswith(url_line)
    ranges = (project / "requirements-model.in.range").read_text().splitlines()
    assert ranges[0].startswith("# v2: models by range")
    assert ranges[-2:] == ["en_acme_ner>=1.0,<2", "de_contracts_lg>=2.1,<3"]
    assert (project / ".env").read_text() == env_text
    assert not list(project.rglob("*.rej"))


def test_update_from_before_the_range_file_moves_ranged_models_out_of_requirements_in(tmp_path: Path) -> None:
    template = tmp_path / "template"
    template.mkdir()
    archive = subprocess.run(["git", "archive", BEFORE_RANGE_FILE], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(template)], input=archive, check=True)
    git_save(template, "v1", tag="v1")
    models = ["en_core_web_sm==3.8.0", "en_core_web_md>=3.8,<3.9"]
    project = copy_and_commit(template, tmp_path / "proj", spacy_models=models)
    assert "en_core_web_md>=3.8,<3.9" in (project / "requirements.in").read_text().splitlines()
    append(project / "requirements.in", "rich\n")
    git_save(project, "v1 rendered, user edits")

    for path in template.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    clone_worktree(template)
    git_save(template, "v2", tag="v2")
    run_update(project, defaults=True, overwrite=True, unsafe=True, quiet=True)

    requirements = (project / "requirements.in").read_text().splitlines()
    assert "en_core_web_md>=3.8,<3.9" not in requirements and requirements[-1] == "rich"
    assert "en_core_web_md>=3.8,<3.9" in (project / "requirements-model.in.range").read_text().splitlines()
    assert load_answers(project)["installer"] == "pip-tools"  # a new question takes its default
    assert not list(project.rglob("*.rej"))


# The last commit whose projects carried the engine as their own code (scripts/modeltools/, scripts/models.py).
BEFORE_ENGINE_PACKAGE = "a7f744c"


def test_update_to_the_engine_package_keeps_edits_and_the_lock(tmp_path: Path, mirror: Mirror, thin: Path) -> None:
    """v0.3.0 (the engine in the project) -> v0.4.0 (nlp-modeltools pinned): the old engine goes, an edited file
    is kept and named, the committed lock stays, and make install only sets up the new tools and the manifest.
    The project is made thin (thin's one model wheel, no spaCy): what moves is the engine, whatever the lock holds."""
    template = tmp_path / "template"
    template.mkdir()
    archive = subprocess.run(["git", "archive", BEFORE_ENGINE_PACKAGE], cwd=REPO, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(template)], input=archive.stdout, check=True)
    git_save(template, "v0.3.0", tag="v0.3.0")
    project = copy_and_commit(template, tmp_path / "proj", installer="uv", spacy_models_url=mirror.download_base)
    shutil.copyfile(thin / "requirements-model.in.url", project / "requirements-model.in.url")
    (project / "requirements.in").write_text("-r requirements-model.in\n")
    own_tools = ["TOOLS=build/tools"]  # each version its own tools venv, never the suite's shared one
    make(project, "install", *own_tools)
    store = project / "scripts" / "modeltools" / "store.py"
    append(store, "# a fix of my own\n")
    append(project / "requirements.in", "# a line of my own\n")
    make(project, "install", *own_tools)  # requirements.in changed: relocked, with the same pins
    git_save(project, "installed, with edits")
    lock = (project / "requirements.txt").read_bytes()

    for path in template.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    clone_worktree(template)
    git_save(template, "v0.4.0", tag="v0.4.0")
    path = f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"  # the copier of the dev venv, as a user runs it
    updated = subprocess.run(["copier", "update", "--defaults", "--trust", "--skip-answered"], cwd=project,
                             capture_output=True, text=True, env={**os.environ, "PATH": path})  # fmt: skip
    print(updated.stdout, updated.stderr)
    assert updated.returncode == 0
    assert load_answers(project)["_commit"] == "v0.4.0"
    assert not (project / "scripts" / "modeltools").exists() and not (project / "scripts" / "models.py").exists()
    kept = project / "scripts" / "engine-edits" / "modeltools" / "store.py"
    assert kept.read_text().endswith("# a fix of my own\n")
    assert "you had edited modeltools/store.py; your copy is kept at scripts/engine-edits/modeltools/store.py" in (
        updated.stdout + updated.stderr
    )
    assert (project / "requirements.in").read_text().endswith("# a line of my own\n")
    assert (project / "requirements.txt").read_bytes() == lock and not list(project.rglob("*.rej"))

    mark = mirror.mark()
    result = make(project, "install", *own_tools)
    assert "tools: creating build/tools (nlp-modeltools" in result.output
    assert "pip compile" not in result.output and "pip-compile" not in result.output, "no relock"
    assert (project / "build" / "models.json").is_file() and (project / "requirements.txt").read_bytes() == lock
    assert mirror.since(mark) == [], "the model came from build/ (or the machine's cache), not downloaded again"
    assert make(project, "-q", "install", *own_tools, check=False).returncode == 0

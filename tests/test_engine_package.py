"""The engine as a package: its wheel is the one the template pins, the same bytes from any clone, installed
from TOOLS_FIND_LINKS whatever .env's package sources say, and usable in a project not made from the template.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

from tests.conftest import FAST
from tests.support.mirror import Mirror
from tests.support.pips import write_wheel
from tests.support.project import REPO, copy_project, make
from tests.support.wheels import TinyModel

TOOLS_TXT = REPO / "template" / "scripts" / "tools.txt"


def pinned_engine_hash() -> str:
    match = re.search(r"^nlp-modeltools==\S+ \\\n\s+--hash=sha256:([0-9a-f]{64})", TOOLS_TXT.read_text(), re.M)
    assert match, "template/scripts/tools.txt pins no nlp-modeltools"
    return match.group(1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_engine_wheel_is_the_one_the_template_pins(engine_wheel: Path) -> None:
    built = sha256(engine_wheel)
    assert built == pinned_engine_hash(), (
        f"{engine_wheel.name} built from this checkout has sha256 {built}, but template/scripts/tools.txt pins "
        f"{pinned_engine_hash()}: run make lock (it builds the wheel and pins its hash), then commit tools.txt"
    )


def test_the_engine_wheel_has_the_same_bytes_from_any_clone_umask_and_line_endings(
    engine_wheel: Path, tmp_path: Path
) -> None:
    # this checkout's engine, uncommitted work included, committed to a repository of its own with the root's
    # .gitattributes, then cloned as Windows (core.autocrlf=true) under umask 002 would clone it
    source = tmp_path / "source"
    shutil.copytree(REPO / "nlp-modeltools", source / "nlp-modeltools", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Makefile", ".gitattributes"):
        shutil.copy(REPO / name, source / name)
    for command in (["init", "--quiet"], ["add", "-A"], ["commit", "--quiet", "-m", "engine"]):
        subprocess.run(["git", *command], cwd=source, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["sh", "-c", 'umask 002 && git -c core.autocrlf=true clone --quiet "$0" "$1"', source, clone],
                   check=True)  # fmt: skip
    assert oct((clone / "nlp-modeltools/pyproject.toml").stat().st_mode & 0o777) == "0o664"
    (clone / ".venv").symlink_to(REPO / ".venv")
    subprocess.run(["make", "--no-print-directory", "-C", str(clone), "-o", ".venv/.installed", "dist"],
                   check=True, capture_output=True)  # fmt: skip
    (built,) = (clone / "dist").glob("nlp_modeltools-*.whl")
    crlf = [n for n in zipfile.ZipFile(built).namelist() if b"\r\n" in zipfile.ZipFile(built).read(n)]
    assert crlf == [], "CRLF reached the wheel"
    assert built.read_bytes() == engine_wheel.read_bytes(), "another clone, umask or line ending, another wheel"


def test_the_tools_come_from_tools_find_links_whatever_env_sets_for_private_packages(
    tmp_path: Path, rendered: Path, engine_wheel: Path
) -> None:
    """.env's PIP_INDEX_URL (a dead index) and PIP_FIND_LINKS (a same-version impostor) never reach the tools."""
    project = copy_project(rendered, tmp_path / "proj")
    impostors = tmp_path / "private"
    write_wheel(impostors, "nlp_modeltools", engine_wheel.name.split("-")[1])
    (project / ".env").write_text(f"PIP_INDEX_URL=http://127.0.0.1:9/simple\nPIP_FIND_LINKS={impostors}\n")
    make(project, "build/tools/.installed", "TOOLS=build/tools")
    installed = subprocess.run([str(project / "build/tools/bin/nlp-models"), "--version"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
    assert installed.startswith("nlp-models ")
    assert sha256(next((project / "build/tools/wheels").glob("nlp_modeltools-*.whl"))) == sha256(engine_wheel)
    assert make(project, "-q", "build/tools/.installed", "TOOLS=build/tools", check=False).returncode == 0
    offline = make(project, "build/tools/.installed", "TOOLS=build/tools", "OFFLINE=1")
    assert "creating" not in offline.output, "OFFLINE=1 after the first install keeps the tools venv"


def test_a_project_not_made_from_the_template_uses_the_engine_directly(
    tmp_path: Path, mirror: Mirror, wheels: dict[str, Path], shared_tools: Path
) -> None:
    """pip install nlp-modeltools (the tools venv is that), then nlp-models in a directory with two files."""
    project = tmp_path / "existing"
    project.mkdir()
    (project / "requirements.in").write_text("spacy>=3.8,<3.9\n-r requirements-model.in\n")
    (project / "requirements-model.in.url").write_text(mirror.add_download(wheels["md-3.8.0"]) + "\n")
    nlp_models = str(shared_tools / "bin" / "nlp-models")
    env = {k: v for k, v in os.environ.items() if k not in ("TOOLS", "INSTALLER")} | FAST

    def run(*verb: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([nlp_models, *verb], cwd=project, env=env, capture_output=True, text=True)
        print(f"$ nlp-models {' '.join(verb)} (exit {done.returncode})\n{done.stdout}{done.stderr}")
        return done

    for verb in ("models", "lock", "check-models", "wheelhouse"):
        assert run(verb).returncode == 0
    model = TinyModel("en_core_web_md", "3.8.0")
    assert (project / "requirements-model.in").read_text().splitlines()[-1] == "en_core_web_md==3.8.0"
    assert f"--hash=sha256:{sha256(wheels['md-3.8.0'])}" in (project / "requirements.txt").read_text()
    assert (project / "build" / "models.json").is_file() and (project / "build" / "wheels" / model.filename).is_file()
    mark = mirror.mark()
    assert run("lock").returncode == 0 and "nothing to resolve" in run("lock").stdout
    assert mirror.since(mark) == [], "a second lock reads the manifest: no model is fetched or listed again"
    for verb, missing in (("docker", "Dockerfile"), ("bundle", "scripts/install-bundle.sh")):
        refused = run(verb)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: {missing} is missing: nlp-models {verb} needs the {missing} nlp-template")

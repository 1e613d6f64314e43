"""ship/envs.py: a job's own venv, made with the dev venv's uv from a find-links directory, offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.ship.envs import STAMP, job_env


@pytest.fixture
def wheels(tmp_path: Path, make_wheel) -> Path:
    for version in ("1.0", "2.0"):
        make_wheel(tmp_path / "wheels", "tiny_tool", version, requires=())
    return tmp_path / "wheels"


def test_a_job_venv_is_made_once_and_again_when_its_requirements_change(
    tmp_path: Path, wheels: Path, tool_environ: dict
) -> None:
    requirements = tmp_path / "package.txt"
    requirements.write_text("tiny_tool==1.0\n")
    tools = Tools(tool_environ, offline=True)
    python = job_env(tmp_path / "envs", tools, "spacy", requirements, job="make package", locked=False,
                     find_links=wheels)  # fmt: skip
    assert python == tmp_path / "envs" / "spacy" / "bin" / "python"

    def version() -> str:
        code = "import tiny_tool; print(tiny_tool.__version__)"
        return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert version() == "1.0" and (tmp_path / "envs" / "spacy" / STAMP).is_file()
    (tmp_path / "envs" / "spacy" / "marker").write_text("")
    assert job_env(tmp_path / "envs", tools, "spacy", requirements, job="make package", locked=False,
                   find_links=tmp_path / "gone") == python  # fmt: skip
    assert (tmp_path / "envs" / "spacy" / "marker").exists(), "an up-to-date venv is left as it is"
    requirements.write_text("tiny_tool==2.0\n")
    job_env(tmp_path / "envs", tools, "spacy", requirements, job="make package", locked=False, find_links=wheels)
    assert version() == "2.0" and not (tmp_path / "envs" / "spacy" / "marker").exists()


def test_offline_without_a_source_names_the_job_to_run_online(tmp_path: Path) -> None:
    requirements = tmp_path / "publish.txt"
    requirements.write_text("twine==6.0\n")
    with pytest.raises(UserError) as refused:
        job_env(tmp_path / "envs", Tools(offline=True), "twine", requirements, job="make publish", locked=True)
    assert str(refused.value) == (
        f"OFFLINE=1, but make publish needs {tmp_path / 'envs' / 'twine'} set up: run make publish once with network "
        "access"
    )


def test_a_failed_install_leaves_no_half_made_venv(tmp_path: Path, wheels: Path, tool_environ: dict) -> None:
    requirements = tmp_path / "package.txt"
    requirements.write_text("tiny_tool==9.0\n")
    with pytest.raises(UserError) as failed:
        job_env(tmp_path / "envs", Tools(tool_environ, offline=True), "spacy", requirements, job="make package",
                locked=False, find_links=wheels)  # fmt: skip
    assert str(failed.value) == (
        f"installing package.txt into {tmp_path / 'envs' / 'spacy'} failed (exit 1, see above). Read the message "
        "above (a package source in .env, the network), then run make package again"
    )
    assert not (tmp_path / "envs" / "spacy").exists()

"""ship/envs.py: a job's own venv, made with the dev venv's uv from a find-links directory, offline."""

from __future__ import annotations

import subprocess
import threading
import time
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
    with job_env(tmp_path / "envs", tools, "spacy", requirements, job="make package", locked=False,
                 find_links=wheels) as python:  # fmt: skip
        pass
    assert python == tmp_path / "envs" / "spacy" / "bin" / "python"

    def version() -> str:
        code = "import tiny_tool; print(tiny_tool.__version__)"
        return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert version() == "1.0" and (tmp_path / "envs" / "spacy" / STAMP).is_file()
    (tmp_path / "envs" / "spacy" / "marker").write_text("")
    with job_env(tmp_path / "envs", tools, "spacy", requirements, job="make package", locked=False,
                 find_links=tmp_path / "gone") as again:  # fmt: skip
        assert again == python
    assert (tmp_path / "envs" / "spacy" / "marker").exists(), "an up-to-date venv is left as it is"
    requirements.write_text("tiny_tool==2.0\n")
    with job_env(tmp_path / "envs", tools, "spacy", requirements, job="make package", locked=False, find_links=wheels):
        assert version() == "2.0" and not (tmp_path / "envs" / "spacy" / "marker").exists()


def test_offline_without_a_source_names_the_job_to_run_online(tmp_path: Path) -> None:
    requirements = tmp_path / "publish.txt"
    requirements.write_text("twine==6.0\n")
    with pytest.raises(UserError) as refused:
        with job_env(tmp_path / "envs", Tools(offline=True), "twine", requirements, job="make publish", locked=True):
            pass
    assert str(refused.value) == (
        f"OFFLINE=1, but make publish needs {tmp_path / 'envs' / 'twine'} set up: run make publish once with network "
        "access"
    )


def test_a_failed_install_leaves_no_half_made_venv(tmp_path: Path, wheels: Path, tool_environ: dict) -> None:
    requirements = tmp_path / "package.txt"
    requirements.write_text("tiny_tool==9.0\n")
    with pytest.raises(UserError) as failed:
        with job_env(tmp_path / "envs", Tools(tool_environ, offline=True), "spacy", requirements, job="make package",
                     locked=False, find_links=wheels):  # fmt: skip
            pass
    assert str(failed.value) == (
        f"installing package.txt into {tmp_path / 'envs' / 'spacy'} failed (exit 1, see above). Read the message "
        "above (a package source in .env, the network), then run make package again"
    )
    assert not (tmp_path / "envs" / "spacy").exists()


def test_a_running_job_keeps_its_venv_while_another_process_wants_another(
    tmp_path: Path, wheels: Path, tool_environ: dict
) -> None:
    """Two projects share a tools venv: the second one's other lock waits for the first job, then remakes the venv."""
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("tiny_tool==1.0\n")
    second.write_text("tiny_tool==2.0\n")
    tools = Tools(tool_environ, offline=True)

    def version(python: Path) -> str:
        code = "import tiny_tool; print(tiny_tool.__version__)"
        return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    def other() -> None:
        with job_env(tmp_path / "envs", tools, "spacy", second, job="make package", locked=False,
                     find_links=wheels) as python:  # fmt: skip
            seen.append(version(python))

    seen: list[str] = []
    with job_env(tmp_path / "envs", tools, "spacy", first, job="make package", locked=False,
                 find_links=wheels) as python:  # fmt: skip
        waiting = threading.Thread(target=other)
        waiting.start()
        time.sleep(1)
        assert version(python) == "1.0" and waiting.is_alive(), "the venv was remade under a running job"
    waiting.join(timeout=60)
    assert seen == ["2.0"]

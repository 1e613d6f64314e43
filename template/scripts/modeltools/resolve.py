"""Run the resolver (pip-compile or uv pip compile) on requirements.in, with every model as its file.

No model name ever reaches a resolver as a bare name: the resolver's input is
requirements.in with `-r requirements-model.in` replaced by one direct
reference a model, `name @ file:///…/build/<wheel>`. A direct reference is
the only candidate for that name, for a top-level requirement and for any
package that depends on the model, so no index or find-links page can offer
one, whatever the name looks like.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName

from modeltools.errors import run_tool
from modeltools.inputs import INCLUDE
from modeltools.settings import Settings
from modeltools.wheels import ModelWheel

# pip reads PIP_*; uv reads UV_* only. .env stays one file: pip's names are mapped for uv.
PIP_TO_UV = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS": "UV_FIND_LINKS",
}


@dataclass(frozen=True)
class Target:
    """A platform and Python to resolve for other than the host's (an image's)."""

    uv_platform: str  # e.g. aarch64-manylinux_2_28
    python_version: str  # e.g. 3.12


def uv_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for uv: pip's source variables under uv's names (uv's own, if set, win)."""
    env = dict(environ)
    for pip_name, uv_name in PIP_TO_UV.items():
        if env.get(pip_name, "").strip() and not env.get(uv_name):
            env[uv_name] = env[pip_name]
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def write_input(settings: Settings, models: Mapping[NormalizedName, ModelWheel], work: Path) -> Path:
    """build/lock/requirements.in: the project's requirements.in, models as direct references to build/."""
    paths = settings.paths
    lines = ["# Written by make lock from requirements.in: each model is its file in build/, never a name."]
    for line in paths.requirements.read_text().splitlines():
        include = INCLUDE.match(line)
        if include:
            target = (paths.requirements.parent / include.group(2)).resolve()
            if target == paths.pins.resolve():
                continue
            line = f"{include.group(1)} {os.path.relpath(target, work)}"
        lines.append(line)
    lines.append("# Models (requirements-model.in):")
    lines += [f"{wheel.display_name} @ {wheel.path.resolve().as_uri()}" for wheel in models.values()]
    work.mkdir(parents=True, exist_ok=True)
    source = work / "requirements.in"
    source.write_text("\n".join(lines) + "\n")
    return source


def compile_lock(
    settings: Settings,
    models: Mapping[NormalizedName, ModelWheel],
    *,
    upgrade: bool,
    previous: Path | None,
    work: Path,
    target: Target | None = None,
    constraints: Sequence[Path] = (),
) -> str:
    """The resolver's draft lock (every package pinned with hashes), as text."""
    source = write_input(settings, models, work)
    draft = work / "requirements.txt"
    draft.unlink(missing_ok=True)
    if previous is not None and previous.is_file() and not upgrade:
        shutil.copyfile(previous, draft)  # both resolvers keep the pins they find there
    uses_uv = target is not None or settings.installer == "uv"
    options = ["--upgrade"] if upgrade else []
    options += [item for path in constraints for item in ("--constraint", os.path.relpath(path, work))]
    if uses_uv:
        python = target.python_version if target else settings.python_version
        command = [settings.tool("uv"), "pip", "compile", "--quiet", "--generate-hashes"]
        command += ["--python-version", python] if python else []
        command += ["--python-platform", target.uv_platform] if target else []
        env = {**uv_environment(settings.environ), "UV_CUSTOM_COMPILE_COMMAND": "make lock"}
        tool = "uv pip compile"
    else:
        command = [settings.tool("python"), "-m", "piptools", "compile", "--quiet", "--strip-extras",
                   "--generate-hashes", "--allow-unsafe", "--no-emit-index-url", "--no-emit-find-links"]  # fmt: skip
        env = {**settings.environ, "CUSTOM_COMPILE_COMMAND": "make lock"}
        tool = "pip-compile"
    command += [*options, "--output-file", draft.name, source.name]
    where = f" for {target.uv_platform} and Python {target.python_version}" if target else ""
    print(f"lock: {tool}{where} (models from build/ only)", flush=True)
    run_tool(
        command, cwd=work, env=env, redact=settings.redact, what=tool,
        fix="Read the resolver's message above: a version conflict is fixed in requirements.in; "
        "a refused or unreachable index is named there. requirements.txt was kept as it was",
    )  # fmt: skip
    return draft.read_text()

"""Run the resolver (pip-compile or uv pip compile) on requirements.in, with every model as its file.

No model name ever reaches a resolver as a bare name: the resolver's input is
requirements.in with `-r requirements-model.in` replaced by one direct
reference a model, `name @ file:///…/build/<wheel>`. A direct reference is
the only candidate for that name, for a top-level requirement and for any
package that depends on the model, so no index or find-links page can offer
one, whatever the name looks like.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from nlp_modeltools.core.errors import run_tool
from nlp_modeltools.core.files import HashCache, sha256_of
from nlp_modeltools.core.http import Session, get
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.core.platforms import ImageTarget
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.lock.lockfile import Lock, finish
from nlp_modeltools.models.inputs import INCLUDE, requirement_lines
from nlp_modeltools.models.manifest import ModelRecord
from nlp_modeltools.models.releases import links_in_page
from nlp_modeltools.models.wheels import archive_name

# pip reads PIP_*; uv reads UV_* only. .env stays one file: pip's names are mapped for uv.
PIP_TO_UV = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS": "UV_FIND_LINKS",
}


def uv_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for uv, which reads UV_* and neither PIP_* nor pip's configuration: pip's package sources
    under uv's names (uv's own, if set, win), the CA bundle pip and requests trust (REQUESTS_CA_BUNDLE, PIP_CERT,
    pip's configured cert) as SSL_CERT_FILE, pip's configured proxy, and uv's cache beside the model cache when
    NLP_MODELS_CACHE is set (a HOME that cannot be written)."""
    env = dict(environ)
    for pip_name, uv_name in PIP_TO_UV.items():
        if env.get(pip_name, "").strip() and not env.get(uv_name):
            # pip separates with spaces; uv wants commas for find-links, spaces for indexes
            separator = "," if uv_name == "UV_FIND_LINKS" else " "
            env[uv_name] = separator.join(env[pip_name].split())
    config = env.get("PIP_CONFIG_FILE", "")
    if not env.get("SSL_CERT_FILE"):
        cert = env.get("REQUESTS_CA_BUNDLE") or env.get("PIP_CERT") or pip_setting("global.cert", config)
        if cert:
            env["SSL_CERT_FILE"] = cert
    proxies = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    if not any(env.get(name) for name in proxies) and (proxy := pip_setting("global.proxy", config)):
        env["HTTPS_PROXY"] = env["HTTP_PROXY"] = proxy
    if env.get("NLP_MODELS_CACHE") and not env.get("UV_CACHE_DIR"):
        env["UV_CACHE_DIR"] = str(Path(env["NLP_MODELS_CACHE"]).expanduser() / "uv")
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


@functools.cache
def pip_setting(key: str, config_file: str) -> str:
    """A setting of pip's configuration as pip uses it (`pip config get`, every file by its precedence); "" if none."""
    env = {**os.environ, "PIP_CONFIG_FILE": config_file} if config_file else None
    found = subprocess.run([Tools.program("python"), "-m", "pip", "config", "get", key], capture_output=True,
                           text=True, env=env)  # fmt: skip
    return found.stdout.strip() if found.returncode == 0 else ""


def absolute_find_links(environ: Mapping[str, str], root: Path) -> dict[str, str]:
    """Relative find-links directories made absolute: the resolvers run in build/lock/."""
    env = dict(environ)
    for name, separator in (("PIP_FIND_LINKS", " "), ("UV_FIND_LINKS", ",")):
        items = [item for item in env.get(name, "").replace(",", " ").split()]
        if items:
            env[name] = separator.join(
                item if urllib.parse.urlsplit(item).scheme or os.path.isabs(item) else str((root / item).resolve())
                for item in items
            )
    return env


def find_links_files(
    session: Session, environ: Mapping[str, str], wanted: set[tuple[str, str]]
) -> dict[str, list[str]]:
    """file name -> sha256 of the find-links files of the wanted (name, version)s: their #sha256, else their bytes.

    uv leaves packages found through find-links without hashes (uv issue #10308);
    a lock installed with --require-hashes needs them, so they are read here.
    """
    env = uv_environment(environ)
    found: dict[str, list[str]] = {}
    what = "reading a find-links source (PIP_FIND_LINKS)"
    for location in filter(None, env.get("UV_FIND_LINKS", "").split(",")):
        if urllib.parse.urlsplit(location).scheme in ("http", "https"):
            page = get(session, location, what).text
            for link in links_in_page(page, location):
                if _names_version(link.filename) in wanted:
                    found.setdefault(link.filename, []).append(link.sha256 or _hash_url(session, link.url, what))
        elif Path(location).is_dir():
            for path in Path(location).iterdir():
                if path.is_file() and _names_version(path.name) in wanted:
                    found.setdefault(path.name, []).append(sha256_of(path))
    return found


def _hash_url(session: Session, url: str, what: str) -> str:
    digest = hashlib.sha256()
    for chunk in get(session, url, what, stream=True).iter_content(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def add_missing_hashes(session: Session, environ: Mapping[str, str], lock: Lock) -> None:
    """Give each entry a resolver left without hashes the hashes of every file of its version."""
    missing = [entry for entry in lock.entries if not entry.hashes]
    if not missing:
        return
    files = find_links_files(session, environ, {(entry.name, entry.version) for entry in missing})
    for entry in missing:
        for filename, hashes in files.items():
            if _names_version(filename) == (entry.name, entry.version):
                entry.hashes += [f"sha256:{h}" for h in hashes if f"sha256:{h}" not in entry.hashes]


def _names_version(filename: str) -> tuple[str, str] | None:
    parsed = archive_name(filename)
    return (parsed[0], str(parsed[1])) if parsed else None


def write_input(paths: Paths, models: Mapping[NormalizedName, Path], work: Path) -> Path:
    """build/lock/requirements.in: the project's requirements.in, models (name -> wheel file) as direct references.

    Its lines keep their numbers, so a resolver's "(line N)" is requirements.in's line N.
    """
    lines = []
    for line in paths.requirements.read_text().splitlines():
        include = INCLUDE.match(line)
        if include:
            target = (paths.requirements.parent / include.group(2)).resolve()
            line = "" if target == paths.pins.resolve() else f"{include.group(1)} {os.path.relpath(target, work)}"
        lines.append(line)
    lines.append("# Models (requirements-model.in), each its file in build/, never a name:")
    lines += [f"{name} @ {path.resolve().as_uri()}" for name, path in models.items()]
    work.mkdir(parents=True, exist_ok=True)
    source = work / "requirements.in"
    source.write_text("\n".join(lines) + "\n")
    return source


@dataclass(frozen=True)
class Resolver:
    """What a resolver run is given: the project's files, the tool environment, a session for find-links pages,
    the hash cache, which tool locks (pip-tools or uv) and for which Python."""

    paths: Paths
    tools: Tools
    session: Session
    hashes: HashCache
    installer: str  # pip-tools or uv
    python_version: str  # 3.11; empty: the tool's own


def compile_lock(
    resolver: Resolver,
    models: Mapping[NormalizedName, ModelRecord],
    scope: str,
    *,
    work: Path,
    upgrade: bool = False,
    previous: Path | None = None,
    target: ImageTarget | None = None,
    constraints: Sequence[Path] = (),
) -> Lock:
    """The lock the resolver makes of requirements.in and the models (from the manifest), every package pinned
    with hashes, finished: models by their file's hash, find-links packages given their hashes, scope in its header.

    Raises UserError with the resolver's reason, naming the requirements.in lines it concerns.
    """
    paths, tools = resolver.paths, resolver.tools
    source = write_input(paths, {name: record.path(paths.build) for name, record in models.items()}, work)
    draft = work / "requirements.txt"
    draft.unlink(missing_ok=True)
    if previous is not None and previous.is_file() and not upgrade:
        shutil.copyfile(previous, draft)  # both resolvers keep the pins they find there
    uses_uv = target is not None or resolver.installer == "uv"
    options = ["--upgrade"] if upgrade else []
    options += [item for path in constraints for item in ("--constraint", os.path.relpath(path, work))]
    environ = absolute_find_links(tools.environ, paths.root)
    if uses_uv:
        python = target.python_version if target else resolver.python_version
        command = [tools.program("uv"), "pip", "compile", "--quiet", "--generate-hashes"]
        command += ["--python-version", python] if python else []
        command += ["--python-platform", target.uv_platform] if target else ["--universal"]
        env = {**uv_environment(environ), "UV_CUSTOM_COMPILE_COMMAND": "make lock"}
        tool = "uv pip compile"
    else:
        command = [tools.program("python"), "-m", "piptools", "compile", "--quiet", "--strip-extras",
                   "--generate-hashes", "--allow-unsafe", "--no-emit-index-url", "--no-emit-find-links"]  # fmt: skip
        env = {**environ, "CUSTOM_COMPILE_COMMAND": "make lock"}
        tool = "pip-compile"
    command += [*options, "--output-file", draft.name, source.name]
    where = (
        f" for {target.uv_platform} and Python {target.python_version}"
        if target
        else (" --universal" if uses_uv else "")
    )
    print(f"lock: {tool}{where} (models from build/ only)", flush=True)
    lines = requirement_lines(paths.requirements, paths.pins)
    run_tool(
        command, cwd=work, env=env, redact=tools.redact, what=tool, quiet=True,
        explain=lambda output: resolver_failure(output, lines),
        fix="Change or remove the line(s) it names, then run make lock; requirements.txt was kept as it was",
    )  # fmt: skip
    lock = finish(draft.read_text(), {name: (record.pin, record.sha256) for name, record in models.items()}, scope)
    add_missing_hashes(resolver.session, tools.environ, lock)
    return lock


def resolver_failure(output: str, lines: list[tuple[str, Requirement]]) -> str:
    """pip-compile's or uv's reason, in a sentence, after the requirement lines (file:line) it names."""
    text = re.sub(r"\s+", " ", output)
    conflict = re.search(r"The conflict is caused by:(.*?)(?: To fix this| Additionally|$)", text) or re.search(
        r"(Cannot install .*? because these package versions have conflicting dependencies)", text
    )
    uv = re.search(r"cause: (.*?we can conclude that your requirements are unsatisfiable)", text)
    pip = re.findall(
        r"(Could not find a version that satisfies the requirement \S+)|(No matching distribution found for \S+)", text
    )
    if conflict:
        reason = conflict.group(1).strip()
    elif uv:
        reason = " ".join(re.split(r"(?<=\.) (?=And because)", uv.group(1))[-2:])  # its last two steps
    elif pip:
        reason = pip[0][0] or pip[0][1]
    else:
        return ""
    words = {canonicalize_name(word) for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", reason)}
    words |= {f"requirements.in:{number}" for number in re.findall(r"-r requirements\.in \(line (\d+)\)", reason)}
    named = [f"{where} ({r})" for where, r in lines if canonicalize_name(r.name) in words or where in words]
    return f"{' and '.join(named) or 'requirements.in'} cannot be met: {reason}"

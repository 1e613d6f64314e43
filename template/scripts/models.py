#!/usr/bin/env python3
"""Download spaCy model wheels once, lock them by hash, install them with no index.

make runs this before any virtual environment exists: standard library only.
Each verb is one step of the Makefile; `python scripts/models.py VERB --help`
lists its options.

    fetch          requirements-model.in.url -> build/<model>.whl + requirements-model.in
    links          GitHub's releases API -> build/spacy_model_links.html
    check-models   every model's own spaCy requirement against the project's
    lock           requirements.in + model wheels -> requirements.txt (hashes)
    wheelhouse     requirements.txt -> build/wheels/ (every wheel, hash-checked)
    sync           build/wheels/ -> .venv (pip-sync, no index)
    check-secrets  no value of .env in a committed file or in requirements.txt
    docker-build   build/wheels/ -> image (offline; pip credentials as a build secret)
    image-install  inside the image build: requirements.txt -> /app/.venv
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from modeltools.common import HashCache, UserError, canonical_name, human_size, plural, write_if_changed, write_private
from modeltools.credentials import (
    PIP_SOURCE_VARIABLES,
    check_private_sources,
    find_leaks,
    require_variables,
)
from modeltools.github import DEFAULT_API, ModelLink, read_links_page, write_links_page
from modeltools.lockfile import (
    LockEntry,
    describe_changes,
    inputs_digest,
    lock_entries,
    lock_problems,
    locked_versions,
    recorded_digest,
    repin_models,
    stamp_digest,
)
from modeltools.net import download_wheel
from modeltools.project import (
    GITHUB_RELEASES_BASE,
    ModelUrl,
    Requirement,
    range_models,
    read_model_urls,
    read_pins,
    render_pins,
    resolve_model_url,
    spacy_policy,
)
from modeltools.versions import parse_version
from modeltools.wheels import (
    SpacyPolicy,
    WheelInfo,
    check_fits_python,
    model_wheels_in,
    read_wheel,
    wheel_filename_parts,
)

SECRET_ID = "pip_env"  # noqa: S105 - the id of the build secret, not a value
SECRET_MOUNT = Path("/run/secrets") / SECRET_ID


@dataclass(frozen=True)
class Paths:
    """Where the project keeps each file; the defaults are the Makefile's."""

    urls: Path = Path("requirements-model.in.url")
    pins: Path = Path("requirements-model.in")
    requirements: Path = Path("requirements.in")
    lock: Path = Path("requirements.txt")
    build: Path = Path("build")
    env_file: Path = Path(".env")

    @property
    def links(self) -> Path:
        return self.build / "spacy_model_links.html"

    @property
    def wheels(self) -> Path:
        return self.build / "wheels"

    @property
    def hash_cache(self) -> HashCache:
        return HashCache(self.build / ".sha256-cache.json")


def paths_of(args: argparse.Namespace) -> Paths:
    return Paths(build=args.build)


# --------------------------------------------------------------------------- models


def fetch_exact(model: ModelUrl, build: Path, cache: HashCache, offline: bool) -> WheelInfo:
    """The wheel of one URL line: kept when build/ has it (and its hash fits), else downloaded."""
    target = build / model.filename
    if target.exists():
        if model.sha256 and cache.sha256(target) != model.sha256:
            raise UserError(
                f"{target} does not match the #sha256= of {model.where}: it was changed or corrupted. "
                "Delete it and run make models to download it again"
            )
    elif offline:
        raise UserError(f"OFFLINE=1, but {target} is missing: run make models once with network access")
    else:
        download_wheel(model.url, target, model.sha256)
    wheel = read_wheel(target)
    name, version = wheel_filename_parts(model.filename)
    if (wheel.key, wheel.version) != (canonical_name(name), version):
        raise UserError(f"{target} holds {wheel.pin}, not what its file name says ({model.where})")
    return wheel


class RangeResolver:
    """Models given by name and range, resolved against the links page (downloaded when missing)."""

    def __init__(self, paths: Paths, api: str, base_url: str, offline: bool, upgrade: bool = False) -> None:
        self.paths, self.api, self.base_url = paths, api, base_url
        self.offline, self.upgrade = offline, upgrade
        self._links: list[ModelLink] | None = None

    def links(self) -> list[ModelLink]:
        """The links page: refreshed for an upgrade, made when missing, else read as it is."""
        if self._links is None:
            if not self.offline and (self.upgrade or not self.paths.links.exists()):
                self._links = write_links_page(self.api, os.environ.get("GITHUB_TOKEN"), self.paths.links)
            elif self.paths.links.exists():
                self._links = read_links_page(self.paths.links)
            else:
                raise UserError(f"OFFLINE=1, but {self.paths.links} is missing: run make links with network access")
        return self._links

    def resolve(self, requirement: Requirement, policy: SpacyPolicy, locked: dict[str, str]) -> ModelLink:
        key = canonical_name(requirement.name)
        candidates = [link for link in self.links() if canonical_name(link.name) == key]
        if not candidates:
            raise UserError(
                f"{requirement.where}: {requirement.name} is not in {self.paths.links}: check the name, "
                "or run make links to refresh the list of releases"
            )
        in_range = [link for link in candidates if requirement.spec.contains(link.version)]
        if not in_range:
            versions = ", ".join(link.version for link in candidates)
            raise UserError(
                f"{requirement.where}: no release of {requirement.name} is in {requirement.spec} (there are {versions})"
            )
        pinned = [link for link in in_range if link.version == locked.get(key)]
        if pinned and not self.upgrade:
            return pinned[0]  # reproducible: keep what requirements.txt locked until make upgrade
        series = policy.series()
        fitting = [link for link in in_range if not series or ".".join(link.version.split(".")[:2]) in series]
        if not fitting:
            versions = ", ".join(link.version for link in in_range)
            raise UserError(
                f"{requirement.where}: {requirement.text} allows {versions}, but none is built for "
                f"{policy.text} ({policy.where}); models for spaCy {series[-1]} have versions {series[-1]}.x"
            )
        return max(fitting, key=lambda link: parse_version(link.version))

    def wheel(self, link: ModelLink, cache: HashCache) -> WheelInfo:
        """The wheel of a links-page entry, downloaded once (from the mirror, if one is set)."""
        url = resolve_model_url(link.url, self.base_url)
        return fetch_exact(ModelUrl(url, link.sha256, str(self.paths.links)), self.paths.build, cache, self.offline)


def project_models(paths: Paths, resolver: RangeResolver, cache: HashCache, pinned: bool) -> list[WheelInfo]:
    """The project's models, each checked against its spaCy: the pinned ones (if asked), then the ranged ones."""
    policy = spacy_policy(paths.requirements)
    found: list[tuple[WheelInfo, str]] = []
    available = model_wheels_in(paths.build)
    for name, version in read_pins(paths.pins) if pinned else []:
        path = available.get(f"{canonical_name(name)}=={version}")
        if path is None:
            raise UserError(f"{name}=={version} is in {paths.pins} but not in {paths.build}/: run make models")
        found.append((read_wheel(path), str(paths.pins)))
    locked = locked_versions(paths.lock)
    pinned_names = {canonical_name(name): name for name, _ in read_pins(paths.pins)}
    for requirement in range_models(paths.requirements, paths.pins):
        if canonical_name(requirement.name) in pinned_names:
            raise UserError(
                f"{requirement.where}: {requirement.name} is also in {paths.urls}; give each model in one place"
            )
        found.append((resolver.wheel(resolver.resolve(requirement, policy, locked), cache), requirement.where))
    for wheel, where in found:
        policy.check(wheel, where)
        check_fits_python(wheel, where)
    return [wheel for wheel, _ in found]


def cmd_fetch(args: argparse.Namespace) -> None:
    paths = paths_of(args)
    cache = paths.hash_cache
    policy = spacy_policy(paths.requirements)
    exact = []
    for model in read_model_urls(paths.urls, args.base_url):
        wheel = fetch_exact(model, paths.build, cache, args.offline)
        policy.check(wheel, model.where)
        check_fits_python(wheel, model.where)
        exact.append(wheel)
    if write_if_changed(paths.pins, render_pins(exact, paths.urls)):
        print(f"models: wrote {paths.pins} ({plural(len(exact), 'model')})")
    resolver = RangeResolver(paths, args.api, args.base_url, args.offline)
    ranged = project_models(paths, resolver, cache, pinned=False)
    cache.save()
    total = sum(w.path.stat().st_size for w in exact + ranged)
    print(f"models: {plural(len(exact) + len(ranged), 'model wheel')} in {paths.build}/ ({human_size(total)})")


def cmd_links(args: argparse.Namespace) -> None:
    write_links_page(args.api, os.environ.get("GITHUB_TOKEN"), paths_of(args).links)


def cmd_check_models(args: argparse.Namespace) -> None:
    paths = paths_of(args)
    cache = paths.hash_cache
    wheels = project_models(paths, RangeResolver(paths, args.api, args.base_url, args.offline), cache, pinned=True)
    cache.save()
    policy = spacy_policy(paths.requirements)
    for wheel in wheels:
        needs = wheel.requirement_on("spacy") or "any spaCy"
        print(f"check-models: {wheel.pin} needs {needs}: fits {policy.text or 'spaCy'}")


# --------------------------------------------------------------------------- lock


def run_pip_compile(tools_python: str, draft: Path, requirements: Path, constraints: Path, upgrade: bool) -> None:
    command = [
        tools_python, "-m", "piptools", "compile", "--quiet", "--strip-extras",
        "--generate-hashes", "--allow-unsafe", "--no-emit-index-url", "--no-emit-find-links",
        *(["--upgrade"] if upgrade else []),
        "--constraint", str(constraints), "--output-file", str(draft), str(requirements),
    ]  # fmt: skip
    print(f"lock: pip-compile {requirements} (a minute or two for spaCy's dependencies)", flush=True)
    result = subprocess.run(command, env={**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"})
    if result.returncode:
        raise UserError(
            f"pip-compile failed (exit {result.returncode}, see above); requirements.txt was kept as it was"
        )


def cmd_lock(args: argparse.Namespace) -> None:
    paths = paths_of(args)
    cache = paths.hash_cache
    resolver = RangeResolver(paths, args.api, args.base_url, args.offline, upgrade=args.upgrade)
    models = {w.key: w for w in project_models(paths, resolver, cache, pinned=True)}
    hashes = {key: cache.sha256(wheel.path) for key, wheel in models.items()}
    cache.save()
    digest = inputs_digest(paths.requirements, hashes)
    if not args.upgrade and recorded_digest(paths.lock) == digest:
        check_no_leaks(paths)
        paths.lock.touch()
        print(f"lock: {paths.lock} already matches its inputs; pip-compile skipped")
        return
    if args.offline:
        raise UserError(f"OFFLINE=1, but {paths.lock} does not match its inputs: run make lock with network access")
    require_variables(args.require_env.split(), paths.env_file, os.environ)
    check_private_sources(paths.env_file, os.environ)
    work = paths.build / "lock"
    work.mkdir(parents=True, exist_ok=True)
    constraints = work / "model-constraints.txt"
    constraints.write_text("".join(f"{w.name} @ {w.path.resolve().as_uri()}\n" for w in models.values()))
    draft = work / "requirements.txt"
    if paths.lock.exists():
        shutil.copyfile(paths.lock, draft)  # pip-compile keeps the pins it finds there
    run_pip_compile(args.tools_python, draft, paths.requirements, constraints, args.upgrade)
    versions = {key: wheel.version for key, wheel in models.items()}
    text = stamp_digest(repin_models(draft.read_text(), versions, hashes, str(constraints)), digest)
    draft.write_text(text)
    problems = lock_problems(text) + find_leaks(Path.cwd(), paths.env_file, [draft], os.environ)
    if problems:
        raise UserError(f"the compiled lock is unsafe, so {paths.lock} was kept as it was:\n  " + "\n  ".join(problems))
    old = paths.lock.read_text() if paths.lock.exists() else ""
    write_if_changed(paths.lock, text)
    paths.lock.touch()
    changes = describe_changes(old, text)
    if not old:
        print(f"lock: wrote {paths.lock}: {plural(len(lock_entries(text)), 'package')}, each pinned with its hashes")
    else:
        print(f"lock: {paths.lock}: " + ("\n" + "\n".join(changes) if changes else "no version changed"))


# --------------------------------------------------------------------------- wheelhouse and sync


class Wheelhouse:
    """The files of build/wheels, found by hash: a lock entry is present when one of its hashes is."""

    def __init__(self, directory: Path, cache: HashCache) -> None:
        self.directory = directory
        files = sorted(p for p in directory.glob("*") if p.is_file() and not p.name.startswith("."))
        self.by_hash = {f"sha256:{cache.sha256(path)}": path for path in files}

    def find(self, entry: LockEntry) -> Path | None:
        return next((self.by_hash[h] for h in entry.hashes if h in self.by_hash), None)

    def missing(self, entries: Sequence[LockEntry]) -> list[LockEntry]:
        return [entry for entry in entries if self.find(entry) is None]


def verify_model_wheels(entries: Sequence[LockEntry], paths: Paths, cache: HashCache) -> dict[str, Path]:
    """Model wheels in build/ must carry the lock's hash: a changed byte stops everything here."""
    by_key = {f"{e.name}=={e.version}": e for e in entries}
    found = {}
    for key, path in model_wheels_in(paths.build).items():
        entry = by_key.get(key)
        if entry is None:
            continue
        actual = f"sha256:{cache.sha256(path)}"
        if actual not in entry.hashes:
            raise UserError(
                f"{path} does not match {paths.lock} ({entry.hashes[0]} expected, {actual} found): it changed "
                "after it was locked. Delete it and run make install to download it again, or run make lock "
                "if you replaced the model on purpose. Nothing was installed."
            )
        found[entry.name] = path
    return found


def link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def pip_download(entries: Sequence[LockEntry], dest: Path, tools_python: str) -> None:
    listing = dest / ".missing.txt"
    listing.write_text("".join(entry.render() for entry in entries))
    print(f"wheelhouse: downloading {plural(len(entries), 'package')} into {dest}/", flush=True)
    command = [tools_python, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
               "--dest", str(dest), "--requirement", str(listing)]  # fmt: skip
    result = subprocess.run(command)
    listing.unlink(missing_ok=True)
    if result.returncode:
        raise UserError(f"pip download failed (exit {result.returncode}); see pip's message above")


def cmd_wheelhouse(args: argparse.Namespace) -> None:
    paths = paths_of(args)
    cache = paths.hash_cache
    paths.wheels.mkdir(parents=True, exist_ok=True)
    entries = lock_entries(paths.lock.read_text())
    for path in verify_model_wheels(entries, paths, cache).values():
        target = paths.wheels / path.name
        if not target.exists() or cache.sha256(target) != cache.sha256(path):
            link_or_copy(path, target)
    missing = Wheelhouse(paths.wheels, cache).missing(entries)
    if missing and args.offline:
        names = ", ".join(e.requirement for e in missing)
        raise UserError(f"OFFLINE=1, but {paths.wheels}/ lacks {names}: run make wheelhouse with network access")
    if missing:
        require_variables(args.require_env.split(), paths.env_file, os.environ)
        check_private_sources(paths.env_file, os.environ)
        pip_download(missing, paths.wheels, args.tools_python)
    wheelhouse = Wheelhouse(paths.wheels, cache)
    absent = wheelhouse.missing(entries)
    if absent:
        raise UserError(f"pip download did not provide {', '.join(e.requirement for e in absent)}")
    needed = {wheelhouse.find(entry) for entry in entries}
    for stale in set(wheelhouse.by_hash.values()) - needed:
        stale.unlink()
    cache.save()
    print(f"wheelhouse: {plural(len(entries), 'wheel')} in {paths.wheels}/, each matching {paths.lock}")


def offline_pip_environment() -> dict[str, str]:
    """pip with no index, no find-links and no config file: only local wheels can be installed."""
    env = {k: v for k, v in os.environ.items() if k not in PIP_SOURCE_VARIABLES}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def cmd_sync(args: argparse.Namespace) -> None:
    paths = paths_of(args)
    cache = paths.hash_cache
    entries = lock_entries(paths.lock.read_text())
    verify_model_wheels(entries, paths, cache)
    absent = Wheelhouse(paths.wheels, cache).missing(entries)
    cache.save()
    if absent:
        raise UserError(f"{paths.wheels}/ lacks {', '.join(e.requirement for e in absent)}: run make wheelhouse")
    venv_python = args.venv / "bin" / "python"
    if not venv_python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(args.venv)], check=True)
    command = [args.tools_python, "-m", "piptools", "sync", "--python-executable", str(venv_python), "--no-index",
               "--find-links", str(paths.wheels), "--pip-args", "--quiet", str(paths.lock)]  # fmt: skip
    result = subprocess.run(command, env=offline_pip_environment())
    if result.returncode:
        raise UserError(f"pip-sync failed (exit {result.returncode}); see its message above")
    add_source_path(venv_python, args.src)
    print(f"install: {args.venv} holds the {plural(len(entries), 'package')} of {paths.lock}, from {paths.wheels}/")


def add_source_path(venv_python: Path, src: Path) -> None:
    """Put src/ on the venv's path with a .pth file, so `python -m <package>` works without installing it."""
    purelib = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    write_if_changed(Path(purelib) / "_project_src.pth", f"{src.resolve()}\n")


# --------------------------------------------------------------------------- secrets


def check_no_leaks(paths: Paths) -> None:
    leaks = find_leaks(Path.cwd(), paths.env_file, [paths.lock, Path(".copier-answers.yml")], os.environ)
    if leaks:
        raise UserError(
            "a secret from .env is in a file git tracks (or in requirements.txt):\n  " + "\n  ".join(leaks) + "\n"
            "Remove it from there, rotate it, and keep it in .env only"
        )


def cmd_check_secrets(args: argparse.Namespace) -> None:
    check_no_leaks(paths_of(args))
    print("check-secrets: no value of .env appears in a tracked file or in requirements.txt")


# --------------------------------------------------------------------------- images


def read_secret_env(path: Path) -> dict[str, str]:
    """NAME=value lines of the build secret (values verbatim: nothing is shell-evaluated)."""
    if not path.is_file():
        return {}
    pairs = (line.partition("=") for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value for name, _, value in pairs if name.strip() in PIP_SOURCE_VARIABLES}


def pip_install(venv: Path, requirements: Sequence[str], options: Sequence[str], env: dict[str, str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("".join(requirements))
    command = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--require-hashes",
               "--no-warn-script-location", "--progress-bar=off", *options, "--requirement", handle.name]  # fmt: skip
    try:
        result = subprocess.run(command, env=env)
    finally:
        os.unlink(handle.name)
    if result.returncode:
        raise UserError(f"pip install failed (exit {result.returncode}); see pip's message above")


def cmd_image_install(args: argparse.Namespace) -> None:
    """Inside the image build: models from build/, the rest from build/wheels (or the index)."""
    paths = paths_of(args)
    cache = HashCache(Path(tempfile.gettempdir()) / "sha256-cache.json")  # build/ is a read-only mount
    entries = lock_entries(paths.lock.read_text())
    models = verify_model_wheels(entries, paths, cache)
    if not Wheelhouse(paths.wheels, cache).missing(entries):
        print(f"image: installing {plural(len(entries), 'package')} from build/wheels, with no index", flush=True)
        options = ["--no-index", "--find-links", str(paths.wheels)]
        pip_install(args.venv, [e.render() for e in entries], options, offline_pip_environment())
        return
    unmatched = [e.requirement for e in entries if "-r requirements-model.in" in e.via and e.name not in models]
    if unmatched:
        raise UserError(f"build/ lacks the model wheels of {', '.join(unmatched)}: run make models before building")
    print("image: build/wheels is incomplete (make wheelhouse allows an offline build): models from build/, "
          "the other packages from the package index", flush=True)  # fmt: skip
    model_lines = [f"{path} --hash=sha256:{cache.sha256(path)}\n" for path in models.values()]
    pip_install(args.venv, model_lines, ["--no-index"], offline_pip_environment())
    others = [e.render() for e in entries if e.name not in models]
    pip_install(args.venv, others, [], {**os.environ, **read_secret_env(args.secret)})


def detect_engine(requested: str) -> str:
    if requested:
        return requested
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    if shutil.which("podman"):
        return "podman"
    raise UserError("no container engine found: install podman or docker, or set CONTAINER_ENGINE")


def cmd_docker_build(args: argparse.Namespace) -> None:
    """Build the image offline; pip credentials from .env travel only as a build secret."""
    engine = detect_engine(args.engine)
    secrets = {name: os.environ[name] for name in PIP_SOURCE_VARIABLES if os.environ.get(name)}
    with tempfile.TemporaryDirectory(prefix="docker-secret-") as private:
        secret = Path(private) / SECRET_ID
        write_private(secret, "".join(f"{name}={value}\n" for name, value in secrets.items()))
        command = [engine, "build", "--network=none", "--secret", f"id={SECRET_ID},src={secret}",
                   "--build-arg", f"BASE_IMAGE={args.base_image}", "--tag", args.image,
                   *shlex.split(args.extra), "."]  # fmt: skip
        print("$ " + shlex.join(command), flush=True)
        result = subprocess.run(command)
    if result.returncode:
        raise UserError(f"{engine} build failed (exit {result.returncode}); see its output above")
    print(f"docker: built {args.image}; try: {engine} run --rm --network=none {args.image} 'Acme hired Ada'")


# --------------------------------------------------------------------------- checks and command line


def cmd_check_python(args: argparse.Namespace) -> None:
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != args.expected:
        raise UserError(
            f"{sys.executable} is Python {running}, but this project is set up for Python {args.expected}: "
            f"run make PYTHON=python{args.expected} (or set PYTHON in .env)"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, handler: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--build", type=Path, default=Path("build"), help="where wheels and caches go")
        return sub

    def offline(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--offline", action="store_true", help="no network: use only what build/ holds")

    def api(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--api", default=DEFAULT_API, help="SPACY_MODELS_API (GITHUB_TOKEN comes from the environment)"
        )
        sub.add_argument("--base-url", default=GITHUB_RELEASES_BASE, help="SPACY_MODELS_URL: where models come from")

    def tools(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--tools-python", required=True, help="python of the venv that holds pip-tools")
        sub.add_argument("--require-env", default="", help="variables a private package needs, space-separated")

    fetch = verb("fetch", cmd_fetch, "Download the listed model wheels (each once) and write their pins.")
    offline(fetch), api(fetch)

    links = verb("links", cmd_links, "Write build/spacy_model_links.html from every page of the releases API.")
    api(links)

    check_models = verb("check-models", cmd_check_models, "Check each model's spaCy requirement against the project's.")
    offline(check_models), api(check_models)

    lock = verb("lock", cmd_lock, "Compile requirements.txt with hashes; models resolve from build/ only.")
    lock.add_argument("--upgrade", action="store_true", help="re-resolve everything to the newest allowed versions")
    offline(lock), api(lock), tools(lock)

    wheelhouse = verb("wheelhouse", cmd_wheelhouse, "Put every wheel of requirements.txt into build/wheels.")
    offline(wheelhouse), tools(wheelhouse)

    sync = verb("sync", cmd_sync, "Sync the venv with requirements.txt from build/wheels, with no index.")
    sync.add_argument("--venv", type=Path, default=Path(".venv"))
    sync.add_argument("--src", type=Path, default=Path("src"), help="folder put on the venv's path")
    tools(sync)

    verb("check-secrets", cmd_check_secrets, "Fail if a value from .env is in a tracked file or the lock.")

    docker = verb("docker-build", cmd_docker_build, "Build the image offline, pip credentials as a build secret.")
    docker.add_argument("--engine", default="", help="docker or podman; empty: detect")
    docker.add_argument("--image", required=True)
    docker.add_argument("--base-image", required=True)
    docker.add_argument("--extra", default="", help="more build options, e.g. --no-cache")

    image = verb("image-install", cmd_image_install, "Inside an image build: install the lock into a venv.")
    image.add_argument("--venv", type=Path, required=True)
    image.add_argument("--secret", type=Path, default=SECRET_MOUNT, help="NAME=value file of pip credentials")

    check_python = verb("check-python", cmd_check_python, "Fail unless this is the project's Python.")
    check_python.add_argument("expected", help="major.minor, e.g. 3.11")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no file was left half-written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Download spaCy model wheels once, lock them by hash, install them offline.

make runs this file before any virtual environment exists, so it uses the
standard library only. Each verb is one step of the Makefile's flow:

    fetch       requirements-model.in.url -> build/<model>.whl + requirements-model.in
    lock        requirements.in (+ models in build/) -> requirements.txt, with hashes
    wheelhouse  requirements.txt -> build/wheels/ (every wheel, hashes verified)
    sync        requirements.txt + build/wheels/ -> .venv (pip-sync, no index)
    docker-build  build/wheels/ -> image (offline; pip credentials only as a build secret)
    image-install   runs inside the image build: requirements.txt -> /app/.venv

Run `python scripts/models.py VERB --help` for the options of a verb.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

GITHUB_RELEASES_BASE = "https://github.com/explosion/spacy-models/releases/download"
USER_AGENT = "nlp-template-models/1"
CHUNK = 1 << 20
# Bump when the lock's post-processing changes, so old locks are recompiled.
LOCK_FORMAT = "1"
# pip variables that point pip at a network source; an offline install drops them.
PIP_SOURCE_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")


class UserError(Exception):
    """A failure the user can fix; main() prints it without a traceback."""


# --------------------------------------------------------------------------- text and files


def redact(url: str) -> str:
    """Hide the user-info part of a URL (tokens, licence keys) before it is printed."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"****@{host}"))


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def write_if_changed(path: Path, text: str) -> bool:
    """Write text atomically; leave the file (and its mtime) alone when unchanged."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)
    return True


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """sha256 of files, recomputed only when a file's size or mtime changes.

    Models weigh hundreds of MB; make calls these verbs on every install, and
    re-hashing every wheel each time would make a no-op install slow.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = self.entries.get(key)
        if entry and entry[:2] == stamp:
            return entry[2]
        digest = sha256_of(file)
        self.entries[key] = [*stamp, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.dirty:
            live = {key: value for key, value in self.entries.items() if Path(key).exists()}
            write_if_changed(self.path, json.dumps(live, indent=0, sort_keys=True) + "\n")
            self.dirty = False


# --------------------------------------------------------------------------- names and versions


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: en_core_web_sm and en-core-web-sm are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_version(text: str) -> tuple[int, ...]:
    match = re.fullmatch(r"v?(\d+(?:\.\d+)*)", text.strip())
    if not match:
        raise UserError(f"unsupported version {text!r}: use plain release numbers such as 3.8.0")
    release = tuple(int(part) for part in match.group(1).split("."))
    return release + (0,) * (3 - len(release)) if len(release) < 3 else release


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


@dataclass(frozen=True)
class Specifier:
    """A PEP 440 version specifier set, for the plain X.Y.Z versions spaCy uses."""

    clauses: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Specifier:
        clauses = []
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            match = re.fullmatch(r"(~=|===|==|!=|<=|>=|<|>)\s*([0-9][0-9.]*(?:\.\*)?)", part)
            if not match:
                raise UserError(f"cannot read the version range {text!r} (write it like >=3.7,<3.9)")
            clauses.append((match.group(1), match.group(2)))
        return cls(tuple(clauses))

    def __str__(self) -> str:
        return ",".join(op + version for op, version in self.clauses)

    def contains(self, version: str) -> bool:
        candidate = parse_version(version)
        return all(self._clause_holds(op, bound, candidate) for op, bound in self.clauses)

    @staticmethod
    def _clause_holds(op: str, bound: str, candidate: tuple[int, ...]) -> bool:
        if bound.endswith(".*"):
            prefix = tuple(int(p) for p in bound[:-2].split("."))
            same = candidate[: len(prefix)] == prefix
            return same if op == "==" else not same
        version, target = _padded(candidate, parse_version(bound))
        if op == "~=":
            release = tuple(int(p) for p in bound.split("."))
            return version >= target and version[: len(release) - 1] == release[:-1]
        return {
            "==": version == target,
            "===": version == target,
            "!=": version != target,
            "<": version < target,
            "<=": version <= target,
            ">": version > target,
            ">=": version >= target,
        }[op]


REQUIREMENT_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*)")


def split_requirement(text: str) -> tuple[str, Specifier]:
    """'spacy>=3.8,<3.9' -> ('spacy', Specifier); markers and comments are ignored."""
    match = REQUIREMENT_RE.match(text)
    if not match:
        raise UserError(f"cannot read the requirement {text!r}")
    return match.group(1), Specifier.parse(match.group(3))


# --------------------------------------------------------------------------- wheels


@dataclass(frozen=True)
class WheelInfo:
    path: Path
    name: str
    version: str
    requires: tuple[str, ...]
    requires_python: str

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def requirement_on(self, project: str) -> str | None:
        for requirement in self.requires:
            if ";" in requirement and "extra ==" in requirement:
                continue
            name, _ = split_requirement(requirement)
            if canonical_name(name) == canonical_name(project):
                return requirement.split(";")[0].strip()
        return None


def read_wheel(path: Path) -> WheelInfo:
    """Name, version and requirements from the wheel's own METADATA (not its file name)."""
    try:
        with zipfile.ZipFile(path) as archive:
            metadata_names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            if len(metadata_names) != 1:
                raise UserError(f"{path} is not a wheel: it has no single *.dist-info/METADATA")
            text = archive.read(metadata_names[0]).decode("utf-8")
    except zipfile.BadZipFile as error:
        raise UserError(f"{path} is not a valid wheel ({error}): delete it and run make models again") from error
    headers = HeaderParser().parsestr(text)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise UserError(f"{path}: METADATA has no Name or Version")
    return WheelInfo(
        path=path,
        name=name.strip(),
        version=version.strip(),
        requires=tuple(headers.get_all("Requires-Dist") or ()),
        requires_python=(headers.get("Requires-Python") or "").strip(),
    )


def wheel_filename_parts(filename: str) -> tuple[str, str]:
    """('en_core_web_sm', '3.8.0') from a wheel's file name."""
    parts = filename[: -len(".whl")].split("-")
    if not filename.endswith(".whl") or len(parts) < 5:
        raise UserError(f"{filename!r} is not a wheel file name (name-version-python-abi-platform.whl)")
    return parts[0], parts[1]


# --------------------------------------------------------------------------- downloads


@dataclass(frozen=True)
class ModelUrl:
    url: str
    sha256: str | None
    where: str

    @property
    def filename(self) -> str:
        path = urllib.parse.urlsplit(self.url).path
        return urllib.parse.unquote(path.rsplit("/", 1)[-1])


def resolve_model_url(raw: str, base_url: str) -> str:
    """Relative lines are joined to SPACY_MODELS_URL; GitHub's base is swapped for a mirror."""
    base = base_url.rstrip("/")
    if "://" not in raw:
        return f"{base}/{raw.lstrip('/')}"
    if raw.startswith(GITHUB_RELEASES_BASE + "/") and base != GITHUB_RELEASES_BASE:
        return base + raw[len(GITHUB_RELEASES_BASE) :]
    return raw


def read_model_urls(path: Path, base_url: str) -> list[ModelUrl]:
    """One wheel URL a line; '#' starts a comment unless it is the URL's #sha256= fragment."""
    urls = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = re.split(r"\s+#", line, maxsplit=1)[0].strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{number}"
        location, _, fragment = text.partition("#")
        sha256 = None
        for item in filter(None, fragment.split("&")):
            key, _, value = item.partition("=")
            if key == "sha256" and re.fullmatch(r"[0-9a-f]{64}", value):
                sha256 = value
            elif key != "egg":
                raise UserError(f"{where}: unsupported URL fragment #{item}; use #sha256=<64 hex digits>")
        model = ModelUrl(resolve_model_url(location, base_url), sha256, where)
        wheel_filename_parts(model.filename)
        urls.append(model)
    seen: dict[str, str] = {}
    for model in urls:
        name = canonical_name(wheel_filename_parts(model.filename)[0])
        if name in seen:
            raise UserError(f"{model.where}: {name} is already listed at {seen[name]}; keep one version a model")
        seen[name] = model.where
    return urls


def open_url(url: str, headers: dict[str, str] | None = None, timeout: float = 60):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)


def describe_http_error(url: str, error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason} from {redact(url)}"
    reason = getattr(error, "reason", error)
    return f"cannot reach {redact(url)} ({reason})"


class Progress:
    """One line per file: updated in place on a terminal, every 25 % in a log."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total = label, total
        self.done, self.started, self.next_mark = 0, time.monotonic(), 25
        self.tty = sys.stdout.isatty()

    def advance(self, size: int) -> None:
        self.done += size
        if not self.total:
            return
        percent = 100 * self.done // self.total
        if self.tty:
            print(
                f"\r  {self.label}: {human_size(self.done)} / {human_size(self.total)} ({percent}%)", end="", flush=True
            )
        elif percent >= self.next_mark and percent < 100:
            print(f"  {self.label}: {percent}% of {human_size(self.total)}", flush=True)
            self.next_mark = (percent // 25 + 1) * 25

    def finish(self) -> None:
        seconds = max(time.monotonic() - self.started, 1e-3)
        end = "\r" if self.tty else ""
        print(
            f"{end}  {self.label}: {human_size(self.done)} in {seconds:.1f} s ({human_size(self.done / seconds)}/s)",
            flush=True,
        )


def download(url: str, dest: Path, expected_sha256: str | None, attempts: int = 3) -> str:
    """Download to a temporary name, check the hash, then rename: no partial file is left."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"Downloading {dest.name} from {redact(url)}", flush=True)
    for attempt in range(1, attempts + 1):
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            digest = _fetch_to(url, tmp, dest.name)
            break
        except urllib.error.HTTPError as error:
            tmp.unlink(missing_ok=True)
            if error.code < 500 or attempt == attempts:
                hint = " (is the model name and version right?)" if error.code == 404 else ""
                raise UserError(f"download failed: {describe_http_error(url, error)}{hint}") from error
        except (urllib.error.URLError, OSError) as error:
            tmp.unlink(missing_ok=True)
            if attempt == attempts:
                raise UserError(
                    f"download failed: {describe_http_error(url, error)}. Check the network, or point "
                    "SPACY_MODELS_URL at a mirror; OFFLINE=1 uses only what build/ holds"
                ) from error
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        time.sleep(attempt)
    if expected_sha256 and digest != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise UserError(
            f"{dest.name} from {redact(url)} has sha256 {digest}, but its #sha256= fragment says "
            f"{expected_sha256}: the file is not the one you pinned. Nothing was kept."
        )
    try:
        read_wheel(tmp)
    except UserError:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{redact(url)} did not return a wheel (an HTML error page?). Nothing was kept.") from None
    os.replace(tmp, dest)
    return digest


def _fetch_to(url: str, tmp: Path, label: str) -> str:
    digest = hashlib.sha256()
    with open_url(url) as response, tmp.open("wb") as out:
        length = response.headers.get("Content-Length")
        progress = Progress(label, int(length) if length and length.isdigit() else None)
        while chunk := response.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            progress.advance(len(chunk))
        progress.finish()
    return digest.hexdigest()


# --------------------------------------------------------------------------- compatibility


def series_versions(series: str) -> Iterator[str]:
    """3.8 -> 3.8.0 ... 3.8.99: the spaCy releases a 'minor series' answer stands for."""
    return (f"{series}.{patch}" for patch in range(100))


def check_fits_spacy(wheel: WheelInfo, spacy_series: str, where: str) -> None:
    requirement = wheel.requirement_on("spacy")
    if requirement is None or not spacy_series:
        return
    _, spec = split_requirement(requirement)
    if not any(spec.contains(version) for version in series_versions(spacy_series)):
        raise UserError(
            f"{wheel.name} {wheel.version} ({where}) needs {requirement}, but this project uses "
            f"spaCy {spacy_series}: pick a {wheel.name} release for spaCy {spacy_series} "
            f"(model versions {spacy_series}.x), or change spacy_version with copier update"
        )


def check_fits_python(wheel: WheelInfo, where: str) -> None:
    if not wheel.requires_python:
        return
    running = ".".join(map(str, sys.version_info[:3]))
    if not Specifier.parse(wheel.requires_python).contains(running):
        raise UserError(
            f"{wheel.name} {wheel.version} ({where}) needs Python {wheel.requires_python}, "
            f"but make runs Python {running}: set PYTHON to a fitting interpreter"
        )


# --------------------------------------------------------------------------- fetch


def model_wheels_in(directory: Path) -> dict[str, Path]:
    """canonical 'name==version' -> wheel file, for the wheels directly in build/."""
    found = {}
    for path in sorted(directory.glob("*.whl")):
        name, version = wheel_filename_parts(path.name)
        found[f"{canonical_name(name)}=={version}"] = path
    return found


def fetch_models(
    urls: Sequence[ModelUrl], dest: Path, cache: HashCache, offline: bool, spacy_series: str
) -> list[WheelInfo]:
    wheels, downloaded = [], 0
    for model in urls:
        target = dest / model.filename
        if target.exists():
            if model.sha256 and cache.sha256(target) != model.sha256:
                raise UserError(
                    f"{target} does not match the #sha256= of {model.where}: it was changed or "
                    f"corrupted. Delete it and run make models to download it again"
                )
        elif offline:
            raise UserError(f"OFFLINE=1, but {target} is missing: run make models once with network access")
        else:
            download(model.url, target, model.sha256)
            downloaded += target.stat().st_size
        wheel = read_wheel(target)
        name, version = wheel_filename_parts(model.filename)
        if (canonical_name(wheel.name), wheel.version) != (canonical_name(name), version):
            raise UserError(f"{target} holds {wheel.pin}, not what its file name says ({model.where})")
        check_fits_spacy(wheel, spacy_series, model.where)
        check_fits_python(wheel, model.where)
        wheels.append(wheel)
    if downloaded:
        print(f"models: downloaded {human_size(downloaded)} into {dest}/", flush=True)
    return wheels


def render_pins(wheels: Iterable[WheelInfo], source: Path) -> str:
    lines = [f"# Generated by `make models` from {source}: edit that file, not this one.\n"]
    lines += [f"{wheel.pin}\n" for wheel in sorted(wheels, key=lambda w: canonical_name(w.name))]
    return "".join(lines)


def cmd_fetch(args: argparse.Namespace) -> None:
    cache = HashCache(args.dest / ".sha256-cache.json")
    urls = read_model_urls(args.urls, args.base_url)
    wheels = fetch_models(urls, args.dest, cache, args.offline, args.spacy_series)
    cache.save()
    if write_if_changed(args.pins, render_pins(wheels, args.urls)):
        print(f"models: wrote {args.pins} ({len(wheels)} model{'s' * (len(wheels) != 1)})")


# --------------------------------------------------------------------------- lock files


@dataclass
class LockEntry:
    """One requirement of a pip-compile output: its line, hashes and '# via' sources."""

    requirement: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.requirement)
        return canonical_name(match.group(0) if match else self.requirement)

    @property
    def version(self) -> str:
        match = re.search(r"===?\s*([^\s;,]+)", self.requirement)
        return match.group(1) if match else ""

    def render(self) -> str:
        items = [f"--hash={h}" for h in self.hashes] + self.options
        lines = [self.requirement + (" \\" if items else "")]
        lines += [f"    {item}" + (" \\" if i < len(items) - 1 else "") for i, item in enumerate(items)]
        if len(self.via) == 1:
            lines.append(f"    # via {self.via[0]}")
        elif self.via:
            lines += ["    # via"] + [f"    #   {source}" for source in self.via]
        return "\n".join(lines) + "\n"


def parse_lock(text: str) -> list[str | LockEntry]:
    """Split a lock into LockEntry items and the comment/blank lines between them."""
    items: list[str | LockEntry] = []
    entry: LockEntry | None = None
    in_via = False
    for line in text.splitlines():
        if line.startswith((" ", "\t")) and entry is not None:
            body = line.strip().rstrip("\\").strip()
            if body.startswith("--hash="):
                entry.hashes.append(body[len("--hash=") :])
            elif body == "# via":
                in_via = True
            elif body.startswith("# via "):
                entry.via.append(body[len("# via ") :])
            elif body.startswith("#") and in_via:
                entry.via.append(body.lstrip("#").strip())
            elif body:
                entry.options.append(body)
            continue
        in_via = False
        if line and not line.startswith(("#", "-")):
            entry = LockEntry(line.rstrip("\\").strip())
            items.append(entry)
        else:
            entry = None
            items.append(line + "\n")
    return items


def render_lock(items: Iterable[str | LockEntry]) -> str:
    return "".join(item if isinstance(item, str) else item.render() for item in items)


def lock_entries(text: str) -> list[LockEntry]:
    return [item for item in parse_lock(text) if isinstance(item, LockEntry)]


def lock_problems(text: str) -> list[str]:
    """What would make a lock unsafe to commit or to install by hash."""
    problems = []
    for line in text.splitlines():
        if re.match(r"\s*(-i|-f|--index-url|--extra-index-url|--find-links|--trusted-host)\b", line):
            problems.append(f"it names a package source: {line.split()[0]} ...")
        if "file://" in line or re.search(r"://[^/\s]*@", line):
            problems.append("it holds a local path or a URL with credentials")
    for entry in lock_entries(text):
        if not entry.hashes:
            problems.append(f"{entry.requirement} has no --hash")
        if "==" not in entry.requirement:
            problems.append(f"{entry.requirement} is not pinned with ==")
    return problems


def repin_models(text: str, models: dict[str, WheelInfo], hashes: dict[str, str], constraints: str) -> str:
    """Turn pip-compile's 'name @ file://build/...' lines into 'name==version' + the build/ hash."""
    items = parse_lock(text)
    for item in items:
        if isinstance(item, str) or item.name not in models:
            continue
        wheel = models[item.name]
        item.requirement = f"{item.name}=={wheel.version}"
        item.hashes = [f"sha256:{hashes[item.name]}"]
        item.via = [source for source in item.via if constraints not in source]
    return render_lock(items)


DIGEST_PREFIX = "# make lock inputs: sha256:"


def stamp_digest(text: str, digest: str) -> str:
    """Record the inputs' digest under pip-compile's header comment."""
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(DIGEST_PREFIX)]
    header_end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    lines.insert(header_end, f"{DIGEST_PREFIX}{digest}\n")
    return "".join(lines)


def recorded_digest(lock: Path) -> str | None:
    if not lock.exists():
        return None
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX) :].strip()
    return None


def included_files(requirements: Path) -> list[Path]:
    """requirements.in and every file it pulls in with -r/-c, in order, each once."""
    seen: list[Path] = []
    pending = [requirements]
    while pending:
        path = pending.pop(0)
        if path in seen or not path.exists():
            continue
        seen.append(path)
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)", line)
            if match:
                pending.append(path.parent / match.group(1))
    return seen


def inputs_digest(requirements: Path, model_hashes: dict[str, str]) -> str:
    digest = hashlib.sha256(f"format {LOCK_FORMAT} python {sys.version_info[:2]}\n".encode())
    for path in included_files(requirements):
        digest.update(f"{path.name}\n".encode() + path.read_bytes())
    for name in sorted(model_hashes):
        digest.update(f"{name} {model_hashes[name]}\n".encode())
    return digest.hexdigest()


def read_pins(path: Path) -> list[tuple[str, str]]:
    """(name, version) for each 'name==version' line of requirements-model.in."""
    pins = []
    for line in path.read_text().splitlines() if path.exists() else []:
        text = line.split("#", 1)[0].strip()
        if text:
            name, _, version = text.partition("==")
            pins.append((name.strip(), version.strip()))
    return pins


def locate_models(pins_file: Path, models_dir: Path) -> dict[str, WheelInfo]:
    available = model_wheels_in(models_dir)
    models = {}
    for name, version in read_pins(pins_file):
        path = available.get(f"{canonical_name(name)}=={version}")
        if path is None:
            raise UserError(f"{name}=={version} is in {pins_file} but not in {models_dir}/: run make models")
        models[canonical_name(name)] = read_wheel(path)
    return models


def run_pip_compile(tools_python: str, output: Path, requirements: Path, constraints: Path, upgrade: bool) -> None:
    command = [
        tools_python, "-m", "piptools", "compile", "--quiet", "--strip-extras",
        "--generate-hashes", "--allow-unsafe", "--no-emit-index-url", "--no-emit-find-links",
        "--constraint", str(constraints), "--output-file", str(output), str(requirements),
    ]  # fmt: skip
    if upgrade:
        command.insert(4, "--upgrade")
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"}
    print(f"lock: pip-compile {requirements} -> requirements.txt (this takes a minute or two)", flush=True)
    result = subprocess.run(command, env=env)
    if result.returncode:
        raise UserError(f"pip-compile failed (exit {result.returncode}); requirements.txt was left as it was")


def cmd_lock(args: argparse.Namespace) -> None:
    cache = HashCache(args.models_dir / ".sha256-cache.json")
    models = locate_models(args.pins, args.models_dir)
    hashes = {name: cache.sha256(wheel.path) for name, wheel in models.items()}
    cache.save()
    digest = inputs_digest(args.requirements, hashes)
    if not args.upgrade and recorded_digest(args.output) == digest:
        args.output.touch()
        print(f"lock: {args.output} already matches its inputs; pip-compile skipped")
        return
    if args.offline:
        raise UserError(f"OFFLINE=1, but {args.output} does not match its inputs: run make lock with network access")
    work = args.models_dir / "lock"
    work.mkdir(parents=True, exist_ok=True)
    constraints = work / "model-constraints.txt"
    constraints.write_text("".join(f"{w.name} @ {w.path.resolve().as_uri()}\n" for w in models.values()))
    draft = work / "requirements.txt"
    if args.output.exists():
        shutil.copyfile(args.output, draft)  # pip-compile keeps the pins it finds there
    run_pip_compile(args.tools_python, draft, args.requirements, constraints, args.upgrade)
    text = stamp_digest(repin_models(draft.read_text(), models, hashes, str(constraints)), digest)
    problems = lock_problems(text)
    if problems:
        raise UserError(
            "the compiled lock is not safe to use, so requirements.txt was kept:\n  " + "\n  ".join(problems)
        )
    old = args.output.read_text() if args.output.exists() else ""
    write_if_changed(args.output, text)
    args.output.touch()
    report_changes(old, text)


def report_changes(old: str, new: str) -> None:
    before = {e.name: e.version for e in lock_entries(old)}
    after = {e.name: e.version for e in lock_entries(new)}
    changes = [
        f"  {name}: {before.get(name, '(new)')} -> {after.get(name, '(removed)')}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]
    if not old:
        print(f"lock: wrote requirements.txt ({len(after)} packages, each with its hashes)")
    elif changes:
        print("lock: requirements.txt changed:\n" + "\n".join(changes))
    else:
        print("lock: requirements.txt: no version changed")


# --------------------------------------------------------------------------- wheelhouse


def find_in_wheelhouse(entry: LockEntry, files: Sequence[Path], cache: HashCache) -> Path | None:
    prefix = canonical_name(entry.name)
    for path in files:
        if canonical_name(path.name.split("-")[0]) == prefix and f"sha256:{cache.sha256(path)}" in entry.hashes:
            return path
    return None


def link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def verify_model_wheels(
    entries: Sequence[LockEntry], models_dir: Path, lock: Path, cache: HashCache
) -> dict[str, Path]:
    """Model wheels in build/ must carry the hash the lock holds; a changed byte stops here."""
    found = {}
    for key, path in model_wheels_in(models_dir).items():
        name, version = key.split("==")
        entry = next((e for e in entries if e.name == name and e.version == version), None)
        if entry is None:
            continue
        actual = f"sha256:{cache.sha256(path)}"
        if actual not in entry.hashes:
            raise UserError(
                f"{path} does not match {lock} ({entry.hashes[0]} expected, {actual} found): the file "
                f"changed after it was locked. Delete it and run make install to download it again, "
                f"or run make lock if you replaced the model on purpose. Nothing was installed."
            )
        found[name] = path
    return found


def cmd_wheelhouse(args: argparse.Namespace) -> None:
    args.dest.mkdir(parents=True, exist_ok=True)
    cache = HashCache(args.models_dir / ".sha256-cache.json")
    entries = lock_entries(args.lock.read_text())
    models = verify_model_wheels(entries, args.models_dir, args.lock, cache)
    for path in models.values():
        target = args.dest / path.name
        if not target.exists() or cache.sha256(target) != cache.sha256(path):
            link_or_copy(path, target)
    files = sorted(p for p in args.dest.iterdir() if p.is_file() and not p.name.startswith("."))
    missing = [e for e in entries if e.name not in models and not find_in_wheelhouse(e, files, cache)]
    if missing and args.offline:
        names = ", ".join(e.requirement for e in missing)
        raise UserError(f"OFFLINE=1, but build/wheels lacks {names}: run make wheelhouse once with network access")
    if missing:
        download_missing(missing, args.dest, args.tools_python)
    files = sorted(p for p in args.dest.iterdir() if p.is_file() and not p.name.startswith("."))
    needed = {p for e in entries if (p := find_in_wheelhouse(e, files, cache))}
    absent = [e.requirement for e in entries if e.name not in models and not find_in_wheelhouse(e, files, cache)]
    if absent:
        raise UserError("pip download did not provide " + ", ".join(absent))
    for stale in set(files) - needed:
        stale.unlink()
    cache.save()
    print(f"wheelhouse: {len(needed)} files in {args.dest}/ match {args.lock}")


def download_missing(missing: Sequence[LockEntry], dest: Path, tools_python: str) -> None:
    subset = dest / ".missing.txt"
    subset.write_text("".join(entry.render() for entry in missing))
    print(f"wheelhouse: downloading {len(missing)} package{'s' * (len(missing) != 1)} into {dest}/", flush=True)
    command = [tools_python, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
               "--dest", str(dest), "--requirement", str(subset)]  # fmt: skip
    result = subprocess.run(command)
    subset.unlink(missing_ok=True)
    if result.returncode:
        raise UserError(f"pip download failed (exit {result.returncode}); see pip's message above")


# --------------------------------------------------------------------------- sync


def offline_pip_environment() -> dict[str, str]:
    """pip with no index, no find-links and no config: only build/wheels can be installed."""
    env = {k: v for k, v in os.environ.items() if k not in PIP_SOURCE_VARIABLES}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def cmd_sync(args: argparse.Namespace) -> None:
    cache = HashCache(args.models_dir / ".sha256-cache.json")
    entries = lock_entries(args.lock.read_text())
    verify_model_wheels(entries, args.models_dir, args.lock, cache)
    files = sorted(p for p in args.wheels.glob("*") if p.is_file() and not p.name.startswith("."))
    absent = [e.requirement for e in entries if not find_in_wheelhouse(e, files, cache)]
    cache.save()
    if absent:
        raise UserError(f"{args.wheels}/ lacks {', '.join(absent)}: run make wheelhouse")
    venv_python = args.venv / "bin" / "python"
    if not venv_python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(args.venv)], check=True)
    command = [args.tools_python, "-m", "piptools", "sync", "--python-executable", str(venv_python),
               "--no-index", "--find-links", str(args.wheels), "--pip-args", "--quiet", str(args.lock)]  # fmt: skip
    result = subprocess.run(command, env=offline_pip_environment())
    if result.returncode:
        raise UserError(f"pip-sync failed (exit {result.returncode}); see its message above")
    if args.src:
        add_source_path(venv_python, args.src)
    print(f"install: {args.venv} holds the {len(entries)} packages of {args.lock}, installed from {args.wheels}/")


def add_source_path(venv_python: Path, src: Path) -> None:
    """Put src/ on the venv's path (a .pth file), so `python -m <package>` works without installing it."""
    purelib = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    write_if_changed(Path(purelib) / "_project_src.pth", f"{src.resolve()}\n")


# --------------------------------------------------------------------------- images


SECRET_ID = "pip_env"  # noqa: S105 - the name of the build secret, not a value
SECRET_PATH = Path("/run/secrets") / SECRET_ID


def read_secret_env(path: Path) -> dict[str, str]:
    """NAME=value lines of the build secret (values verbatim: nothing is shell-evaluated)."""
    if not path.is_file():
        return {}
    pairs = (line.partition("=") for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value for name, _, value in pairs if name.strip() in PIP_SOURCE_VARIABLES}


def pip_install(venv: Path, requirements: Sequence[str], extra: Sequence[str], env: dict[str, str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("".join(requirements))
    command = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--require-hashes",
               "--no-warn-script-location", *extra, "--requirement", handle.name]  # fmt: skip
    try:
        result = subprocess.run(command, env=env)
    finally:
        os.unlink(handle.name)
    if result.returncode:
        raise UserError(f"pip install failed (exit {result.returncode}); see pip's message above")


def cmd_image_install(args: argparse.Namespace) -> None:
    """Inside the image build: models from build/, the rest from build/wheels or the index."""
    cache = HashCache(Path(tempfile.gettempdir()) / "sha256-cache.json")  # build/ is mounted read-only
    entries = lock_entries(args.lock.read_text())
    models = verify_model_wheels(entries, args.models_dir, args.lock, cache)
    wheels = args.models_dir / "wheels"
    files = sorted(p for p in wheels.glob("*") if p.is_file()) if wheels.is_dir() else []
    if all(find_in_wheelhouse(e, files, cache) for e in entries):
        print(f"image: installing {len(entries)} packages from build/wheels, no index", flush=True)
        pip_install(args.venv, [e.render() for e in entries], ["--no-index", "--find-links", str(wheels)],
                    offline_pip_environment())  # fmt: skip
        return
    missing = [e.requirement for e in entries if e.name in model_names(entries) and e.name not in models]
    if missing:
        raise UserError(f"build/ lacks the model wheels of {', '.join(missing)}: run make models before building")
    print("image: build/wheels is incomplete (run make wheelhouse for an offline build); models come "
          "from build/, the other packages from the package index", flush=True)  # fmt: skip
    model_lines = [f"{path} --hash=sha256:{cache.sha256(path)}\n" for path in models.values()]
    pip_install(args.venv, model_lines, ["--no-index"], offline_pip_environment())
    others = [e.render() for e in entries if e.name not in models]
    pip_install(args.venv, others, [], {**os.environ, **read_secret_env(args.secret)})


def model_names(entries: Sequence[LockEntry]) -> set[str]:
    """Lock entries that come from requirements-model.in (by their '# via' annotation)."""
    return {e.name for e in entries if any("requirements-model.in" in source for source in e.via)}


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
        descriptor = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("".join(f"{name}={value}\n" for name, value in secrets.items()))
        command = [engine, "build", "--network=none", "--secret", f"id={SECRET_ID},src={secret}",
                   "--build-arg", f"BASE_IMAGE={args.base_image}", "--tag", args.image,
                   *shlex.split(args.extra), "."]  # fmt: skip
        print("$ " + shlex.join(command), flush=True)
        result = subprocess.run(command)
    if result.returncode:
        raise UserError(f"{engine} build failed (exit {result.returncode}); see its output above")
    print(f"docker: built {args.image}; run it with: {engine} run --rm --network=none {args.image} 'some text'")


# --------------------------------------------------------------------------- checks


def cmd_check_python(args: argparse.Namespace) -> None:
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != args.expected:
        raise UserError(
            f"{sys.executable} is Python {running}, but this project is set up for Python {args.expected}. "
            f"Run make PYTHON=python{args.expected} (or set PYTHON in .env)."
        )


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, handler: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    fetch = verb("fetch", cmd_fetch, "Download the listed model wheels (each once) and write the pins.")
    fetch.add_argument("--urls", type=Path, default=Path("requirements-model.in.url"))
    fetch.add_argument("--pins", type=Path, default=Path("requirements-model.in"))
    fetch.add_argument("--dest", type=Path, default=Path("build"))
    fetch.add_argument("--base-url", default=GITHUB_RELEASES_BASE, help="SPACY_MODELS_URL")
    fetch.add_argument("--spacy-series", default="", help="the project's spaCy minor series, e.g. 3.8")

    lock = verb("lock", cmd_lock, "Compile requirements.txt with hashes; models come from build/ only.")
    lock.add_argument("--requirements", type=Path, default=Path("requirements.in"))
    lock.add_argument("--pins", type=Path, default=Path("requirements-model.in"))
    lock.add_argument("--output", type=Path, default=Path("requirements.txt"))
    lock.add_argument("--models-dir", type=Path, default=Path("build"))
    lock.add_argument("--tools-python", required=True, help="python of the venv that holds pip-tools")
    lock.add_argument("--upgrade", action="store_true", help="re-resolve to the newest allowed versions")

    wheelhouse = verb("wheelhouse", cmd_wheelhouse, "Put every wheel of requirements.txt into build/wheels.")
    wheelhouse.add_argument("--lock", type=Path, default=Path("requirements.txt"))
    wheelhouse.add_argument("--models-dir", type=Path, default=Path("build"))
    wheelhouse.add_argument("--dest", type=Path, default=Path("build/wheels"))
    wheelhouse.add_argument("--tools-python", required=True)

    sync = verb("sync", cmd_sync, "Install requirements.txt into the venv from build/wheels, no index.")
    sync.add_argument("--lock", type=Path, default=Path("requirements.txt"))
    sync.add_argument("--models-dir", type=Path, default=Path("build"))
    sync.add_argument("--wheels", type=Path, default=Path("build/wheels"))
    sync.add_argument("--venv", type=Path, default=Path(".venv"))
    sync.add_argument("--tools-python", required=True)
    sync.add_argument("--src", type=Path, default=Path("src"), help="put this folder on the venv's path")

    image = verb("image-install", cmd_image_install, "Inside an image build: install the lock into a venv.")
    image.add_argument("--lock", type=Path, default=Path("requirements.txt"))
    image.add_argument("--models-dir", type=Path, default=Path("build"))
    image.add_argument("--venv", type=Path, required=True)
    image.add_argument("--secret", type=Path, default=SECRET_PATH, help="NAME=value file of pip credentials")

    docker = verb("docker-build", cmd_docker_build, "Build the image offline, credentials as a build secret.")
    docker.add_argument("--engine", default="", help="docker or podman; empty: detect")
    docker.add_argument("--image", required=True)
    docker.add_argument("--base-image", required=True)
    docker.add_argument("--extra", default="", help="more build options, e.g. --no-cache")

    check_python = verb("check-python", cmd_check_python, "Fail unless this is the project's Python.")
    check_python.add_argument("expected", help="major.minor, e.g. 3.11")

    for sub in (fetch, lock, wheelhouse):
        sub.add_argument("--offline", action="store_true", default=bool(os.environ.get("OFFLINE")))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

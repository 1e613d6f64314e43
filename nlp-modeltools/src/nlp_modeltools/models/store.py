"""The machine-wide model cache: files by their sha256, downloaded once, resumable, verified before they are kept.

Layout (NLP_MODELS_CACHE, else $XDG_CACHE_HOME/nlp-template/models, else
~/.cache/nlp-template/models):

    sha256/<hex>              read-only entries, named by the sha256 of their content
    hashes.json               the verified state of each entry (files.HashCache)
    urls.json                 sha256 of a URL -> sha256 of what it served (no URL, so no credential, on disk);
                              built:<sdist sha256> -> sha256 of the wheel built from it
    used/<hex>                touched whenever an entry is used: its mtime is the last use
    partial/<url hash>.part   a download in progress, resumed with an HTTP Range request
    .lock                     one process changes the index files at a time

A runtime self-install (src/<package>/models.py) reads and adds entries the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import (
    HashCache,
    describe_os_error,
    is_locked,
    link_or_copy,
    locked,
    read_json,
    sha256_of,
    write_atomic,
)
from nlp_modeltools.core.http import TIMEOUT, Session, failure
from nlp_modeltools.core.redact import mask

SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 16
ATTEMPTS = 4  # requests per download when the connection breaks mid-body; each resumes where the last stopped


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """NLP_MODELS_CACHE, else $XDG_CACHE_HOME/nlp-template/models, else ~/.cache/nlp-template/models."""
    if explicit := environ.get("NLP_MODELS_CACHE"):
        return Path(explicit).expanduser()
    if xdg := environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "nlp-template" / "models"
    return Path.home() / ".cache" / "nlp-template" / "models"


def human_size(size: float) -> str:
    """1234567 -> '1.2MB' (powers of 1000, as download sizes are shown): tqdm's own format."""
    return tqdm.format_sizeof(size, "B", 1000)


def url_key(url: str) -> str:
    """The name a URL gets on disk: the sha256 of it without its user-info."""
    return hashlib.sha256(re.sub(r"//[^/@]*@", "//", url, count=1).encode()).hexdigest()


@contextlib.contextmanager
def writing_in(directory: Path):
    """An OSError while writing in directory becomes one UserError that names it."""
    try:
        yield
    except OSError as error:
        if isinstance(error, requests.RequestException):  # requests' errors are OSErrors too: not the disk's
            raise
        raise UserError(describe_os_error(error, directory, "NLP_MODELS_CACHE")) from None


class RetryError(Exception):
    """A download attempt that broke off; the next one resumes (or restarts when `restart`)."""

    def __init__(self, reason: str, restart: bool = False, received: int = 0) -> None:
        super().__init__(reason)
        self.restart, self.received = restart, received


@dataclass(frozen=True)
class Partial:
    """A resumable download: the bytes so far (.part) and what the server said of them (.part.json)."""

    path: Path

    @property
    def state_file(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def resume_from(self) -> tuple[int, str | None, int | None]:
        """(bytes so far, the validator for If-Range, the total size): (0, None, None) to start afresh."""
        try:
            state, size = json.loads(self.state_file.read_text()), self.path.stat().st_size
            return size, state.get("etag") or state.get("last_modified"), state.get("total")
        except (OSError, ValueError, AttributeError):
            return 0, None, None

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)


def content_range_start(value: str | None) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*", value or "")
    return int(match[1]) if match else None


def html_page(url: str) -> UserError:
    return UserError(
        f"{mask(url)} returned an HTML page, not a model (a login page?): check the URL and its credentials"
    )


def download_once(session: Session, url: str, part: Partial, label: str) -> int:
    """One request that resumes the part (Range, If-Range) or restarts it; returns the bytes received."""
    offset, validator, known_total = part.resume_from()
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers.update({"Range": f"bytes={offset}-", **({"If-Range": validator} if validator else {})})
    try:  # urllib3 has retried what a retry can fix (refused connections, 429, 5xx) by now
        response = session.get(url, headers=headers, stream=True, timeout=TIMEOUT)
    except requests.RequestException as error:
        raise failure(url, error, f"downloading {label}", session) from None
    with response:
        if response.status_code == 416 and offset:
            part.discard()
            raise RetryError("the server could not resume; starting again", restart=True)
        if response.status_code >= 400:
            raise failure(url, response, f"downloading {label}", session)
        if response.status_code != 206:
            offset = 0
        elif content_range_start(response.headers.get("Content-Range")) != offset:
            part.discard()
            raise RetryError("the server sent another part of the file than asked; starting again", restart=True)
        if response.headers.get("Content-Type", "").split(";")[0].strip().lower() == "text/html":
            part.discard()
            raise html_page(url)
        length = response.headers.get("Content-Length", "")
        total = offset + int(length) if length.isdigit() else known_total if offset else None
        state = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
        write_atomic(part.state_file, json.dumps({**state, "total": total}))
        verb = f"Resuming {label} at {human_size(offset)}" if offset else f"Downloading {label}"
        size = f" ({human_size(total)})" if total else ""
        print(f"{verb}{size} from {mask(url)}", file=sys.stderr, flush=True)
        received = 0
        with part.path.open("ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=label, disable=None, leave=False
        ) as bar:  # fmt: skip
            try:
                while chunk := response.raw.read1(CHUNK):  # what has arrived: a cut keeps every byte received
                    if offset + received == 0 and chunk.lstrip()[:1] == b"<":
                        part.discard()
                        raise html_page(url)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
                broke = f"the connection broke after {human_size(offset + received)} ({type(error).__name__})"
                raise RetryError(broke, received=received) from None
    done = offset + received
    if total is not None and done != total:
        if done > total:
            part.discard()
        ended = f"the connection ended after {human_size(done)} of {human_size(total)}"
        raise RetryError(ended, restart=done > total, received=received)
    return received


def download(session: Session, url: str, part: Partial, label: str) -> int:
    """The whole file into part, resuming after a broken connection; returns the bytes received."""
    received = 0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return received + download_once(session, url, part, label)
        except RetryError as problem:
            received += problem.received
            if attempt == ATTEMPTS:
                raise UserError(
                    f"downloading {label} from {mask(url)} gave up after {ATTEMPTS} attempts, last: {problem}. "
                    "Check the network (or SPACY_MODELS_URL) and run the command again: it resumes where it stopped"
                ) from None
            print(f"  {label}: {problem}; trying again", file=sys.stderr, flush=True)
            time.sleep(0 if problem.restart else min(0.5 * 2 ** (attempt - 1), 8))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Entry:
    sha256: str
    size: int
    last_used: float  # seconds since the epoch


@dataclass(frozen=True)
class Fetched:
    path: Path  # the entry in the store
    sha256: str
    downloaded: int  # bytes received by this call


class ModelStore:
    """The machine-wide content-addressed cache of model files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.entries = self.root / "sha256"
        self.partials = self.root / "partial"
        self.hashes = HashCache(self.root / "hashes.json")

    def get(self, sha256: str) -> Path | None:
        """The entry holding sha256, if present and intact; a corrupted entry is deleted."""
        path = self.entries / sha256
        if not SHA256.fullmatch(sha256) or not path.is_file():
            return None
        if self.hashes.sha256(path) != sha256:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            self.hashes.save()
            (self.root / "used").mkdir(exist_ok=True)
            (self.root / "used" / sha256).touch()
        return path

    def sha256_for_url(self, url: str) -> str | None:
        return self._index().get(url_key(url))

    def built_from(self, sdist_sha256: str) -> Path | None:
        """The wheel built from an sdist of the store, if the store still holds it."""
        return self.get(self._index().get(f"built:{sdist_sha256}", "-"))

    def fetch(
        self,
        session: Session,
        url: str,
        *,
        sha256: str | None = None,
        partial_dir: Path | None = None,
        check: Callable[[Path], None] | None = None,
        label: str | None = None,
        offline: bool = False,
        fix: str = "",
    ) -> Fetched:
        """The file at url: from the store when it holds it (0 bytes), else downloaded, verified and stored.

        sha256 is the hash the file must have (UserError otherwise, nothing kept); check(path)
        may refuse the complete file by raising (the partial is then deleted). partial_dir
        holds the resumable .part files (default: the store's partial/).
        """
        label = label or url.rsplit("/", 1)[-1]
        if found := self.get(sha256 or self.sha256_for_url(url) or "-"):
            return Fetched(found, found.name, 0)
        if offline:
            raise UserError(
                f"{label} is not in the model cache ({self.root}) and OFFLINE=1 forbids downloading it from "
                f"{mask(url)}: run once without OFFLINE=1, or put the file in build/"
            )
        partial_dir = partial_dir or self.partials
        with writing_in(partial_dir):
            partial_dir.mkdir(parents=True, exist_ok=True)
        key = url_key(url)
        with writing_in(partial_dir), locked(partial_dir / f"{key}.lock"):
            if found := self.get(sha256 or self.sha256_for_url(url) or "-"):  # fetched while we waited
                return Fetched(found, found.name, 0)
            part = Partial(partial_dir / f"{key}.part")
            received = download(session, url, part, label)
            digest = sha256_of(part.path)
            if sha256 and digest != sha256:
                part.discard()
                raise UserError(
                    f"{label} from {mask(url)} has sha256 {digest}, not the expected {sha256}: the server sent "
                    "another file, and nothing was kept. "
                    + (fix or "Check the URL or mirror; if the model was republished on purpose, run `make upgrade` "
                       "to lock the new file")
                )  # fmt: skip
            try:
                if check:
                    check(part.path)
                entry = self.add(part.path, digest)
            finally:
                part.discard()
            self.remember(url_key(url), digest)
        return Fetched(entry, digest, received)

    def add(self, source: Path, sha256: str) -> Path:
        """Put a verified file into the store as a read-only entry (linked, or copied across file systems)."""
        entry = self.entries / sha256
        with writing_in(self.entries):
            self.entries.mkdir(parents=True, exist_ok=True)
            if self.get(sha256) is None:
                link_or_copy(source, entry, mode=0o444)
        return self.get(sha256) or entry

    def remember(self, key: str, sha256: str) -> None:
        """Record key (a URL's url_key, or built:<sdist sha256>) -> the sha256 of an entry."""
        with writing_in(self.root), locked(self.root / ".lock"):
            write_atomic(self.root / "urls.json", json.dumps({**self._index(), key: sha256}, indent=1))

    def link(self, sha256: str, dest: Path) -> Path:
        """Hard-link the entry to dest (a copy across file systems); dest is never half-written."""
        entry = self.get(sha256)
        if entry is None:
            raise UserError(f"{sha256} is not in the model cache ({self.root}): run make models to fetch it again")
        with writing_in(dest.parent):
            link_or_copy(entry, dest)
        return dest

    def info(self) -> list[Entry]:
        """Every entry, most recently used first."""
        found = []
        for path in self.entries.glob("*"):
            with contextlib.suppress(OSError):
                used = self.root / "used" / path.name
                last = used.stat().st_mtime if used.exists() else path.stat().st_mtime
                found.append(Entry(path.name, path.stat().st_size, last))
        return sorted(found, key=lambda entry: entry.last_used, reverse=True)

    def prune(self, keep: frozenset[str] = frozenset(), older_than_days: float | None = None) -> int:
        """Delete entries not in keep (and, if given, unused for that many days); returns the bytes freed.

        Partial downloads no process is writing (and as old) go too. A byte counts as
        freed only when no hard link (a project's build/) still holds it.
        """
        cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
        freed = 0
        with writing_in(self.root), locked(self.root / ".lock"):
            for entry in self.info():
                if entry.sha256 in keep or (cutoff is not None and entry.last_used >= cutoff):
                    continue
                path = self.entries / entry.sha256
                with contextlib.suppress(OSError):
                    freed += entry.size if path.stat().st_nlink == 1 else 0
                    path.unlink()
                (self.root / "used" / entry.sha256).unlink(missing_ok=True)
            urls = {key: sha for key, sha in self._index().items() if (self.entries / sha).exists()}
            write_atomic(self.root / "urls.json", json.dumps(urls, indent=1))
            for part in self.partials.glob("*.part"):
                lock = part.with_suffix(".lock")
                if not is_locked(lock) and (cutoff is None or part.stat().st_mtime < cutoff):
                    freed += part.stat().st_size
                    Partial(part).discard()
                    lock.unlink(missing_ok=True)
        return freed

    def _index(self) -> dict[str, str]:
        return {k: v for k, v in read_json(self.root / "urls.json").items() if isinstance(v, str)}

"""Model wheels downloaded once per machine: a content-addressed cache with resumable, verified downloads.

This is the one download path for model wheels. The build helpers (scripts/, run
with the tools venv's Python) import this file by path; the runtime self-install
(models.py, when the project has it) imports it as part of the package. It uses
the standard library only.

Layout of the cache (NLP_MODELS_CACHE, else $XDG_CACHE_HOME/nlp-template/models,
else ~/.cache/nlp-template/models):

    sha256/<hex>              read-only entries, named by the sha256 of their content
    urls.json                 sha256 of a URL -> sha256 of what it served (no URL, so no credential, on disk)
    used/<hex>                touched whenever an entry is used; holds the stat of the last verified state
    partial/<url hash>.part   a download in progress (default place), resumed with HTTP Range
    .lock                     flock: one process changes the cache at a time

Every failure a user can fix is a StoreError whose message is one line, names
the fix and never carries a credential.
"""

import base64
import contextlib
import email.message
import email.parser
import email.utils
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no flock; the cache still works for one process at a time
    fcntl = None  # type: ignore[assignment]

GITHUB_RELEASES = "https://github.com/explosion/spacy-models/releases/download/"
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
USER_AGENT = "nlp-template-modelstore/1"
CHUNK = 1 << 16
MAX_REDIRECTS = 10
FIRST_BACKOFF = 0.5  # seconds; doubles on each retry
MAX_WAIT = 30.0  # seconds; the longest backoff or Retry-After honoured
PROGRESS_INTERVAL = 0.2  # seconds between redraws of the progress line on a terminal

Origin = tuple[str, str, int]  # scheme, host, port
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s?#]*@")


class StoreError(Exception):
    """A failure the user can fix: one line, safe to print, naming the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(mask(" ".join(message.split())))


def mask(text: str) -> str:
    """Replace the user-info (user:password@) of every URL in text with ****@."""
    return _USERINFO.sub(r"\1****@", text)


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """NLP_MODELS_CACHE, else $XDG_CACHE_HOME/nlp-template/models, else ~/.cache/nlp-template/models."""
    if explicit := environ.get("NLP_MODELS_CACHE"):
        return Path(explicit).expanduser()
    if xdg := environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "nlp-template" / "models"
    return Path.home() / ".cache" / "nlp-template" / "models"


def mirror_url(url: str, base: str | None) -> str:
    """A GitHub release download URL rewritten onto base (SPACY_MODELS_URL); any other URL unchanged."""
    if not base or not url.startswith(GITHUB_RELEASES):
        return url
    base = base.rstrip("/") + "/"
    return base + url[len(GITHUB_RELEASES) :]


# ---- credentials and redirects


def origin(url: str) -> Origin:
    """(scheme, host, port) of a URL: credentials are scoped to it."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise StoreError(f"{url} is not a valid URL (bad port): fix the URL") from None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(frozen=True)
class _Credential:
    header: str  # the Authorization header's value
    source: str  # what the user sets to change it, for messages: never the value


class Auth:
    """Which Authorization header goes to which origin; nothing goes anywhere else."""

    def __init__(self, credentials: Mapping[Origin, _Credential] | None = None) -> None:
        self._credentials = dict(credentials or {})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, extra: Mapping[str, str] | None = None) -> "Auth":
        """HF_TOKEN for HF_ENDPOINT's origin, plus extra = {origin URL: bearer token}."""
        credentials: dict[Origin, _Credential] = {}
        if token := environ.get("HF_TOKEN"):
            endpoint = environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT
            credentials[origin(endpoint)] = _Credential(f"Bearer {token}", "HF_TOKEN")
        for url, token in (extra or {}).items():
            if token:
                credentials[origin(url)] = _Credential(f"Bearer {token}", f"the token set for {origin(url)[1]}")
        return cls(credentials)

    def header_for(self, url: str) -> str | None:
        credential = self._credentials.get(origin(url))
        return credential.header if credential else None

    def source_for(self, url: str) -> str | None:
        credential = self._credentials.get(origin(url))
        return credential.source if credential else None

    def with_credential(self, url: str, header: str, source: str) -> "Auth":
        return Auth({**self._credentials, origin(url): _Credential(header, source)})


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """The URL without user:password@, and the Basic Authorization header they make (or None)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    header = "Basic " + base64.b64encode(token.encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), header


class _Request(urllib.request.Request):
    visited: list[str]


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects without carrying credentials or cookies to another origin."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    def redirect_request(  # type: ignore[override]
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        target, _ = _split_userinfo(new.full_url)  # credentials chosen by a server are never used
        visited = [*getattr(req, "visited", [req.full_url])]
        problem = None
        if urllib.parse.urlsplit(target).scheme.lower() not in _DEFAULT_PORTS:
            problem = f"{mask(visited[0])} redirects to {mask(target)}, which is not http(s): check the URL"
        elif target in visited:
            problem = f"{mask(visited[0])} redirects in a loop (back to {mask(target)}): check the URL or the server"
        elif len(visited) > MAX_REDIRECTS:
            problem = f"{mask(visited[0])} redirects more than {MAX_REDIRECTS} times: check the URL or the server"
        if problem:
            fp.close()
            raise StoreError(problem)
        headers_kept = dict(new.header_items())
        if origin(target) != origin(req.full_url):
            headers_kept.pop("Authorization", None)
            headers_kept.pop("Cookie", None)
            if header := self.auth.header_for(target):
                headers_kept["Authorization"] = header
        request = _Request(target, headers=headers_kept, method=new.get_method())
        request.visited = [*visited, target]
        return request


def open_url(
    url: str, *, auth: Auth | None = None, headers: Mapping[str, str] | None = None, timeout: float = 60.0
) -> Any:
    """urlopen, with credentials scoped to their origin across redirects; http, https and file only.

    A URL's own user:password@ becomes Basic auth for that URL's origin. Raises urllib's
    HTTPError / URLError as urlopen does, and StoreError for a refused URL or redirect.
    """
    target, basic = _split_userinfo(url)
    if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https", "file"):
        raise StoreError(f"{mask(url)} is not an http, https or file URL: fix the URL")
    auth = auth or Auth()
    if basic:
        auth = auth.with_credential(target, basic, "the user:password in the URL")
    request = _Request(target, headers={"User-Agent": USER_AGENT, **(headers or {})})
    if header := auth.header_for(target):
        request.add_header("Authorization", header)
    opener = urllib.request.build_opener(_RedirectHandler(auth))
    return opener.open(request, timeout=timeout)


# ---- wheels


def wheel_metadata(path: Path) -> email.message.Message:
    """The METADATA of a wheel: exactly one top-level *.dist-info/METADATA, else StoreError."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", name)]
            if len(names) != 1:
                raise StoreError(
                    f"{path.name} is not a wheel: it holds {len(names)} *.dist-info/METADATA files, not one. "
                    "Check the URL it came from"
                )
            return email.parser.BytesParser().parsebytes(archive.read(names[0]), headersonly=True)
    except zipfile.BadZipFile:
        raise StoreError(f"{path.name} is not a wheel (not a zip archive): check the URL it came from") from None


# ---- small helpers


def sha256_file(path: Path) -> str:
    """The sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _url_key(url: str) -> str:
    """The name a URL gets on disk: a hash of it without its user-info."""
    return hashlib.sha256(_split_userinfo(url)[0].encode()).hexdigest()


def _label(url: str) -> str:
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return name or mask(url)


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _local_error(error: OSError, directory: Path) -> StoreError:
    """A failure to write on this machine, named for what it is (never retried)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"disk full writing {directory}: free space there, or set NLP_MODELS_CACHE to a directory with room"
        )
    if error.errno == errno.EFBIG:
        return StoreError(f"file too large for {directory} (a file size limit): raise the limit or use another disk")
    if error.errno == errno.EROFS:
        return StoreError(f"{directory} is on a read-only file system: set NLP_MODELS_CACHE to a writable directory")
    if error.errno in (errno.EACCES, errno.EPERM):
        return StoreError(
            f"{directory} is not writable (permission denied): fix its permissions, "
            "or set NLP_MODELS_CACHE to a directory you can write"
        )
    return StoreError(f"cannot write in {directory}: {error.strerror or error}")


@contextlib.contextmanager
def _writing_in(directory: Path) -> Iterator[None]:
    """Turn an OSError raised while writing into directory into a StoreError that names it."""
    try:
        yield
    except OSError as error:
        raise _local_error(error, directory) from None


def _acquire(path: Path, blocking: bool = True) -> int | None:
    """A descriptor holding an exclusive flock on path; None when busy and not blocking."""
    with _writing_in(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with _writing_in(path.parent):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        os.close(fd)  # the lock file was removed while we waited for it: lock the new one


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = _acquire(path)
    assert fd is not None
    try:
        yield
    finally:
        os.close(fd)


def _replace_through_temporary(path: Path, write: Callable[[Path], object]) -> None:
    """write(temporary) in path's directory, then rename it to path: path is never half-written."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    with _writing_in(path.parent):
        try:
            write(temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    _replace_through_temporary(path, lambda temporary: temporary.write_text(text))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links refused: a copy will do
        shutil.copyfile(source, target)


def _copy_read_only(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    os.chmod(target, 0o444)


# ---- progress


class _Progress:
    """Bytes done / total, rate and time left: one line redrawn on a terminal, else a line every 25 %."""

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.transferred = 0  # bytes received in this call, across attempts
        self.done, self.total, self.next_quarter, self.drawn = 0, None, 1, 0.0

    def start(self, url: str, offset: int, total: int | None) -> None:
        self.done, self.total = offset, total
        self.next_quarter = 1 + (4 * offset // total if total else 0)
        size = f" ({human_size(total)})" if total else ""
        verb = f"Resuming at {human_size(offset)}" if offset else "Downloading"
        self.note(f"{verb} {self.label}{size} from {mask(url)}")

    def advance(self, size: int) -> None:
        self.done += size
        self.transferred += size
        if self.tty:
            now = time.monotonic()
            if now - self.drawn >= PROGRESS_INTERVAL:
                self.drawn = now
                self._redraw()
        elif self.total:
            while self.next_quarter < 4 and self.done * 4 >= self.next_quarter * self.total:
                self.note(f"  {self.label}: {25 * self.next_quarter} % of {human_size(self.total)}")
                self.next_quarter += 1

    def finish(self) -> None:
        seconds = max(time.monotonic() - self.started, 1e-3)
        rate = human_size(self.transferred / seconds)
        self.note(f"  {self.label}: {human_size(self.done)} in {seconds:.1f} s ({rate}/s)")

    def _redraw(self) -> None:
        rate = self.transferred / max(time.monotonic() - self.started, 1e-3)
        shown = human_size(self.done)
        if self.total:
            left = (self.total - self.done) / rate if rate else 0
            shown += f" / {human_size(self.total)}, {human_size(rate)}/s, {left:.0f} s left"
        self.stream.write(f"\r\033[K  {self.label}: {shown}")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()


# ---- downloads


class _TransientError(Exception):
    """A failure worth another attempt (connection, timeout, 5xx, 429, a cut-short body)."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.wait = reason, wait


@dataclass(frozen=True)
class _Partial:
    """A resumable download: the bytes so far (.part) and what the server said about them (.part.json)."""

    path: Path
    key: str

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def resume_state(self) -> dict[str, Any] | None:
        """What a resume needs (size so far, validator, total), or None to start from zero."""
        try:
            state = json.loads(self.sidecar.read_text())
            size = self.path.stat().st_size
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("url_sha256") != self.key or not size:
            return None
        return {**state, "size": size}

    def save(self, etag: str | None, last_modified: str | None, total: int | None) -> None:
        state = {"url_sha256": self.key, "etag": etag, "last_modified": last_modified, "total": total}
        _write_atomically(self.sidecar, json.dumps(state))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value), MAX_WAIT)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value).timestamp()
        return min(max(when - time.time(), 0.0), MAX_WAIT)
    return None


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total) of a Content-Range header."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None
    return int(match[1]), None if match[2] == "*" else int(match[2])


def _http_failure(url: str, error: urllib.error.HTTPError, auth: Auth) -> StoreError | _TransientError:
    where = mask(url)
    code = error.code
    if code == 429 or code >= 500:
        return _TransientError(f"HTTP {code} {error.reason}", _retry_after(error.headers.get("Retry-After")))
    if code == 404:
        return StoreError(f"{where} answered HTTP 404 Not Found: is the name and version right?")
    if code in (401, 403):
        host = origin(url)[1]
        source = auth.source_for(url)
        if source:
            fix = f"{source} was sent and refused: check it, and that it grants access to this file"
        elif origin(url) == origin(os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT):
            fix = "set HF_TOKEN in .env to a token with access to this repository"
        else:
            fix = "put credentials for it in .env (user:password@ in SPACY_MODELS_URL, or a token)"
        return StoreError(f"{host} answered HTTP {code} {error.reason} for {where}: {fix}")
    return StoreError(f"{where} answered HTTP {code} {error.reason}: check the URL")


def _connection_failure(url: str, error: BaseException, timeout: float) -> StoreError | _TransientError:
    reason = getattr(error, "reason", error)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return StoreError(
            f"the certificate of {origin(url)[1]} is not trusted ({reason.verify_message}): "
            "set SSL_CERT_FILE to your CA bundle"
        )
    if isinstance(reason, TimeoutError):
        return _TransientError(f"timed out after {timeout:g} s")
    if isinstance(reason, http.client.HTTPException):
        return _TransientError(f"the connection broke ({type(reason).__name__})")
    return _TransientError(f"cannot reach {origin(url)[1]} ({getattr(reason, 'strerror', None) or reason})")


def _html_page(url: str) -> StoreError:
    return StoreError(
        f"{mask(url)} returned an HTML page, not a wheel (a login page?): check the URL and its credentials"
    )


def _open_for_part(url: str, part: _Partial, auth: Auth, timeout: float) -> tuple[Any, int]:
    """The response and the offset its body starts at (0 when the server restarts the file)."""
    state = part.resume_state()
    headers = {"Accept-Encoding": "identity"}
    if state:
        headers["Range"] = f"bytes={state['size']}-"
        if validator := state.get("etag") or state.get("last_modified"):
            headers["If-Range"] = validator
    try:
        response = open_url(url, auth=auth, headers=headers, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and state:  # the part is no prefix of the file any more
            part.discard()
            raise _TransientError("the server could not resume; starting again", 0.0) from None
        raise _http_failure(url, error, auth) from None
    except (OSError, http.client.HTTPException) as error:
        raise _connection_failure(url, error, timeout) from None
    if (response.status or 200) != 206 or not state:
        return response, 0
    start_total = _content_range(response.headers.get("Content-Range"))
    etag = response.headers.get("ETag")
    if (
        start_total is None
        or start_total[0] != state["size"]
        or (state.get("total") and start_total[1] != state["total"])
        or (etag and state.get("etag") and etag != state["etag"])
    ):
        response.close()
        part.discard()
        raise _TransientError("the server sent another part of the file than asked; starting again", 0.0)
    return response, state["size"]


def _download_once(url: str, part: _Partial, auth: Auth, timeout: float, progress: _Progress) -> None:
    """One request: resume or restart the part and stream the body into it."""
    response, offset = _open_for_part(url, part, auth, timeout)
    with response:
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "text/html":
            part.discard()
            raise _html_page(url)
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        part.save(response.headers.get("ETag"), response.headers.get("Last-Modified"), total)
        progress.start(url, offset, total)
        done = offset
        with _writing_in(part.path.parent), part.path.open("ab" if offset else "wb") as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as error:
                    raise _connection_failure(url, error, timeout) from None
                if not chunk:
                    break
                if done == 0 and chunk.lstrip()[:1] == b"<":
                    out.close()
                    part.discard()
                    raise _html_page(url)
                out.write(chunk)
                done += len(chunk)
                progress.advance(len(chunk))
    if total is not None and done < total:
        raise _TransientError(f"the connection ended after {human_size(done)} of {human_size(total)}")
    if total is not None and done > total:
        part.discard()
        raise _TransientError("the server sent more bytes than it announced; starting again", 0.0)
    progress.finish()


def _download(url: str, part: _Partial, auth: Auth, label: str, timeout: float, attempts: int) -> int:
    """Download into part with retries and resumes; returns the bytes transferred."""
    progress = _Progress(label)
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, part, auth, timeout, progress)
            return progress.transferred
        except _TransientError as problem:
            if attempt == attempts:
                raise StoreError(
                    f"downloading {label} from {mask(url)} failed {attempts} times, last: {problem.reason}. "
                    "Check the network (or SPACY_MODELS_URL) and run the command again: it resumes where it stopped"
                ) from None
            backoff = min(FIRST_BACKOFF * 2 ** (attempt - 1), MAX_WAIT)
            wait = backoff if problem.wait is None else problem.wait
            progress.note(f"  {label}: {problem.reason}; trying again in {wait:g} s")
            time.sleep(wait)
    raise AssertionError("unreachable")


# ---- the store


@dataclass(frozen=True)
class Fetched:
    path: Path  # the entry in the store
    sha256: str
    downloaded: int  # bytes transferred by this call
    from_cache: bool


@dataclass(frozen=True)
class Entry:
    sha256: str
    size: int
    last_used: float  # seconds since the epoch


class ModelStore:
    """The machine-wide content-addressed cache of model wheels."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    @property
    def entries(self) -> Path:
        return self.root / "sha256"

    @property
    def partials(self) -> Path:
        return self.root / "partial"

    def _used(self, sha256: str) -> Path:
        return self.root / "used" / sha256

    # ---- reading

    def get(self, sha256: str) -> Path | None:
        """The entry holding sha256, if present and intact; a corrupted entry is deleted."""
        if not _SHA256.fullmatch(sha256):
            return None
        path = self.entries / sha256
        try:
            status = path.stat()
        except OSError:
            return None
        if not self._still_verified(sha256, status) and sha256_file(path) != sha256:
            with self._lock(), contextlib.suppress(OSError):
                if path.stat().st_ino == status.st_ino:
                    path.unlink()
            return None
        self._mark_used(sha256, status)
        return path

    def sha256_for_url(self, url: str) -> str | None:
        return self._urls().get(_url_key(url))

    def info(self) -> list[Entry]:
        """Every entry, most recently used first."""
        found = []
        for path in self.entries.glob("*"):
            if not _SHA256.fullmatch(path.name):
                continue
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                try:
                    last_used = self._used(path.name).stat().st_mtime
                except OSError:
                    last_used = path.stat().st_mtime
                found.append(Entry(path.name, size, last_used))
        return sorted(found, key=lambda entry: entry.last_used, reverse=True)

    # ---- writing

    def remember(self, url: str, sha256: str) -> None:
        with self._lock():
            urls = self._urls()
            urls[_url_key(url)] = sha256
            _write_atomically(self.root / "urls.json", json.dumps(urls, indent=1, sort_keys=True))

    def fetch(
        self,
        url: str,
        *,
        sha256: str | None = None,
        partial_dir: Path | None = None,
        check: Callable[[Path], None] | None = None,
        auth: Auth | None = None,
        label: str | None = None,
        offline: bool = False,
        timeout: float = 60.0,
        attempts: int = 4,
    ) -> Fetched:
        """The wheel at url, from the store when it holds it (0 bytes), else downloaded, verified and stored.

        partial_dir holds the resumable .part files (default: the store's partial/);
        check(path) gets the complete, hash-verified file before it is stored and may
        raise to refuse it (the partial is then deleted).
        """
        label = label or _label(url)
        if found := self._cached(url, sha256):
            return Fetched(found, found.name, 0, True)
        if offline:
            raise StoreError(
                f"{label} is not in the model cache ({self.root}) and OFFLINE=1 forbids downloading it "
                f"from {mask(url)}: run once without OFFLINE=1, or put the wheel in build/"
            )
        partial_dir = partial_dir or self.partials
        key = _url_key(url)
        lock = partial_dir / f"{key}.lock"
        with _locked(lock):
            if found := self._cached(url, sha256):  # another process fetched it while we waited
                return Fetched(found, found.name, 0, True)
            part = _Partial(partial_dir / f"{key}.part", key)
            downloaded = _download(url, part, auth or Auth.from_env(), label, timeout, attempts)
            digest = sha256_file(part.path)
            if sha256 and digest != sha256:
                part.discard()
                raise StoreError(
                    f"{label} from {mask(url)} has sha256 {digest}, not the expected {sha256}: the server sent "
                    "another file than the one locked, and nothing was kept. Check the URL or mirror; if the "
                    "model was republished on purpose, run `make upgrade` to lock the new file"
                )
            try:
                if check:
                    check(part.path)
            except BaseException:
                part.discard()
                raise
            entry = self._store(part.path, digest)
            self._mark_used(digest, entry.stat())  # just hashed: also the verified state
            part.discard()
            self.remember(url, digest)
            with contextlib.suppress(OSError):
                lock.unlink()  # safe while held: a waiter notices and locks a new file
        return Fetched(entry, digest, downloaded, False)

    def link(self, sha256: str, dest: Path) -> Path:
        """Hard-link the entry to dest (a copy across file systems); dest is never half-written."""
        entry = self.get(sha256)
        if entry is None:
            raise StoreError(f"{sha256} is not in the model cache ({self.root}): fetch it again")
        with _writing_in(dest.parent):
            dest.parent.mkdir(parents=True, exist_ok=True)
        _replace_through_temporary(dest, lambda temporary: _link_or_copy(entry, temporary))
        return dest

    def prune(self, keep: set[str] | None = None, older_than_days: float | None = None) -> int:
        """Delete entries not in keep (and, if given, unused for that many days); returns bytes freed.

        Partial downloads no process is writing (and older than the same age) go too.
        A byte counts as freed only when no hard link (a project's build/) still holds it.
        """
        cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
        freed = 0
        with self._lock():
            for entry in self.info():
                if (keep and entry.sha256 in keep) or (cutoff is not None and entry.last_used >= cutoff):
                    continue
                path = self.entries / entry.sha256
                with contextlib.suppress(OSError):
                    links = path.stat().st_nlink
                    path.unlink()
                    freed += entry.size if links == 1 else 0
                self._used(entry.sha256).unlink(missing_ok=True)
            urls = {key: sha for key, sha in self._urls().items() if (self.entries / sha).exists()}
            _write_atomically(self.root / "urls.json", json.dumps(urls, indent=1, sort_keys=True))
        return freed + self._prune_partials(cutoff)

    # ---- internals

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return _locked(self.root / ".lock")

    def _urls(self) -> dict[str, str]:
        try:
            urls = json.loads((self.root / "urls.json").read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in urls.items() if isinstance(v, str)} if isinstance(urls, dict) else {}

    def _cached(self, url: str, sha256: str | None) -> Path | None:
        """The store's entry for this download: by expected hash, else by what the URL served before."""
        known = sha256 or self.sha256_for_url(url)
        return self.get(known) if known else None

    def _still_verified(self, sha256: str, status: os.stat_result) -> bool:
        """Whether the entry is unchanged since it was last hashed (any write changes its ctime)."""
        try:
            return self._used(sha256).read_text() == _stat_key(status)
        except OSError:
            return False

    def _mark_used(self, sha256: str, status: os.stat_result) -> None:
        used = self._used(sha256)
        with contextlib.suppress(OSError):
            used.parent.mkdir(parents=True, exist_ok=True)
            used.write_text(_stat_key(status))  # its mtime is the "last used" time

    def _store(self, source: Path, sha256: str) -> Path:
        """Move a verified file into the store as a read-only entry."""
        entry = self.entries / sha256
        with self._lock(), _writing_in(self.entries):
            self.entries.mkdir(parents=True, exist_ok=True)
            if entry.exists() and sha256_file(entry) == sha256:
                return entry
            os.chmod(source, 0o444)
            try:
                os.replace(source, entry)
            except OSError as error:
                if error.errno != errno.EXDEV:  # the partial is on another file system: copy it over
                    raise
                _replace_through_temporary(entry, lambda temporary: _copy_read_only(source, temporary))
        return entry

    def _prune_partials(self, cutoff: float | None) -> int:
        """Delete the partial downloads no process is writing (older than cutoff, if given)."""
        freed = 0
        keys = {path.name.split(".")[0] for path in self.partials.glob("*.*") if _SHA256.match(path.name)}
        for key in keys:
            lock = self.partials / f"{key}.lock"
            fd = _acquire(lock, blocking=False)
            if fd is None:  # a download in progress
                continue
            try:
                part = _Partial(self.partials / f"{key}.part", key)
                size, mtime = (part.path.stat().st_size, part.path.stat().st_mtime) if part.path.exists() else (0, 0)
                if cutoff is None or mtime < cutoff:
                    part.discard()
                    lock.unlink(missing_ok=True)  # safe while held: a waiter notices and locks a new file
                    freed += size
            finally:
                os.close(fd)
        return freed


def _stat_key(status: os.stat_result) -> str:
    return f"{status.st_ino} {status.st_size} {status.st_mtime_ns} {status.st_ctime_ns}"

"""A local stand-in for GitHub and Prodigy, served on 127.0.0.1 (port 0).

- /download/<name>-<version>/<wheel>   model wheels, laid out like GitHub release downloads
- /repos/explosion/spacy-models/releases
                                       a releases API shaped like GitHub's: pages of
                                       per_page items with Link headers, x-ratelimit-*
                                       headers, ETag / If-None-Match, asset digests
- /private/links.html, /private/simple/<project>/, /private/<file>
                                       a find-links page and a PEP 503 index behind HTTP basic auth
- /simple/<project>/, /files/<file>    a PEP 503 index (squatted names, impostors)
- /<org>/<name>/resolve/<revision>/<file>
                                       a Hugging Face Hub download: 302 to /cdn/<sha256>/<file> on the
                                       second ("CDN") server, which refuses requests carrying a token
- any path given to add_redirect       a redirect, to the other server or anywhere

Two servers on 127.0.0.1 (port 0) serve the same routes: `url` and `cdn_url` (another
origin), over http, or https when given an SSL context (a certificate from `trustme`).
Downloads honour Range / If-Range (206 with Content-Range, ETag, Accept-Ranges)
and misbehave on demand: `fault(path)` cuts the connection after N bytes, fails the
first K requests with 500/503, drops range support, changes the ETag, serves an HTML
page or trickles slowly.

Every request is logged with the server that got it, its Authorization and Range
headers and the body bytes sent, so tests can assert that a warm install asks for
nothing, a token was sent (or not sent to another host) and a download resumed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

API_PATH = "/repos/explosion/spacy-models"
HUB_PATH = re.compile(r"/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)")


@dataclass
class Request:
    method: str
    path: str
    status: int
    authorization: str | None
    headers: dict[str, str]
    sent: int = 0  # bytes of the body
    host: str = ""  # the server that answered: "127.0.0.1:<port>"
    range: str | None = None  # the Range header asked


@dataclass
class Release:
    tag: str
    assets: list[tuple[str, str, str | None]]  # (file name, download URL, digest)


@dataclass
class Fault:
    """How downloads of one path misbehave; the counters make a fault stop after a few requests."""

    fail: int = 0  # answer the first `fail` requests with fail_status
    fail_status: int = 503
    retry_after: str | None = "0"  # sent with the failures (None: no Retry-After header)
    cut_after: int | None = None  # close the connection after this many body bytes ...
    cuts: int = 1  # ... on this many requests
    ranges: bool = True  # False: ignore Range, always answer 200 without Accept-Ranges
    etag: str | None = None  # this ETag instead of one derived from the content
    body: bytes | None = None  # serve this instead of the file (an HTML login page, say)
    content_type: str = "text/html"  # ... with this type
    rate: int | None = None  # bytes per second: a slow download
    delay: float = 0.0  # seconds of silence before answering: a stalled server
    seen: int = 0
    cut: int = 0


@dataclass
class Mirror:
    """What the server serves; tests change it while the server runs."""

    downloads: dict[str, Path] = field(default_factory=dict)  # "name-version/file" -> wheel
    releases: list[Release] = field(default_factory=list)
    private_files: dict[str, Path] = field(default_factory=dict)
    private_credentials: tuple[str, str] = ("", "")
    index_files: dict[str, list[Path]] = field(default_factory=dict)  # project -> files
    rate_limited: bool = False
    rate_limit_reset: int = 1_900_000_000
    hub_files: dict[str, Path] = field(default_factory=dict)  # "org/name/revision/file" -> wheel
    hub_token: str | None = None  # when set, the Hub route wants "Bearer <token>"
    redirects: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (target URL, status)
    faults: dict[str, Fault] = field(default_factory=dict)  # path -> how it misbehaves
    routes: dict[str, tuple[bytes, str, bool]] = field(default_factory=dict)  # path -> (body, type, endless)
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    cdn_url: str = ""  # the second server: another origin
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- what tests set up

    def add_download(self, wheel: Path) -> str:
        """Serve a wheel (or an sdist, name-version.tar.gz) under GitHub's release layout; returns its URL."""
        name, version = wheel.name.removesuffix(".tar.gz").split("-")[:2]
        key = f"{name}-{version}/{wheel.name}"
        self.downloads[key] = wheel
        return f"{self.url}/download/{key}"

    def add_release(self, wheel: Path, with_digest: bool = True) -> None:
        """A GitHub release holding this wheel, newest first like the real API."""
        url = self.add_download(wheel)
        name, version = wheel.name.removesuffix(".tar.gz").split("-")[:2]
        digest = f"sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}" if with_digest else None
        self.releases.insert(0, Release(f"{name}-{version}", [(wheel.name, url, digest)]))

    def add_fake_releases(self, count: int) -> None:
        """Cheap entries that fill pages (their downloads 404): the list is long, like GitHub's."""
        for number in range(count):
            name = f"xx_fake_model{number:03d}"
            file = f"{name}-0.0.1-py3-none-any.whl"
            url = f"{self.url}/download/{name}-0.0.1/{file}"
            self.releases.append(Release(f"{name}-0.0.1", [(file, url, None)]))

    def add_index_file(self, project: str, wheel: Path) -> None:
        self.index_files.setdefault(project, []).append(wheel)

    def add_hub_file(self, org: str, name: str, revision: str, wheel: Path, served_name: str | None = None) -> str:
        """A file in a Hub repository; returns its resolve URL (HF_ENDPOINT is `url`)."""
        served_name = served_name or wheel.name
        self.hub_files[f"{org}/{name}/{revision}/{served_name}"] = wheel
        return f"{self.url}/{org}/{name}/resolve/{revision}/{urllib.parse.quote(served_name)}"

    def add_redirect(self, path: str, target: str, status: int = 302) -> str:
        """Answer requests for path (on either server) with a redirect to target; returns the URL on `url`."""
        self.redirects[path] = (target, status)
        return f"{self.url}{path}"

    def add_route(self, path: str, body: bytes, content_type: str, endless_next: bool = False) -> str:
        """Answer path with this body (a hostile API, say); endless_next adds a Link: rel=next to page+1 forever."""
        self.routes[path] = (body, content_type, endless_next)
        return f"{self.url}{path}"

    def fault(self, url_or_path: str, **settings: object) -> Fault:
        """Make downloads of this URL (or path) misbehave; see Fault."""
        path = urllib.parse.urlsplit(url_or_path).path
        fault = self.faults[path] = Fault(**settings)  # type: ignore[arg-type]
        return fault

    # ---- what tests read

    @property
    def download_base(self) -> str:
        return f"{self.url}/download"

    @property
    def api_url(self) -> str:
        return f"{self.url}{API_PATH}"

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple"

    def private_url(self, userinfo: str, path: str = "links.html") -> str:
        """The private find-links page (or /private/simple) with user-info, as a user writes it in .env."""
        netloc = urllib.parse.urlsplit(self.url).netloc
        return f"http://{userinfo}@{netloc}/private/{path}"

    def mark(self) -> int:
        """Position in the request log, to read only what came after."""
        with self.lock:
            return len(self.requests)

    def since(self, mark: int) -> list[Request]:
        with self.lock:
            return list(self.requests[mark:])

    def requests_to(self, base_url: str, mark: int = 0) -> list[Request]:
        """The requests since mark that the server at base_url (`url` or `cdn_url`) answered."""
        host = urllib.parse.urlsplit(base_url).netloc
        return [request for request in self.since(mark) if request.host == host]


class Handler(BaseHTTPRequestHandler):
    server: MirrorServer
    protocol_version = "HTTP/1.1"
    cut = False  # the connection was cut on purpose

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:  # uv asks for headers first; the same routes answer, without a body
        self.do_GET()

    def do_GET(self) -> None:
        mirror = self.server.mirror
        self.cut = False  # one handler serves every request of a kept-alive connection
        path = urllib.parse.urlsplit(self.path).path
        routes = (
            ("/download/", self._download),
            (API_PATH + "/releases", self._releases),
            ("/private/", self._private),
            ("/simple/", self._simple),
            ("/files/", self._index_file),
            ("/cdn/", self._cdn),
        )
        if path in mirror.redirects:
            target, status = mirror.redirects[path]
            status = self._send(status, b"", headers={"Location": target})
        elif path in mirror.routes:
            status = self._route(mirror, path)
        elif HUB_PATH.fullmatch(path):
            status = self._hub(mirror, path)
        else:
            route = next((route for prefix, route in routes if path.startswith(prefix)), None)
            status = route(mirror, path) if route else self._send(404, b"not found")
        assert status
        if self.cut:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # ---- routes: each sends its answer and returns the status

    def _route(self, mirror: Mirror, path: str) -> int:
        body, content_type, endless = mirror.routes[path]
        page = int(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("page", ["1"])[0])
        headers = {"Link": f'<{mirror.url}{path}?page={page + 1}>; rel="next"'} if endless else {}
        return self._send(200, body, content_type, headers)

    def _download(self, mirror: Mirror, path: str) -> int:
        wheel = mirror.downloads.get(urllib.parse.unquote(path[len("/download/") :]))
        if wheel is None:
            return self._send(404, b"Not Found")
        return self._serve_file(mirror, path, wheel.read_bytes())

    def _hub(self, mirror: Mirror, path: str) -> int:
        """The Hub's resolve URL: a token check, then a redirect to the CDN (another origin), as the Hub does."""
        org, name, revision, file = HUB_PATH.fullmatch(path).groups()  # type: ignore[union-attr]
        wheel = mirror.hub_files.get(f"{org}/{name}/{revision}/{urllib.parse.unquote(file)}")
        if mirror.hub_token and self.headers.get("Authorization") != f"Bearer {mirror.hub_token}":
            return self._send(401, b"Invalid credentials in Authorization header")
        if wheel is None:
            return self._send(404, b"Entry not found")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        location = f"{mirror.cdn_url}/cdn/{digest}/{file}"
        return self._send(302, b"", headers={"Location": location, "X-Linked-Etag": f'"{digest}"'})

    def _cdn(self, mirror: Mirror, path: str) -> int:
        """Hub files by hash. Like a signed-URL store, a request carrying a token is refused outright."""
        if self.headers.get("Authorization"):
            return self._send(400, b"Only one auth mechanism allowed")
        digest = path[len("/cdn/") :].split("/", 1)[0]
        for wheel in mirror.hub_files.values():
            data = wheel.read_bytes()
            if hashlib.sha256(data).hexdigest() == digest:
                return self._serve_file(mirror, path, data)
        return self._send(404, b"Not Found")

    def _serve_file(self, mirror: Mirror, path: str, data: bytes) -> int:
        """A download with Range support and the faults a test set for its path."""
        with mirror.lock:
            fault = mirror.faults.get(path) or Fault()
            fault.seen += 1
            failing = fault.seen <= fault.fail
            cut_after = fault.cut_after if fault.cut_after is not None and fault.cut < fault.cuts else None
            if cut_after is not None and not failing:
                fault.cut += 1
        time.sleep(fault.delay)
        if failing:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._send(fault.fail_status, b"failing on purpose", headers=headers)
        content_type = "application/octet-stream"
        if fault.body is not None:
            data, content_type = fault.body, fault.content_type
        etag = fault.etag or '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        headers = {"ETag": etag, "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        status, start = 200, 0
        if fault.ranges:
            headers["Accept-Ranges"] = "bytes"
            asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if_range = self.headers.get("If-Range")
            if asked and if_range in (None, etag, headers["Last-Modified"]):
                start = int(asked[1])
                if start >= len(data):
                    return self._send(416, b"", headers={"Content-Range": f"bytes */{len(data)}"})
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return self._send(status, data[start:], content_type, headers, cut_after=cut_after, rate=fault.rate)

    def _releases(self, mirror: Mirror, path: str) -> int:
        headers = {"x-ratelimit-limit": "60", "x-ratelimit-reset": str(mirror.rate_limit_reset)}
        if mirror.rate_limited:
            headers["x-ratelimit-remaining"] = "0"
            body = b'{"message": "API rate limit exceeded for 127.0.0.1."}'
            return self._send(403, body, "application/json", headers)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        pages = max(1, math.ceil(len(mirror.releases) / per_page))
        items = mirror.releases[(page - 1) * per_page : page * per_page]
        body = json.dumps([release_json(release) for release in items]).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        headers["ETag"] = etag
        headers["x-ratelimit-remaining"] = "59"
        links = [(page + 1, "next")] if page < pages else []
        links += [(pages, "last")] if page < pages else []
        if links:
            base = f"{mirror.url}{API_PATH}/releases?per_page={per_page}&page="
            headers["Link"] = ", ".join(f'<{base}{number}>; rel="{rel}"' for number, rel in links)
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, b"", "application/json", headers)
        return self._send(200, body, "application/json", headers)

    def _private(self, mirror: Mirror, path: str) -> int:
        """Behind basic auth: a find-links page, a PEP 503 index (/private/simple/) and their files."""
        user, password = mirror.private_credentials
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._send(401, b"Unauthorized", headers={"WWW-Authenticate": 'Basic realm="private"'})
        name = path[len("/private/") :]
        if name == "links.html":
            return self._send(200, links_page(mirror.private_files, prefix=""), "text/html")
        if name.startswith("simple/"):
            project = re.sub(r"[-_.]+", "-", name[len("simple/") :].strip("/")).lower()
            files = {
                f: w
                for f, w in mirror.private_files.items()
                if re.sub(r"[-_.]+", "-", f.split("-")[0]).lower() == project
            }
            if not files:
                return self._send(404, b"Not Found")
            return self._send(200, links_page(files, prefix="../../"), "text/html")
        wheel = mirror.private_files.get(name)
        if wheel is None:
            return self._send(404, b"Not Found")
        return self._send(200, wheel.read_bytes(), "application/octet-stream")

    def _simple(self, mirror: Mirror, path: str) -> int:
        project = path[len("/simple/") :].strip("/")
        if not project:
            links = "".join(f'<a href="/simple/{p}/">{p}</a>\n' for p in sorted(mirror.index_files))
            return self._send(200, f"<html><body>\n{links}</body></html>\n".encode(), "text/html")
        files = mirror.index_files.get(re.sub(r"[-_.]+", "-", project).lower())
        if not files:
            return self._send(404, b"Not Found")
        links = "".join(
            f'<a href="/files/{project}/{f.name}#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}">{f.name}</a>\n'
            for f in files
        )
        return self._send(200, f"<html><body>\n{links}</body></html>\n".encode(), "text/html")

    def _index_file(self, mirror: Mirror, path: str) -> int:
        project, _, name = path[len("/files/") :].partition("/")
        for wheel in mirror.index_files.get(project, []):
            if wheel.name == name:
                return self._send(200, wheel.read_bytes(), "application/octet-stream")
        return self._send(404, b"Not Found")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
        headers: dict | None = None,
        cut_after: int | None = None,
        rate: int | None = None,
    ) -> int:
        """Send a response; cut_after sends only that many body bytes, then drops the connection."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        sent = b"" if self.command == "HEAD" else body if cut_after is None else body[:cut_after]
        self._log(status, len(sent))  # before any byte leaves: a client that got the answer finds it logged
        self.end_headers()
        step = max(rate // 20, 1) if rate else len(sent) or 1
        try:
            for start in range(0, len(sent), step):
                self.wfile.write(sent[start : start + step])
                if rate:
                    self.wfile.flush()
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a test killed it)
            self.cut = True
        self.wfile.flush()
        self.cut = self.cut or cut_after is not None
        return status

    def _log(self, status: int, sent: int) -> None:
        request = Request(
            self.command, self.path, status, self.headers.get("Authorization"), dict(self.headers), sent,
            host=f"127.0.0.1:{self.server.server_address[1]}", range=self.headers.get("Range"),
        )  # fmt: skip
        with self.server.mirror.lock:
            self.server.mirror.requests.append(request)


def links_page(files: dict[str, Path], prefix: str) -> bytes:
    """An HTML page of links with #sha256 fragments, as find-links pages and PEP 503 indexes serve."""
    links = "".join(
        f'<a href="{prefix}{html.escape(file)}#sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}">'
        f"{html.escape(file)}</a><br>\n"
        for file, wheel in sorted(files.items())
    )
    return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()


def release_json(release: Release) -> dict:
    return {
        "tag_name": release.tag,
        "name": release.tag,
        "draft": False,
        "prerelease": False,
        "assets": [
            {"name": file, "browser_download_url": url, "digest": digest, "content_type": "application/zip"}
            for file, url, digest in release.assets
        ],
    }


class MirrorServer(ThreadingHTTPServer):
    """The mirror's main server (`mirror.url`) and its second one on another port (`mirror.cdn_url`)."""

    daemon_threads = True

    def __init__(self, mirror: Mirror, *, second: bool = False, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mirror = mirror
        if tls is not None:  # https: the handshake happens in the handler's thread, on its first read
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        address = f"{'https' if tls else 'http'}://127.0.0.1:{self.server_address[1]}"
        self.other = None if second else MirrorServer(mirror, second=True, tls=tls)
        if second:
            mirror.cdn_url = address
        else:
            mirror.url = address

    def __enter__(self) -> MirrorServer:
        for server in (self, self.other):
            if server is not None:
                threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self, self.other):
            if server is not None:
                server.shutdown()
                server.server_close()


@contextmanager
def hostile_servers() -> Iterator[Mirror]:
    """Two loopback servers on port 0 that log every request's path, Authorization and Range headers.

    Point a path of one at the other with `add_redirect(path, mirror.cdn_url + ...)` and read
    `requests_to(mirror.cdn_url)` to see what reached the other origin.
    """
    mirror = Mirror()
    with MirrorServer(mirror):
        yield mirror

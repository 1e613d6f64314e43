"""A local stand-in for GitHub and Prodigy, served on 127.0.0.1 (port 0).

- /download/<name>-<version>/<wheel>   model wheels, laid out like GitHub release downloads
- /repos/explosion/spacy-models/releases
                                       a releases API shaped like GitHub's: pages of
                                       per_page items with Link headers, x-ratelimit-*
                                       headers, ETag / If-None-Match, asset digests
- /private/links.html, /private/simple/<project>/, /private/<file>
                                       a find-links page and a PEP 503 index behind HTTP basic auth
- /simple/<project>/, /files/<file>    a PEP 503 index (squatted names, impostors)

Every request is logged, with whether it carried an Authorization header, so
tests can assert that a warm install asks for nothing and a token was sent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

API_PATH = "/repos/explosion/spacy-models"


@dataclass
class Request:
    method: str
    path: str
    status: int
    authorization: str | None
    headers: dict[str, str]
    sent: int = 0  # bytes of the body


@dataclass
class Release:
    tag: str
    assets: list[tuple[str, str, str | None]]  # (file name, download URL, digest)


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
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- what tests set up

    def add_download(self, wheel: Path) -> str:
        name, version = wheel.name.split("-")[:2]
        key = f"{name}-{version}/{wheel.name}"
        self.downloads[key] = wheel
        return f"{self.url}/download/{key}"

    def add_release(self, wheel: Path, with_digest: bool = True) -> None:
        """A GitHub release holding this wheel, newest first like the real API."""
        url = self.add_download(wheel)
        name, version = wheel.name.split("-")[:2]
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


class Handler(BaseHTTPRequestHandler):
    server: MirrorServer
    protocol_version = "HTTP/1.1"
    sent = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        mirror = self.server.mirror
        path = urllib.parse.urlsplit(self.path).path
        routes = (
            ("/download/", self._download),
            (API_PATH + "/releases", self._releases),
            ("/private/", self._private),
            ("/simple/", self._simple),
            ("/files/", self._index_file),
        )
        for prefix, route in routes:
            if path.startswith(prefix):
                status = route(mirror, path)
                break
        else:
            status = self._send(404, b"not found")
        with mirror.lock:
            mirror.requests.append(
                Request("GET", self.path, status, self.headers.get("Authorization"), dict(self.headers), self.sent)
            )

    # ---- routes: each sends its answer and returns the status

    def _download(self, mirror: Mirror, path: str) -> int:
        wheel = mirror.downloads.get(urllib.parse.unquote(path[len("/download/") :]))
        if wheel is None:
            return self._send(404, b"Not Found")
        return self._send(200, wheel.read_bytes(), "application/octet-stream")

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

    def _send(self, status: int, body: bytes, content_type: str = "text/plain", headers: dict | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.sent = len(body)
        return status


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
    daemon_threads = True

    def __init__(self, mirror: Mirror) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mirror = mirror
        mirror.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> MirrorServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

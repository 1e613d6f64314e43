"""What the engine's own tests share: tiny wheels written with zipfile, loopback HTTP servers, a clean environment.

Nothing here imports the repository's tests/ package, and nothing stands in for
pip, uv or HTTP: wheels are real zip files, servers are real sockets bound to
port 0 on 127.0.0.1, and the tools run are the dev venv's own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SPACY_RANGE = "spacy>=3.8.0,<3.9.0"
ISOLATED = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
            "no_proxy", "VERBOSE", "OFFLINE", "NLP_MODELS_CACHE", "SSL_CERT_FILE")  # fmt: skip


# ---- the environment


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No proxy, no ~/.netrc, no VERBOSE or OFFLINE of the developer's reaches a test."""
    for name in ISOLATED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path_factory.getbasetemp() / "no-netrc"))


@pytest.fixture(scope="session")
def tool_environ(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment pip and uv run in: no config file, caches of this session, no index unless a test adds one."""
    caches = tmp_path_factory.mktemp("tool-caches")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(caches)),
        "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CACHE_DIR": str(caches / "pip"),
        "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(caches / "uv"), "XDG_CONFIG_HOME": str(caches / "config"),
    }  # fmt: skip


# ---- wheels


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: tuple[str, ...] = (SPACY_RANGE,),
    requires_python: str | None = None,
    metadata_name: str | None = None,
    files: dict[str, bytes | str] | None = None,
    payload: int = 0,
    seed: int = 0,
    filename: str | None = None,
) -> Path:
    """A pure wheel (py3-none-any) written with zipfile, every entry at a fixed time: the same bytes every run.

    requires: its Requires-Dist lines (a model's names spacy); payload: that many incompressible bytes, stored.
    """
    module = re.sub(r"[-.]+", "_", name)
    dist = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {metadata_name or name}\nVersion: {version}\n"
    metadata += f"Requires-Python: {requires_python}\n" if requires_python else ""
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    content: dict[str, bytes] = {f"{module}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    content.update({path: data.encode() if isinstance(data, str) else data for path, data in (files or {}).items()})
    if payload:
        content[f"{module}/payload.bin"] = hashlib.shake_256(f"{name} {version} {seed}".encode()).digest(payload)
    content[f"{dist}/METADATA"] = metadata.encode()
    content[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{path},{record_hash(data)},{len(data)}\n" for path, data in content.items())
    content[f"{dist}/RECORD"] = (record + f"{dist}/RECORD,,\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / (filename or f"{module}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in content.items():
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, zipfile.ZIP_STORED if path.endswith(".bin") else zipfile.ZIP_DEFLATED)
    return wheel


@pytest.fixture(scope="session")
def make_wheel() -> Callable[..., Path]:
    """write_wheel(directory, name, version, *, requires=("spacy>=3.8.0,<3.9.0",), ...) -> the wheel's path."""
    return write_wheel


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def sha256() -> Callable[[Path], str]:
    return sha256_file


# ---- loopback HTTP


@dataclass
class Fault:
    """How one path misbehaves; the counters make a fault stop after a few requests."""

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
class Logged:
    """One request as the server saw it."""

    method: str
    path: str  # with its query
    status: int
    headers: dict[str, str]
    host: str  # the server that answered, 127.0.0.1:<port>
    sent: int = 0  # bytes of the body

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")

    @property
    def range(self) -> str | None:
        return self.headers.get("Range")


@dataclass
class Loopback:
    """What two loopback servers (`url` and `other_url`, another origin) serve; tests change it while they run.

    Files honour Range / If-Range (206, Content-Range, ETag) and misbehave on demand (fault). APIs are JSON
    pages with Link: rel="next" and an ETag (304 on If-None-Match), as GitHub's. Every request is logged.
    """

    url: str = ""
    other_url: str = ""
    files: dict[str, Path | bytes] = field(default_factory=dict)
    pages: dict[str, tuple[bytes, str, int, dict[str, str]]] = field(default_factory=dict)
    apis: dict[str, list[object]] = field(default_factory=dict)
    redirects: dict[str, tuple[str, int]] = field(default_factory=dict)
    guards: list[tuple[str, str | None]] = field(default_factory=list)  # (path prefix, Authorization wanted)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[Logged] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_file(self, path: str, source: Path | bytes) -> str:
        """Serve a file's bytes at path (read at each request: a test may replace the file); returns its URL."""
        self.files[path] = source
        return self.url + path

    def add_page(self, path: str, body: str | bytes, content_type: str = "text/html", status: int = 200,
                 headers: dict[str, str] | None = None) -> str:  # fmt: skip
        self.pages[path] = (body.encode() if isinstance(body, str) else body, content_type, status, headers or {})
        return self.url + path

    def add_api(self, path: str, pages: list[object]) -> str:
        """JSON pages at path?page=N (1, 2, ...), each with its ETag and a Link to the next; returns path's URL."""
        self.apis[path] = pages
        return self.url + path

    def add_redirect(self, path: str, target: str, status: int = 302) -> str:
        self.redirects[path] = (target, status)
        return self.url + path

    def require(self, prefix: str, authorization: str) -> None:
        """Paths under prefix answer 401 to a request without exactly this Authorization header."""
        self.guards.append((prefix, authorization))

    def refuse_credentials(self, prefix: str) -> None:
        """Paths under prefix answer 400 to any request that carries credentials (as a signed-URL store does)."""
        self.guards.append((prefix, None))

    def fault(self, url_or_path: str, **settings: object) -> Fault:
        fault = self.faults[urllib.parse.urlsplit(url_or_path).path] = Fault(**settings)  # type: ignore[arg-type]
        return fault

    def with_userinfo(self, userinfo: str, path: str = "") -> str:
        return self.url.replace("http://", f"http://{userinfo}@", 1) + path

    def mark(self) -> int:
        with self.lock:
            return len(self.requests)

    def since(self, mark: int = 0) -> list[Logged]:
        with self.lock:
            return list(self.requests[mark:])

    def requests_to(self, base_url: str, mark: int = 0) -> list[Logged]:
        host = urllib.parse.urlsplit(base_url).netloc.rpartition("@")[2]
        return [request for request in self.since(mark) if request.host == host]


class Handler(BaseHTTPRequestHandler):
    server: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.cut = False
        state, path = self.server.state, urllib.parse.urlsplit(self.path).path
        authorization = self.headers.get("Authorization")
        for prefix, wanted in state.guards:
            if path.startswith(prefix) and wanted is None and authorization:
                return self._send(400, b"Only one auth mechanism allowed")
            if path.startswith(prefix) and wanted is not None and authorization != wanted:
                return self._send(401, b"Unauthorized", headers={"WWW-Authenticate": 'Basic realm="loopback"'})
        if path in state.redirects:
            target, status = state.redirects[path]
            return self._send(status, b"", headers={"Location": target})
        if path in state.apis:
            return self._api(state, path)
        if path in state.pages:
            body, content_type, status, headers = state.pages[path]
            return self._send(status, body, content_type, headers)
        if path in state.files:
            source = state.files[path]
            return self._file(state, path, source if isinstance(source, bytes) else source.read_bytes())
        return self._send(404, b"Not Found")

    def _api(self, state: Loopback, path: str) -> None:
        pages = state.apis[path]
        number = int(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("page", ["1"])[0])
        body = json.dumps(pages[number - 1] if number <= len(pages) else []).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        headers = {"ETag": etag, "x-ratelimit-limit": "60", "x-ratelimit-remaining": "59"}
        if number < len(pages):
            base = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
            headers["Link"] = f'<{base}?per_page=100&page={number + 1}>; rel="next"'
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, b"", "application/json", headers)
        return self._send(200, body, "application/json", headers)

    def _file(self, state: Loopback, path: str, data: bytes) -> None:
        with state.lock:
            fault = state.faults.get(path) or Fault()
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
            if asked and self.headers.get("If-Range") in (None, etag, headers["Last-Modified"]):
                start = int(asked[1])
                if start >= len(data):
                    return self._send(416, b"", headers={"Content-Range": f"bytes */{len(data)}"})
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return self._send(status, data[start:], content_type, headers, cut_after=cut_after, rate=fault.rate)

    def _send(self, status: int, body: bytes, content_type: str = "text/plain", headers: dict | None = None,
              cut_after: int | None = None, rate: int | None = None) -> None:  # fmt: skip
        """Answer; cut_after sends only that many body bytes, then drops the connection."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        sent = b"" if self.command == "HEAD" else body if cut_after is None else body[:cut_after]
        host = f"127.0.0.1:{self.server.server_address[1]}"
        logged = Logged(self.command, self.path, status, dict(self.headers), host, len(sent))
        with self.server.state.lock:  # logged before a byte leaves: a client that got the answer finds it here
            self.server.state.requests.append(logged)
        self.end_headers()
        step = max(rate // 20, 1) if rate else len(sent) or 1
        try:
            for start in range(0, len(sent), step):
                self.wfile.write(sent[start : start + step])
                if rate:
                    self.wfile.flush()
                    time.sleep(0.05)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            self.cut = True
        if self.cut or cut_after is not None:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: Loopback) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is no error of the server's
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def served() -> Iterator[Loopback]:
    """Two fresh loopback servers per test (port 0), sharing what they serve and one request log."""
    state = Loopback()
    servers = [LoopbackServer(state), LoopbackServer(state)]
    state.url, state.other_url = (f"http://127.0.0.1:{server.server_address[1]}" for server in servers)
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield state
    for server in servers:
        server.shutdown()
        server.server_close()


class TLSLoopbackServer(LoopbackServer):
    """A loopback server that speaks TLS with a certificate for 127.0.0.1; the handshake is made in the request's
    thread, and a client that refuses the certificate is no error of the server's."""

    def __init__(self, state: Loopback, context: ssl.SSLContext) -> None:
        super().__init__(state)
        self.context = context

    def get_request(self) -> tuple[socket.socket, object]:
        connection, address = self.socket.accept()
        return self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            request.do_handshake()  # type: ignore[attr-defined]
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Authority:
    """A certificate authority of this test session that no one trusts unless told: its PEM file, for
    REQUESTS_CA_BUNDLE, SSL_CERT_FILE or pip's cert."""

    pem: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="session")
def untrusted_ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    pem = tmp_path_factory.mktemp("ca") / "company-ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return Authority(pem, context)


@pytest.fixture
def tls_served(untrusted_ca: Authority) -> Iterator[Loopback]:
    """One loopback server over https (url: https://127.0.0.1:<port>), its certificate from untrusted_ca."""
    state = Loopback()
    server = TLSLoopbackServer(state, untrusted_ca.server_context)
    state.url = f"https://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


# ---- real file-system faults


@pytest.fixture(scope="session")
def run_with_mounts() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run(mount commands, argv): argv in a private mount namespace after the mounts (a tiny tmpfs, a read-only
    bind); nothing is mounted on the host. Skips where namespaces are not allowed (fails with CI=true)."""
    candidates = (["unshare", "--mount", "--propagation", "private"],
                  ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"])  # fmt: skip
    unshare = None
    for command in candidates:
        with suppress(OSError):
            if subprocess.run([*command, "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True).returncode == 0:
                unshare = command
                break

    def run(mounts: list[str], argv: list[str]) -> subprocess.CompletedProcess[str]:
        if unshare is None:
            if os.environ.get("CI"):
                pytest.fail("CI=true, but mount namespaces are not allowed here (unshare --mount failed)")
            pytest.skip("mount namespaces are not allowed here (unshare --mount failed); with CI=true this fails")
        script = " && ".join([*mounts, 'exec "$@"'])
        return subprocess.run([*unshare, "sh", "-c", script, "sh", *argv], capture_output=True, text=True,
                              timeout=120)  # fmt: skip

    return run


def tiny_tmpfs(directory: Path, size: str = "64k") -> str:
    return f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(directory))}"


def read_only(directory: Path) -> str:
    path = shlex.quote(str(directory))
    return f"mount --bind {path} {path} && mount -o remount,bind,ro {path}"


@pytest.fixture(scope="session")
def mounts() -> dict[str, Callable[..., str]]:
    """The mount commands run_with_mounts takes: tiny_tmpfs(directory, size) and read_only(directory)."""
    return {"tiny_tmpfs": tiny_tmpfs, "read_only": read_only}

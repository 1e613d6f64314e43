"""The machine's package index, passed through on 127.0.0.1 with the JSON API pip-tools reads hashes from.

pip-compile --generate-hashes takes each file's sha256 from the index's JSON API (`<base>/<name>/json`) and
downloads every file it cannot match there: for spaCy's lock, 1,175 files of every platform (83 s and 51 s
of CPU here, against 9 s of CPU with the API). This machine's package registry answers that API with other
file URLs than its simple pages name, so nothing matched. This server serves the registry's own simple pages
and its JSON, each file's URL made the one its simple page names, as PyPI's own answers agree; the files
themselves still come from the registry. Simple pages come in the form pip asks for, PEP 691's JSON as PyPI
serves it (pip reads 90,000 links of spaCy's stack 1.5 s faster per pip-compile than from HTML), or HTML.
The suite's pip config names it as the index (PIP_CONFIG_FILE, as a
machine with a devpi or Artifactory mirror has it): every pin and hash is the registry's.
"""

from __future__ import annotations

import html.parser
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from pip._internal.models.index import PyPI

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
UPSTREAM = PyPI.url.rstrip("/")  # the index pip uses when nothing names another


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


class PackageIndex(ThreadingHTTPServer):
    """`/simple/<name>/` and `/<name>/json` from UPSTREAM, each fetched once per run; `url` is the simple index."""

    daemon_threads = True

    def __init__(self, upstream: str = UPSTREAM) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.session = requests.Session()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/simple/"
        self.answers: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.json_answers: dict[str, tuple[int, bytes]] = {}

    def fetch(self, path: str, accept: str = "") -> tuple[int, bytes]:
        """UPSTREAM's answer to path in the form accept names (by default JSON for the JSON API, HTML for a simple
        page): each 200 or 404 fetched once per run, any other status asked again."""
        accept = accept or ("application/json" if path.endswith("/json") else "text/html")
        if (path, accept) in self.answers:
            return self.answers[(path, accept)]
        response = self.session.get(f"{self.upstream}{path}", headers={"Accept": accept}, timeout=180)
        answer = response.status_code, response.content
        if response.status_code in (200, 404):
            self.answers[(path, accept)] = answer
        return answer

    def json_api(self, name: str) -> tuple[int, bytes]:
        """UPSTREAM's JSON API for name, each file's URL made the one its simple page names; made once per run."""
        if name not in self.json_answers:
            self.json_answers[name] = self._json_api(name)
        return self.json_answers[name]

    def _json_api(self, name: str) -> tuple[int, bytes]:
        status, body = self.fetch(f"/pypi/{name}/json")
        if status != 200:
            return status, body
        page_status, page = self.fetch(f"/simple/{name}/")
        parser = _Links()
        parser.feed(page.decode(errors="replace") if page_status == 200 else "")
        named = {urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1]: href for href in parser.hrefs}
        data = json.loads(body)
        for files in data.get("releases", {}).values():
            for entry in list(files):
                href = named.get(entry.get("filename", ""))
                if href:  # pip-tools matches the link as pip read it: with its #sha256= fragment, or without
                    entry["url"] = href.split("#", 1)[0]
                    files.append({**entry, "url": href})
        return 200, json.dumps(data).encode()

    def __enter__(self) -> PackageIndex:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: PackageIndex

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path.startswith("/simple/") and SIMPLE_JSON in self.headers.get("Accept", ""):
                status, body, kind = *self.server.fetch(path, SIMPLE_JSON), SIMPLE_JSON
            elif path.startswith("/simple/"):
                status, body, kind = *self.server.fetch(path), "text/html"
            elif path.endswith("/json") and path.count("/") == 2:
                status, body, kind = *self.server.json_api(path.split("/")[1]), "application/json"
            else:
                status, body, kind = 404, b"", "text/plain"
        except requests.RequestException as error:
            status, body, kind = 502, str(error).encode(), "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

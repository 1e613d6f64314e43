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


Answer = tuple[int, bytes, str]  # status, body, Content-Type


class PackageIndex(ThreadingHTTPServer):
    """`/simple/<name>/` and `/<name>/json` from UPSTREAM, each fetched once per run; `url` is the simple index.

    Upstream is reached with the environment of the process that starts it (its proxy, NO_PROXY and netrc settings),
    as pip would reach it."""

    daemon_threads = True
    request_queue_size = 64  # every worker's pip may ask at once

    def __init__(self, upstream: str = UPSTREAM) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.local = threading.local()  # a requests.Session per handler thread
        self.url = f"http://127.0.0.1:{self.server_address[1]}/simple/"
        self.answers: dict[tuple[str, str], Answer] = {}
        self.json_answers: dict[str, Answer] = {}

    def fetch(self, path: str, accept: str) -> Answer:
        """UPSTREAM's answer to path in the form accept asks for, its Content-Type as upstream said: each 200 or 404
        fetched once per run, any other status asked again."""
        if (path, accept) in self.answers:
            return self.answers[(path, accept)]
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        response = self.local.session.get(f"{self.upstream}{path}", headers={"Accept": accept}, timeout=180)
        answer = response.status_code, response.content, response.headers.get("Content-Type", "text/plain")
        if response.status_code in (200, 404):
            self.answers[(path, accept)] = answer
        return answer

    def json_api(self, name: str) -> Answer:
        """UPSTREAM's JSON API for name, each file's URL made the one its simple page names; made once per run, from
        answers that were each 200 or 404 (any other is passed on and asked again)."""
        if name in self.json_answers:
            return self.json_answers[name]
        answer, final = self._json_api(name)
        if final:
            self.json_answers[name] = answer
        return answer

    def _json_api(self, name: str) -> tuple[Answer, bool]:
        status, body, kind = self.fetch(f"/pypi/{name}/json", "application/json")
        named = self.simple_links(name) if status == 200 else {}
        if status != 200 or named is None:
            return (status, body, kind), status == 404
        data = json.loads(body)
        for files in data.get("releases", {}).values():
            for entry in list(files):
                href = named.get(entry.get("filename", ""))
                if href:  # pip-tools matches the link as pip read it: with its #sha256= fragment, or without
                    entry["url"] = href.split("#", 1)[0]
                    files.append({**entry, "url": href})
        return (200, json.dumps(data).encode(), "application/json"), True

    def simple_links(self, name: str) -> dict[str, str] | None:
        """file name -> the URL /simple/<name>/ gives it, with its #sha256= fragment as in an HTML page; read from the
        JSON form (PEP 691) that pip asks for, else from the HTML one. None when upstream gave neither."""
        status, body, kind = self.fetch(f"/simple/{name}/", SIMPLE_JSON)
        if status == 200 and kind.startswith(SIMPLE_JSON):
            links = {}
            for file in json.loads(body).get("files", []):
                sha256 = file.get("hashes", {}).get("sha256")
                links[file["filename"]] = file["url"] + (f"#sha256={sha256}" if sha256 else "")
            return links
        status, body, _ = self.fetch(f"/simple/{name}/", "text/html")
        if status != 200:
            return None
        parser = _Links()
        parser.feed(body.decode(errors="replace"))
        return {urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1]: href for href in parser.hrefs}

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
            if path.startswith("/simple/"):  # the form pip asks for: PEP 691's JSON (pip 22.2 and newer) or HTML
                accept = SIMPLE_JSON if SIMPLE_JSON in self.headers.get("Accept", "") else "text/html"
                status, body, kind = self.server.fetch(path, accept)
            elif path.endswith("/json") and path.count("/") == 2:
                status, body, kind = self.server.json_api(path.split("/")[1])
            else:
                status, body, kind = 404, b"", "text/plain"
        except (requests.RequestException, ValueError) as error:  # unreachable, or JSON that does not parse
            status, body, kind = 502, str(error).encode(), "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

"""The spacy-models releases, read from GitHub's API, as a find-links page pip understands.

Every page is followed (Link: rel="next", 100 releases a page), each page is
asked for with the ETag of the last answer (a 304 costs no rate limit), and the
page is rewritten only when its content changes.
"""

from __future__ import annotations

import datetime
import html
import json
import re
import time
import urllib.error
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from modeltools.common import UserError, canonical_name, redact, write_if_changed
from modeltools.net import describe_http_error, open_url
from modeltools.versions import parse_version
from modeltools.wheels import wheel_filename_parts

DEFAULT_API = "https://api.github.com/repos/explosion/spacy-models"


@dataclass(frozen=True)
class ModelLink:
    """One model wheel on the links page."""

    filename: str
    url: str
    sha256: str | None

    @property
    def name(self) -> str:
        return wheel_filename_parts(self.filename)[0]

    @property
    def version(self) -> str:
        return wheel_filename_parts(self.filename)[1]

    @property
    def href(self) -> str:
        return f"{self.url}#sha256={self.sha256}" if self.sha256 else self.url


def next_page(link_header: str | None) -> str | None:
    """The rel="next" URL of a Link header, if any."""
    for part in (link_header or "").split(","):
        match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', part)
        if match:
            return match.group(1)
    return None


def rate_limit_error(url: str, error: urllib.error.HTTPError) -> UserError:
    reset = error.headers.get("x-ratelimit-reset", "")
    limit = error.headers.get("x-ratelimit-limit", "60")
    when = "in a while"
    if reset.isdigit():
        at = datetime.datetime.fromtimestamp(int(reset), tz=datetime.timezone.utc)
        minutes = max(0, round((int(reset) - time.time()) / 60))
        when = f"at {at:%Y-%m-%d %H:%M} UTC (in {minutes} min)"
    return UserError(
        f"GitHub's API rate limit ({limit} requests an hour) is used up for {redact(url)}; it resets {when}. "
        "Set GITHUB_TOKEN in .env (a token with no scopes will do) to raise the limit to 5000 an hour."
    )


def api_error(url: str, error: urllib.error.URLError, token_sent: bool) -> UserError:
    if isinstance(error, urllib.error.HTTPError):
        if error.code in (403, 429) and error.headers.get("x-ratelimit-remaining") == "0":
            return rate_limit_error(url, error)
        if error.code == 401 and token_sent:
            return UserError(f"GitHub refused GITHUB_TOKEN (HTTP 401 from {redact(url)}): fix it in .env, or unset it")
        if error.code >= 500:
            return UserError(f"the releases API failed: {describe_http_error(url, error)}; try again later")
    return UserError(f"the releases API failed: {describe_http_error(url, error)} (SPACY_MODELS_API)")


class ReleasesClient:
    """Reads every page of {api}/releases, reusing cached pages the server says are unchanged."""

    def __init__(self, api: str, token: str | None, cache_file: Path) -> None:
        self.api = api.rstrip("/")
        self.token = token
        self.cache_file = cache_file
        self.api_host = urllib.parse.urlsplit(self.api).netloc
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cached = {}
        self.pages: dict[str, dict] = cached.get("pages", {}) if cached.get("api") == self.api else {}
        self.fresh_pages = 0
        self.unchanged_pages = 0

    def headers_for(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self.token and urllib.parse.urlsplit(url).netloc == self.api_host:
            headers["Authorization"] = f"Bearer {self.token}"  # never sent to another host
        cached = self.pages.get(url)
        if cached and cached.get("etag"):
            headers["If-None-Match"] = cached["etag"]
        return headers

    def fetch_page(self, url: str) -> dict:
        headers = self.headers_for(url)
        try:
            with open_url(url, headers) as response:
                releases = json.load(response)
                page = {
                    "etag": response.headers.get("ETag"),
                    "next": next_page(response.headers.get("Link")),
                    "assets": [asset_of(a) for release in releases for a in release.get("assets", [])],
                }
        except urllib.error.HTTPError as error:
            if error.code == 304 and url in self.pages:
                self.unchanged_pages += 1
                return self.pages[url]
            raise api_error(url, error, "Authorization" in headers) from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise api_error(url, error, False) from error
        self.fresh_pages += 1
        return page

    def assets(self) -> list[ModelLink]:
        url: str | None = f"{self.api}/releases?per_page=100"
        seen: dict[str, dict] = {}
        while url and url not in seen:
            seen[url] = self.fetch_page(url)
            url = seen[url]["next"]
        self.pages = seen
        write_if_changed(self.cache_file, json.dumps({"api": self.api, "pages": seen}, indent=1) + "\n")
        links = {}
        for page in seen.values():
            for filename, link_url, sha256 in page["assets"]:
                if filename.endswith(".whl"):
                    links[filename] = ModelLink(filename, link_url, sha256)
        return sorted(links.values(), key=link_order)


def asset_of(asset: dict) -> list:
    digest = asset.get("digest") or ""
    sha256 = digest[len("sha256:") :] if re.fullmatch(r"sha256:[0-9a-f]{64}", digest) else None
    return [asset.get("name", ""), asset.get("browser_download_url", ""), sha256]


def link_order(link: ModelLink) -> tuple:
    try:
        return (canonical_name(link.name), parse_version(link.version), link.filename)
    except UserError:
        return (canonical_name(link.filename), (), link.filename)


def render_links_page(links: list[ModelLink]) -> str:
    lines = [
        "<!DOCTYPE html>",
        '<html><head><meta name="generator" content="make links"><title>spaCy model wheels</title></head><body>',
        *(f'<a href="{html.escape(link.href)}">{html.escape(link.filename)}</a><br/>' for link in links),
        "</body></html>",
    ]
    return "\n".join(lines) + "\n"


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for key, value in attrs if key == "href" and value]


def read_links_page(path: Path) -> list[ModelLink]:
    parser = _AnchorParser()
    parser.feed(path.read_text())
    links = []
    for href in parser.hrefs:
        url, _, fragment = href.partition("#")
        filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        if filename.endswith(".whl"):
            sha256 = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
            links.append(ModelLink(filename, url, sha256))
    return links


def write_links_page(api: str, token: str | None, output: Path) -> list[ModelLink]:
    client = ReleasesClient(api, token, output.with_suffix(".json"))
    links = client.assets()
    changed = write_if_changed(output, render_links_page(links))
    pages = client.fresh_pages + client.unchanged_pages
    state = "updated" if changed else "unchanged"
    print(
        f"links: {len(links)} model wheels from {pages} API pages "
        f"({client.unchanged_pages} unchanged since the last run) -> {output} ({state})",
        flush=True,
    )
    return links

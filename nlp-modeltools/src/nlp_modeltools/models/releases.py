"""Where ranged models are looked up: GitHub's releases API, or a team's package index, as one links page.

`make links` writes build/spacy_model_links.html, a find-links page of every
model wheel with its #sha256 (from the asset's digest), in a stable order,
rewritten only when it changes. The API is read page by page (Link:
rel="next"), each page with the ETag of the last answer (a 304 costs no rate
limit), at most MAX_PAGES pages and never the same page twice. Every answer is
checked for the shape it must have: a hostile or broken API ends in one line.
"""

from __future__ import annotations

import datetime
import html
import json
import re
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import requests
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import read_json, write_if_changed
from nlp_modeltools.core.http import Session, failure, get, host, origin, without_userinfo
from nlp_modeltools.core.redact import mask
from nlp_modeltools.models.inputs import url_filename
from nlp_modeltools.models.wheels import archive_name

MAX_PAGES = 100  # 10,000 releases; spacy-models has under 1,000
SHA256_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class ModelLink:
    """One model file of the links page: a wheel, or an sdist where a release has no wheel (scispaCy's)."""

    filename: str
    url: str
    sha256: str | None

    @property
    def href(self) -> str:
        return f"{self.url}#sha256={self.sha256}" if self.sha256 else self.url

    def identity(self) -> tuple[NormalizedName, Version] | None:
        parsed = archive_name(self.filename)
        return parsed[:2] if parsed else None


def releases_of(name: NormalizedName, links: Iterable[ModelLink]) -> dict[Version, ModelLink]:
    """Every release of a model a links page lists, by version; a wheel wins over an sdist of the same release."""
    releases = {}
    for link in sorted(links, key=lambda link: link.filename.endswith(".whl")):
        identity = link.identity()
        if identity and identity[0] == name:
            releases[identity[1]] = link
    return releases


def _http_url(value: object) -> str | None:
    return value if isinstance(value, str) and urllib.parse.urlsplit(value).scheme in ("http", "https") else None


def api_error(url: str, response: requests.Response, token_sent: bool) -> UserError:
    """A refusal of the releases API, in one line: a used-up rate limit says when it resets and how to raise it."""
    headers = response.headers
    if response.status_code in (403, 429) and headers.get("x-ratelimit-remaining") == "0":
        reset, limit = headers.get("x-ratelimit-reset", ""), headers.get("x-ratelimit-limit", "60")
        when = "in a while"
        if reset.isdigit():
            at = datetime.datetime.fromtimestamp(int(reset), tz=datetime.timezone.utc)
            when = f"at {at:%Y-%m-%d %H:%M} UTC (in {max(0, round((int(reset) - time.time()) / 60))} min)"
        return UserError(
            f"GitHub's API rate limit ({limit} requests an hour) is used up for {mask(url)}; it resets {when}. "
            "Set GITHUB_TOKEN in .env (a token with no scopes will do) to raise the limit to 5000 an hour"
        )
    if response.status_code == 401 and token_sent:
        return UserError(
            f"the releases API refused GITHUB_TOKEN (HTTP 401 from {mask(url)}): fix it in .env, or unset it"
        )
    return failure(url, response, "the releases API failed", fix="check SPACY_MODELS_API")


def assets_of(releases: object, url: str) -> list[list]:
    """[filename, download URL, sha256] of each wheel or sdist (.tar.gz) asset of one API page."""
    if not isinstance(releases, list):
        kind = type(releases).__name__
        detail = f": {str(releases.get('message'))[:80]!r}" if isinstance(releases, dict) else ""
        raise UserError(f"the releases API answered {mask(url)} with a JSON {kind}, not a list of releases{detail}")
    found = []
    for release in releases:
        assets = release.get("assets") if isinstance(release, dict) else None
        for asset in assets if isinstance(assets, list) else []:
            if not isinstance(asset, dict):
                continue
            name, link = asset.get("name"), _http_url(asset.get("browser_download_url"))
            if not isinstance(name, str) or not name.endswith((".whl", ".tar.gz")) or link is None:
                continue
            digest = SHA256_DIGEST.fullmatch(str(asset.get("digest") or ""))
            found.append([name, link, digest.group(1) if digest else None])
    return found


class ReleasesClient:
    """Reads every page of {api}/releases, reusing the pages the server says are unchanged."""

    def __init__(self, session: Session, api: str, cache_file: Path, token_sent: bool) -> None:
        self.session, self.api, self.cache_file, self.token_sent = session, api, cache_file, token_sent
        cached = read_json(cache_file)
        pages = cached.get("pages") if cached.get("api") == mask(api) else None
        self.pages: dict[str, dict] = pages if isinstance(pages, dict) else {}
        self.fresh_pages = self.unchanged_pages = 0

    def fetch_page(self, url: str) -> dict:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        cached = self.pages.get(mask(url))
        if cached and cached.get("etag"):
            headers["If-None-Match"] = cached["etag"]
        response = get(self.session, url, "the releases API failed", headers=headers, ok=(401, 403, 429),
                       fix="check SPACY_MODELS_API")  # fmt: skip
        if response.status_code == 304 and cached:
            self.unchanged_pages += 1
            return cached
        if response.status_code >= 400:
            raise api_error(url, response, self.token_sent)
        try:
            body = json.loads(response.content[:50_000_000])
        except ValueError:
            raise UserError(f"the releases API answered {mask(url)} with something that is not JSON") from None
        self.fresh_pages += 1
        next_url = response.links.get("next", {}).get("url")
        return {"etag": response.headers.get("ETag"), "next": next_url, "assets": assets_of(body, url)}

    def links(self) -> list[ModelLink]:
        url: str | None = f"{self.api}/releases?per_page=100"
        seen: dict[str, dict] = {}
        while url:
            if mask(url) in seen:
                raise UserError(f"the releases API's pages loop back to {mask(url)}: check SPACY_MODELS_API")
            if len(seen) == MAX_PAGES:
                raise UserError(
                    f"the releases API has more than {MAX_PAGES} pages (Link: rel=next never ends): stopped there; "
                    "check SPACY_MODELS_API"
                )
            if urllib.parse.urlsplit(url)[:2] != urllib.parse.urlsplit(self.api)[:2]:
                raise UserError(f"the releases API's next page {mask(url)} is on another host: not followed")
            seen[mask(url)] = self.fetch_page(url)
            url = seen[mask(url)]["next"]
        self.pages = seen
        write_if_changed(self.cache_file, json.dumps({"api": mask(self.api), "pages": seen}, indent=1) + "\n")
        return [ModelLink(*asset) for page in seen.values() for asset in page["assets"]]


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for key, value in attrs if key == "href" and value]


def links_in_page(text: str, base: str) -> list[ModelLink]:
    """The wheel and sdist links of an HTML page (a links page, or a PEP 503 project page), absolute."""
    parser = _Anchors()
    parser.feed(text)
    links = []
    for href in parser.hrefs:
        url, _, fragment = urllib.parse.urljoin(base, href).partition("#")
        filename = url_filename(url)
        digest = re.fullmatch(r"sha256=([0-9a-f]{64})", fragment)
        if filename.endswith((".whl", ".tar.gz")) and _http_url(url):
            links.append(ModelLink(filename, url, digest.group(1) if digest else None))
    return links


def index_links(session: Session, index: str, names: Iterable[str]) -> list[ModelLink]:
    """The wheels a team's PEP 503 index (SPACY_MODELS_INDEX) offers for these models."""
    links = []
    for name in sorted(set(map(canonicalize_name, names))):
        url = f"{index}/{name}/"
        response = get(session, url, "the team index failed (check SPACY_MODELS_INDEX)", ok=(404,))
        if response.status_code == 404:
            continue
        if origin(response.url) != origin(url):  # e.g. pypiserver's fallback to PyPI: not the team's file
            print(f"links: the team index sends {name} to {host(response.url)}, another host: left out", flush=True)
            continue
        page = response.content[:20_000_000].decode("utf-8", errors="replace")
        links += [
            ModelLink(link.filename, without_userinfo(link.url), link.sha256)
            for link in links_in_page(page, response.url)
        ]
    return links


def render_page(links: Iterable[ModelLink]) -> str:
    def order(link: ModelLink) -> tuple:
        name, version = link.identity() or (canonicalize_name(link.filename), Version("0"))
        return name, version, link.filename

    ordered = sorted({link.filename: link for link in links}.values(), key=order)
    lines = [
        "<!DOCTYPE html>",
        '<html><head><meta name="generator" content="make links"><title>spaCy model wheels</title></head><body>',
        *(f'<a href="{html.escape(link.href)}">{html.escape(link.filename)}</a><br/>' for link in ordered),
        "</body></html>",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LinksSource:
    """Where the links page comes from: a team's PEP 503 index (SPACY_MODELS_INDEX), else GitHub's releases API.

    session downloads from the index; api_session (GITHUB_TOKEN for the API alone) reads the API.
    """

    output: Path  # build/spacy_model_links.html
    session: Session
    index: str
    api_session: Session
    api: str
    token: bool


def write_links(source: LinksSource, model_names: Iterable[str]) -> list[ModelLink]:
    """source.output from the team index or the releases API; returns its links."""
    output = source.output
    if source.index:
        links = index_links(source.session, source.index, model_names)
        where = f"the team index {mask(source.index)}"
    else:
        client = ReleasesClient(source.api_session, source.api, output.with_suffix(".json"), source.token)
        links = client.links()
        pages = client.fresh_pages + client.unchanged_pages
        where = f"{pages} API pages ({client.fresh_pages} read, {client.unchanged_pages} not modified since last time)"
    state = "written" if write_if_changed(output, render_page(links)) else "the same as before, left as it was"
    print(f"links: {len(links)} model files from {where} -> {output}: {state}", flush=True)
    return links


def read_links(path: Path) -> list[ModelLink]:
    return links_in_page(path.read_text(), path.resolve().as_uri()) if path.is_file() else []

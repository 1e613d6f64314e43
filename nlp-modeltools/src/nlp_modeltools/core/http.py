"""HTTP for the helper: requests sessions that behave as pip does, and failures named in one line.

A session trusts the environment as pip does: `~/.netrc` (or NETRC),
HTTP_PROXY / HTTPS_PROXY / NO_PROXY, REQUESTS_CA_BUNDLE (and SSL_CERT_FILE).
urllib3's Retry backs off on 429 and 5xx, honouring Retry-After. Credentials
are scoped to their origin (scheme, host, port): a URL's own user:password@,
else the credential configured for that origin (HF_TOKEN for the Hub,
GITHUB_TOKEN for the releases API, the user-info of SPACY_MODELS_URL or
SPACY_MODELS_INDEX), else ~/.netrc. requests drops Authorization on a
redirect to another origin; that origin then gets its own credential, if any.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth
from urllib3.util.retry import Retry

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.redact import mask

USER_AGENT = "nlp-template/3"
TIMEOUT = 60  # seconds without a byte before a request counts as failed
RETRY = Retry(
    total=4, backoff_factor=0.25, backoff_max=30, retry_after_max=30, status_forcelist=(429, 500, 502, 503, 504),
    raise_on_status=False,
)  # fmt: skip


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL: what a credential is scoped to."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise UserError(f"{mask(url)} is not a valid URL (bad port): fix the URL") from None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme, 0)


def host(url: str) -> str:
    """The host[:port] of a URL, without its user-info."""
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2]


def without_userinfo(url: str, keep_query: bool = True) -> str:
    """The URL without user:password@ (and, unless keep_query, without the query and fragment a token may hide in)."""
    parts = urllib.parse.urlsplit(url)._replace(netloc=host(url))
    return urllib.parse.urlunsplit(parts if keep_query else parts._replace(query="", fragment=""))


@dataclass(frozen=True)
class Credential:
    header: str  # the Authorization header's value
    source: str  # what the user changes to fix it, for messages: never the value


def basic(user: str, password: str) -> str:
    """The Authorization value of HTTP Basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def userinfo(url: str) -> tuple[str, str] | None:
    """(user, password) of a URL's user-info, a token alone as user (as pip reads it), or None."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return None
    return urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")


def credentials_from_urls(urls: Mapping[str, str]) -> dict[tuple, Credential]:
    """{variable: URL} -> the Basic credential of each URL that carries user-info, for its origin."""
    found = {}
    for variable, url in urls.items():
        if url and (user := userinfo(url)):
            found[origin(url)] = Credential(basic(*user), f"the user-info of {variable} in .env")
    return found


class OriginAuth(requests.auth.AuthBase):
    """A URL's own user-info, else the credential of its origin, else ~/.netrc."""

    def __init__(self, credentials: Mapping[tuple, Credential]) -> None:
        self.credentials = dict(credentials)

    def source(self, url: str) -> tuple[str, str] | None:
        """(Authorization value, where it came from) for a URL, or None."""
        if user := userinfo(url):
            return basic(*user), "the user:password in the URL"
        if credential := self.credentials.get(origin(url)):
            return credential.header, credential.source
        if netrc := get_netrc_auth(url):
            return basic(*netrc), os.environ.get("NETRC") or "~/.netrc"
        return None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if (found := self.source(request.url or "")) is not None:
            request.headers["Authorization"] = found[0]
        return request


class Session(requests.Session):
    """requests' Session with retries, scoped credentials and advice per origin (e.g. the Hub: HF_TOKEN)."""

    def __init__(self, credentials: Mapping[tuple, Credential], hints: Mapping[tuple, str] | None = None) -> None:
        super().__init__()
        self.auth = OriginAuth(credentials)
        self.hints = dict(hints or {})
        self.max_redirects = 10
        self.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(max_retries=RETRY)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        if os.environ.get("SSL_CERT_FILE"):  # requests reads REQUESTS_CA_BUNDLE itself; pip reads this one too
            self.verify = os.environ["SSL_CERT_FILE"]

    def rebuild_auth(self, prepared: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared, response)  # drops Authorization for another origin; its netrc entry
        if "Authorization" not in prepared.headers and (found := self.auth.source(prepared.url or "")):
            if userinfo(prepared.url or "") is None:  # credentials chosen by a server are never used
                prepared.headers["Authorization"] = found[0]


def failure(
    url: str, error: BaseException | requests.Response, what: str, session: Session | None = None, fix: str = ""
) -> UserError:
    """One line for a failed request: what was asked, what happened, what to do (fix: the caller's advice)."""
    if isinstance(error, requests.Response):
        url = error.url or url  # where it was refused, after redirects
    where, name = mask(url), host(url)
    if isinstance(error, requests.Response):
        code = error.status_code
        if code in (401, 403):
            sent = session.auth.source(error.request.url or url) if session else None
            if sent:
                return UserError(f"{what}: {name} refused the credentials from {sent[1]} (HTTP {code}): fix them")
            if session and (hint := session.hints.get(origin(url))):
                return UserError(f"{what}: HTTP {code} from {name}: {hint}")
            return UserError(
                f"{what}: HTTP {code} from {name}: it wants credentials. Give them in one of three ways: a line "
                f"`machine {urllib.parse.urlsplit(url).hostname} login USER password TOKEN` in ~/.netrc (or the "
                f"file NETRC names); in .env, SPACY_MODELS_URL with them ({origin(url)[0]}://, then USER:TOKEN@{name}"
                f"/…), sent to {name} only, for every URL there; or a line relative to that SPACY_MODELS_URL"
            )
        advice = "is the name and version right? Fix the URL" if code == 404 else "check the URL"
        advice = "try again later" if code >= 500 or code == 429 else fix or advice
        return UserError(f"{what}: HTTP {code} {error.reason} from {where}: {advice}")
    if isinstance(error, requests.exceptions.SSLError):
        return UserError(
            f"{what}: cannot verify the TLS certificate of {name}: if a private CA signs it (a company proxy, an "
            "internal mirror), set REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) in .env to that CA's certificate file (PEM)"
        )
    if isinstance(error, requests.exceptions.ProxyError):
        return UserError(
            f"{what}: the proxy for {name} failed ({type(error).__name__}): check HTTPS_PROXY / HTTP_PROXY, "
            f"or add {urllib.parse.urlsplit(url).hostname} to NO_PROXY"
        )
    if isinstance(error, requests.exceptions.TooManyRedirects):
        return UserError(f"{what}: {where} redirects more than 10 times (a loop?): check the URL or the server")
    if isinstance(error, (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL)):
        return UserError(f"{what}: {where} leads to a URL that is not http(s): check the URL")
    reason = getattr(error.args[0], "reason", None) if error.args else None  # urllib3's, once retries ran out
    if isinstance(error, requests.exceptions.Timeout) or isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return UserError(f"{what}: {name} did not answer within {TIMEOUT} s: check the network and try again")
    return UserError(f"{what}: cannot reach {where} ({type(error).__name__}): check the network, {fix or 'or the URL'}")


def get(session: Session, url: str, what: str, **options: object) -> requests.Response:
    """GET a (small) page; any failure but 304 and the statuses in `ok` is one UserError."""
    ok, fix = options.pop("ok", ()), str(options.pop("fix", ""))
    try:
        response = session.get(url, timeout=TIMEOUT, **options)  # type: ignore[arg-type]
    except requests.RequestException as error:
        raise failure(url, error, what, session, fix) from None
    if response.status_code >= 400 and response.status_code not in ok:  # type: ignore[operator]
        raise failure(url, response, what, session, fix)
    return response

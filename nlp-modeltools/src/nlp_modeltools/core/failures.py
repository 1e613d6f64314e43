"""What failed, read from a tool's own output before any advice is picked: the machine, or the request.

pip, pip-compile, uv and the engines print a disk that is full, a proxy that refuses, a
certificate nobody here trusts or a host that cannot be reached in their own words; each
is a failure of the machine, whose fix names a setting or a place, never a requirements
line. Only when none of them is in the output does the step's own explanation (a
resolver conflict, a missing wheel) apply.
"""

from __future__ import annotations

import re
import tempfile
import urllib.parse
from collections.abc import Mapping

from nlp_modeltools.core.redact import mask

URL = re.compile(r"\bhttps?://[^\s'\"<>)\]]+")
DISK_FULL = re.compile(r"No space left on device|\[Errno 28\]|ENOSPC|Disk quota exceeded")
PROXY = re.compile(r"ProxyError|Cannot connect to proxy|proxy (?:error|connect)|tunnel (?:connection )?failed", re.I)
TLS = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|UnknownIssuer|invalid peer certificate|"
                 r"self[- ]signed certificate|unable to get local issuer", re.I)  # fmt: skip
UV_CACHE = re.compile(r"Failed to initialize cache at `?([^`\s]+)`?")
READ_ONLY = re.compile(r"(?:\[Errno 30\]|\[Errno 13\])? ?(Read-only file system|Permission denied)[:,]? '?(/[^'\s]+)")
UNREACHABLE = re.compile(
    r"Connection refused|Failed to establish a new connection|Name or service not known|Temporary failure in name "
    r"resolution|Could not resolve host|dns error|failed to lookup address|Network is unreachable|No route to host|"
    r"timed out|error sending request",
    re.I,
)


def machine_failure(output: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(reason, fix) when output shows a failure of the machine (disk, proxy, TLS, network), else None."""
    text = " ".join(output.split())
    if DISK_FULL.search(text):
        where = environ.get("TMPDIR") or tempfile.gettempdir()
        return ("no space left on device", f"free some space on the disk it writes to (TMPDIR={where}, where pip and "
                "uv unpack, or the project's), or set TMPDIR to a directory on a disk with room, then run the same "
                "make command again")  # fmt: skip
    cache = UV_CACHE.search(text)
    if cache and environ.get("UV_CACHE_DIR"):
        return (f"uv cannot write its cache at {cache.group(1)}", "UV_CACHE_DIR names it: point UV_CACHE_DIR at a "
                "directory you can write, or unset it (uv's cache then goes beside NLP_MODELS_CACHE), then run the "
                "same make command again")  # fmt: skip
    if cache:
        return (f"uv cannot write its cache at {cache.group(1)}", "set NLP_MODELS_CACHE in .env (or your shell) to a "
                "directory you can write, and uv's cache goes beside it, then run the same make command "
                "again")  # fmt: skip
    read_only = READ_ONLY.search(text)
    if read_only:
        return (f"{read_only.group(2)} cannot be written ({read_only.group(1)})", "make it writable, or point the "
                "setting that names it elsewhere (NLP_MODELS_CACHE, UV_CACHE_DIR, TMPDIR, VENV, TOOLS), then run "
                "the same make command again")  # fmt: skip
    host = _host(text)
    if TLS.search(text):  # before the proxy: uv says "error sending request" for an untrusted certificate too
        return (f"{host}'s TLS certificate is not trusted here", "set REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) in .env "
                "to a bundle holding your company's CA, then run the same make command again")  # fmt: skip
    proxy = next((environ[name] for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
                  if environ.get(name)), "")  # fmt: skip
    if PROXY.search(text) or (proxy and UNREACHABLE.search(text)):
        return (f"the proxy {mask(proxy) or '(none set)'} did not carry the request to {host}", "check HTTPS_PROXY, "
                "HTTP_PROXY and NO_PROXY (in .env or your shell), then run the same make command again")  # fmt: skip
    if UNREACHABLE.search(text):
        return (f"cannot reach {host}", "check the network, the package sources in .env (PIP_INDEX_URL, "
                "PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS) and HTTPS_PROXY/NO_PROXY, then run the same make command "
                "again (OFFLINE=1 works from what build/ holds)")  # fmt: skip
    return None


def _host(text: str) -> str:
    found = URL.search(text)
    if not found:
        return "a package source"
    return urllib.parse.urlsplit(found.group(0)).netloc.rpartition("@")[2] or "a package source"

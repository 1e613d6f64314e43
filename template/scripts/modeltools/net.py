"""HTTP downloads: progress on one line per file, retries, and no partial file left behind."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from modeltools.common import CHUNK, UserError, human_size, redact
from modeltools.wheels import read_wheel

USER_AGENT = "nlp-template-models/1"


def open_url(url: str, headers: dict[str, str] | None = None, timeout: float = 60):
    """urlopen, with a URL's user-info sent as basic auth (urllib would treat it as part of the host)."""
    parts = urllib.parse.urlsplit(url)
    all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        all_headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    request = urllib.request.Request(url, headers=all_headers)
    return urllib.request.urlopen(request, timeout=timeout)


def describe_http_error(url: str, error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason} from {redact(url)}"
    reason = getattr(error, "reason", error)
    return f"cannot reach {redact(url)} ({reason})"


class Progress:
    """One line per file: redrawn in place on a terminal, every 25 % in a log."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total = label, total
        self.done, self.started, self.next_mark = 0, time.monotonic(), 25
        self.tty = sys.stdout.isatty()

    def advance(self, size: int) -> None:
        self.done += size
        if not self.total:
            return
        percent = 100 * self.done // self.total
        if self.tty:
            shown = f"{human_size(self.done)} / {human_size(self.total)} ({percent}%)"
            print(f"\r  {self.label}: {shown}", end="", flush=True)
        elif self.next_mark <= percent < 100:
            print(f"  {self.label}: {percent}% of {human_size(self.total)}", flush=True)
            self.next_mark = (percent // 25 + 1) * 25

    def finish(self) -> None:
        seconds = max(time.monotonic() - self.started, 1e-3)
        rate = human_size(self.done / seconds)
        prefix = "\r" if self.tty else ""
        print(f"{prefix}  {self.label}: {human_size(self.done)} in {seconds:.1f} s ({rate}/s)", flush=True)


def download_wheel(url: str, dest: Path, expected_sha256: str | None, attempts: int = 3) -> str:
    """Download to a temporary name, check hash and wheel, then rename. Returns the sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"Downloading {dest.name} from {redact(url)}", flush=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        digest = _download_with_retries(url, tmp, dest.name, attempts)
        if expected_sha256 and digest != expected_sha256:
            raise UserError(
                f"{dest.name} from {redact(url)} has sha256 {digest}, but its #sha256= says "
                f"{expected_sha256}: the file is not the one you pinned. Nothing was kept."
            )
        try:
            read_wheel(tmp)
        except UserError:
            raise UserError(f"{redact(url)} did not return a wheel (an HTML page?). Nothing was kept.") from None
        os.replace(tmp, dest)
        return digest
    finally:
        tmp.unlink(missing_ok=True)


def _download_with_retries(url: str, tmp: Path, label: str, attempts: int) -> str:
    for attempt in range(1, attempts + 1):
        try:
            return _stream_to(url, tmp, label)
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == attempts:
                hint = " (is the model name and version right?)" if error.code == 404 else ""
                raise UserError(f"download failed: {describe_http_error(url, error)}{hint}") from error
        except (urllib.error.URLError, OSError) as error:
            if attempt == attempts:
                raise UserError(
                    f"download failed: {describe_http_error(url, error)}. Check the network, or point "
                    "SPACY_MODELS_URL at a mirror; OFFLINE=1 uses only what build/ holds"
                ) from error
        time.sleep(attempt)
    raise AssertionError("unreachable")


def _stream_to(url: str, tmp: Path, label: str) -> str:
    digest = hashlib.sha256()
    with open_url(url) as response, tmp.open("wb") as out:
        length = response.headers.get("Content-Length")
        progress = Progress(label, int(length) if length and length.isdigit() else None)
        while chunk := response.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            progress.advance(len(chunk))
        progress.finish()
    return digest.hexdigest()

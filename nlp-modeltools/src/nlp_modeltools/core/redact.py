"""What may be printed: URLs without their user-info, and no value of .env's secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable

USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s?#@]*@")


def mask(text: str) -> str:
    """Every URL's user-info (user:password@) in text shown as ****@."""
    return USERINFO.sub(r"\1****@", text)


class Redactor:
    """Hides user-info in URLs and every known secret value in a line of text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        text = mask(text)
        return self.pattern.sub("****", text) if self.pattern else text

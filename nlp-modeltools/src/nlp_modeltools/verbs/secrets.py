"""make check-secrets and check-env: .env's values in no tracked file, and .env read by make as written."""

from __future__ import annotations

from nlp_modeltools.config import Settings
from nlp_modeltools.core.secrets import check_no_leaks


def check_secrets(settings: Settings) -> None:
    check_no_leaks(settings.paths, settings.secrets)
    print("check-secrets: no value of .env appears in a tracked file or in requirements.txt")


def check_env(settings: Settings) -> None:
    """Run by make whenever .env changed (settings.env_values checks every line first); says so once without one."""
    if not settings.paths.env_file.is_file():
        print("make: this project has no .env, so it runs with the Makefile's settings alone; to give credentials "
              "or settings, cp .env.example .env && chmod 600 .env and edit it", flush=True)  # fmt: skip

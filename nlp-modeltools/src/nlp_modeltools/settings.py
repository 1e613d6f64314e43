"""Where the project keeps each file, and the settings make exports (never passed on a command line).

The Makefile exports its settings and .env's variables; reading them from the
environment keeps a credential in SPACY_MODELS_URL out of make's echoed commands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from nlp_modeltools import envfile
from nlp_modeltools.errors import Redactor, UserError
from nlp_modeltools.files import HashCache

if TYPE_CHECKING:
    from nlp_modeltools.http import Session
    from nlp_modeltools.store import ModelStore

GITHUB_API = "https://api.github.com/repos/explosion/spacy-models"
HF_ENDPOINT = "https://huggingface.co"
GITHUB_RELEASES = "https://github.com/explosion/spacy-models/releases/download/"
INSTALLERS = ("pip-tools", "uv")
TRUE = ("1", "yes", "true", "on")
# Where pip and uv look for packages: never given to an install, handed to a resolver, a build secret.
SOURCE_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL",
                    "UV_FIND_LINKS", "UV_INDEX", "UV_DEFAULT_INDEX")  # fmt: skip


class Paths:
    """The project's files, under root; the names are the Makefile's."""

    def __init__(self, root: Path = Path()) -> None:
        self.root = root
        self.urls = root / "requirements-model.in.url"
        self.ranges = root / "requirements-model.in.range"
        self.pins = root / "requirements-model.in"
        self.requirements = root / "requirements.in"
        self.lock = root / "requirements.txt"
        self.env_file = root / ".env"
        self.answers = root / ".copier-answers.yml"
        self.pipelines = root / "pipelines"
        self.build = root / "build"
        self.wheels = self.build / "wheels"
        self.links = self.build / "spacy_model_links.html"
        self.work = self.build / "lock"  # the lock step's scratch space: resolver inputs and drafts
        self.partial = self.build / ".partial"  # downloads in progress, resumed by the next run


@dataclass
class Settings:
    """What one run of the helper works with."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    paths: Paths = field(default_factory=Paths)

    def get(self, name: str, default: str = "") -> str:
        return self.environ.get(name, "").strip() or default

    @property
    def offline(self) -> bool:
        return self.get("OFFLINE").lower() in TRUE

    @property
    def verbose(self) -> bool:
        return self.get("VERBOSE").lower() in TRUE

    @property
    def installer(self) -> str:
        installer = self.get("INSTALLER", "pip-tools")
        if installer not in INSTALLERS:
            raise UserError(f"INSTALLER={installer} is not one of {', '.join(INSTALLERS)}: set it to pip-tools or uv")
        return installer

    @property
    def models_url(self) -> str:
        return self.get("SPACY_MODELS_URL", GITHUB_RELEASES).rstrip("/")

    @property
    def models_api(self) -> str:
        return self.get("SPACY_MODELS_API", GITHUB_API).rstrip("/")

    @property
    def models_index(self) -> str:
        """A team's PEP 503 index to take ranged models from, instead of the releases API."""
        return self.get("SPACY_MODELS_INDEX").rstrip("/")

    @property
    def python_version(self) -> str:
        return self.get("PYTHON_VERSION")

    @property
    def venv(self) -> Path:
        return self.paths.root / self.get("VENV", ".venv")

    @property
    def tools(self) -> Path:
        return self.paths.root / self.get("TOOLS", "build/tools")

    def tool(self, name: str) -> str:
        """A program of the environment this engine runs in (python, uv, pip-compile's python), as an absolute path.

        Its own interpreter for "python"; the others sit beside it (a venv's bin/, where pip put them).
        """
        here = Path(sys.executable).absolute()  # not resolve(): a venv python is a symlink
        return str(here if name == "python" else here.parent / name)

    @property
    def manifest(self) -> Path | None:
        """The runtime self-install's pins (src/<package>/models.lock.json), when the project uses it."""
        value = self.get("MODELS_MANIFEST")
        return self.paths.root / value if value else None

    @cached_property
    def env_values(self) -> dict[str, str]:
        """.env's variables as make gives them, after checking that make reads each as written."""
        return envfile.read(self.paths.env_file, self.environ)

    @cached_property
    def redact(self) -> Redactor:
        return Redactor(value for _, value in envfile.secret_values(self.env_values))

    @cached_property
    def session(self) -> Session:
        """HTTP for downloads: HF_TOKEN for the Hub alone, SPACY_MODELS_URL's and SPACY_MODELS_INDEX's user-info
        for their own hosts, ~/.netrc for the rest (never GITHUB_TOKEN)."""
        from nlp_modeltools.http import Credential, Session, credentials_from_urls, origin

        credentials = credentials_from_urls(
            {name: self.get(name) for name in ("SPACY_MODELS_URL", "SPACY_MODELS_INDEX")}
        )
        hub = origin(self.get("HF_ENDPOINT", HF_ENDPOINT))
        if token := self.get("HF_TOKEN"):
            credentials[hub] = Credential(f"Bearer {token}", "HF_TOKEN in .env")
        return Session(credentials, {hub: "set HF_TOKEN in .env to a token with access to this repository"})

    @cached_property
    def api_session(self) -> Session:
        """HTTP for the releases API: GITHUB_TOKEN, sent to the API alone (never to a download)."""
        from nlp_modeltools.http import Credential, Session, origin

        token = self.get("GITHUB_TOKEN")
        return Session(
            {origin(self.models_api): Credential(f"Bearer {token}", "GITHUB_TOKEN in .env")} if token else {}
        )

    @cached_property
    def store(self) -> ModelStore:
        from nlp_modeltools.store import ModelStore, default_cache_dir

        return ModelStore(default_cache_dir(self.environ))

    @cached_property
    def hashes(self) -> HashCache:
        return HashCache(self.paths.build / ".sha256-cache.json")

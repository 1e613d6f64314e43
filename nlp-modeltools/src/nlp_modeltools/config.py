"""The settings make exports (never passed on a command line), read once, and what the verbs make of them.

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

from nlp_modeltools.core import envfile
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.core.platforms import ImageTarget, image_target
from nlp_modeltools.core.redact import Redactor
from nlp_modeltools.core.tools import Tools, is_true
from nlp_modeltools.lock.resolve import Resolver
from nlp_modeltools.models import manifest
from nlp_modeltools.models.collect import ModelSources
from nlp_modeltools.models.fetch import Fetcher
from nlp_modeltools.models.inputs import GITHUB_RELEASES
from nlp_modeltools.models.manifest import ModelRecord
from nlp_modeltools.models.ranges import Mirror
from nlp_modeltools.models.releases import LinksSource
from nlp_modeltools.ship.engine import Engine, detect, engine_environment

if TYPE_CHECKING:
    from nlp_modeltools.core.http import Session
    from nlp_modeltools.models.store import ModelStore

GITHUB_API = "https://api.github.com/repos/explosion/spacy-models"
HF_ENDPOINT = "https://huggingface.co"
INSTALLERS = ("pip-tools", "uv")


@dataclass
class Settings:
    """What one run of nlp-models works with: the environment, read once, and what is made of it for the steps."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    paths: Paths = field(default_factory=Paths)

    def get(self, name: str, default: str = "") -> str:
        return self.environ.get(name, "").strip() or default

    @property
    def offline(self) -> bool:
        return is_true(self.get("OFFLINE"))

    @property
    def verbose(self) -> bool:
        return is_true(self.get("VERBOSE"))

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
        """The project's Python (PYTHON_VERSION, as make sets it), else the one this engine runs on."""
        return self.get("PYTHON_VERSION", f"{sys.version_info[0]}.{sys.version_info[1]}")

    @property
    def venv(self) -> Path:
        return self.paths.root / self.get("VENV", ".venv")

    @property
    def tools(self) -> Path:
        return self.paths.root / self.get("TOOLS", "build/tools")

    def tool(self, name: str) -> str:
        return Tools.program(name)

    @cached_property
    def run(self) -> Tools:
        """What every step that runs a tool is given: the environment, the redactor, OFFLINE."""
        return Tools(self.environ, self.redact, self.offline)

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
    def secrets(self) -> list[tuple[str, str]]:
        """.env's secret values with their names (what no output, file or image may hold)."""
        return envfile.secret_values(self.env_values)

    @cached_property
    def redact(self) -> Redactor:
        return Redactor(value for _, value in self.secrets)

    @cached_property
    def session(self) -> Session:
        """HTTP for downloads: HF_TOKEN for the Hub alone, SPACY_MODELS_URL's and SPACY_MODELS_INDEX's user-info
        for their own hosts, ~/.netrc for the rest (never GITHUB_TOKEN)."""
        from nlp_modeltools.core.http import Credential, Session, credentials_from_urls, origin

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
        from nlp_modeltools.core.http import Credential, Session, origin

        token = self.get("GITHUB_TOKEN")
        return Session(
            {origin(self.models_api): Credential(f"Bearer {token}", "GITHUB_TOKEN in .env")} if token else {}
        )

    @cached_property
    def store(self) -> ModelStore:
        from nlp_modeltools.models.store import ModelStore, default_cache_dir

        return ModelStore(default_cache_dir(self.environ))

    @cached_property
    def hashes(self) -> HashCache:
        return HashCache(self.paths.build / ".sha256-cache.json")

    @cached_property
    def fetcher(self) -> Fetcher:
        return Fetcher(self.paths.build, self.store, self.session, self.hashes, self.run)

    @cached_property
    def links_source(self) -> LinksSource:
        return LinksSource(self.paths.links, self.session, self.models_index, self.api_session, self.models_api,
                           bool(self.get("GITHUB_TOKEN")))  # fmt: skip

    @cached_property
    def model_sources(self) -> ModelSources:
        mirror = Mirror(self.models_url, self.models_index, self.paths.links)
        return ModelSources(self.models_url, self.get("HF_ENDPOINT", HF_ENDPOINT), self.links_source, mirror)

    @cached_property
    def resolver(self) -> Resolver:
        return Resolver(self.paths, self.run, self.session, self.hashes, self.installer, self.python_version)

    def models(self) -> list[ModelRecord]:
        """The manifest make models wrote, checked against the model lists and build/ (raises UserError)."""
        return manifest.current(self.paths, self.hashes)

    def require_files(self, verb: str, *names: str) -> None:
        """Stop when the project lacks a file a verb needs that nlp-template writes (a project not made from it)."""
        for name in names:
            if not (self.paths.root / name).is_file():
                raise UserError(f"{name} is missing: nlp-models {verb} needs the {name} nlp-template writes; copy it "
                                "from a project made with the template (copier copy gh:org/nlp-template), or run "
                                f"copier update in this project")  # fmt: skip

    def engine(self) -> Engine:
        """The engine of CONTAINER_ENGINE (or found), checked before anything is built, with its environment: .env's
        engine settings (DOCKER_*, CONTAINERS_*, ...) and none of its other variables."""
        return detect(self.get("CONTAINER_ENGINE"), engine_environment(self.environ, list(self.env_values)))

    def image_target(self) -> ImageTarget:
        python = self.get("IMAGE_PYTHON") or self.python_version
        return image_target(self.get("PLATFORM"), python, self.get("IMAGE_GLIBC"))

"""Where a project keeps each file: the names are the Makefile's (a pure value; nothing is read here)."""

from __future__ import annotations

from pathlib import Path


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
        self.manifest = self.build / "models.json"  # make models' record of every model (models/manifest.py)


# The package's own hash locks of the venvs its verbs run (twine for publish, cyclonedx-bom for sbom).
LOCKS = Path(__file__).resolve().parent.parent / "locks"

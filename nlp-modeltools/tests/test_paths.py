"""core/paths.py: the project's file names are the Makefile's, under the root it is given."""

from __future__ import annotations

from pathlib import Path

from nlp_modeltools.core.paths import LOCKS, Paths


def test_every_file_is_named_as_the_makefile_names_it_under_the_root() -> None:
    paths = Paths(Path("/p"))
    named = {name: str(value) for name, value in vars(paths).items()}
    assert named == {
        "root": "/p", "urls": "/p/requirements-model.in.url", "ranges": "/p/requirements-model.in.range",
        "pins": "/p/requirements-model.in", "requirements": "/p/requirements.in", "lock": "/p/requirements.txt",
        "env_file": "/p/.env", "answers": "/p/.copier-answers.yml", "pipelines": "/p/pipelines", "build": "/p/build",
        "wheels": "/p/build/wheels", "links": "/p/build/spacy_model_links.html", "work": "/p/build/lock",
        "partial": "/p/build/.partial", "manifest": "/p/build/models.json",
    }  # fmt: skip


def test_the_default_root_is_the_directory_make_runs_in() -> None:
    assert Paths().lock == Path("requirements.txt") and not Paths().root.is_absolute()


def test_the_package_carries_the_hash_locks_of_its_own_job_venvs() -> None:
    for name in ("publish", "sbom"):
        lock = (LOCKS / f"{name}.txt").read_text()
        assert (LOCKS / f"{name}.in").is_file() and "--hash=sha256:" in lock

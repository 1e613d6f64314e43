"""make publish: the project's model wheels from build/ to the team's package index, with twine.

Every model the project lists (downloaded, packaged from pipelines/, from the
Hub) is uploaded once. The index's own page for each model (PEP 503, read from
SPACY_MODELS_INDEX, else TWINE_REPOSITORY_URL's /simple) is read first: a file
it already holds with the same sha256 is skipped (twine's --skip-existing works
with PyPI only), and one with the same name and version but other bytes stops
everything before a byte is sent, since a version is published once.

twine runs from $(TOOLS)/envs/twine (its locks/publish.txt, hash-locked) and
reads TWINE_REPOSITORY_URL, TWINE_USERNAME and TWINE_PASSWORD from its
environment: no credential is on a command line or in the output.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import requests

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError, run_tool
from nlp_modeltools.core.files import project_lock
from nlp_modeltools.core.paths import LOCKS
from nlp_modeltools.core.redact import Redactor, mask
from nlp_modeltools.models import releases
from nlp_modeltools.models.wheels import ModelWheel, read_model_wheel
from nlp_modeltools.ship import envs

CREDENTIALS = ("TWINE_REPOSITORY_URL", "TWINE_USERNAME", "TWINE_PASSWORD")
SAME, OTHER, ABSENT, UNKNOWN = "same", "other", "absent", "unknown"


def publish(settings: Settings) -> None:
    require_credentials(settings)
    with project_lock(settings.paths.build):
        wheels = [read_model_wheel(record.path(settings.paths.build)) for record in settings.models()]
    if not wheels:
        print("publish: this project lists no models; nothing to upload", flush=True)
        return
    index = team_index(settings)
    hashes = {wheel.filename: settings.hashes.sha256(wheel.path) for wheel in wheels}
    states = index_states(settings, index, wheels, hashes)
    refuse_other_content(states, wheels, hashes, index)
    uploads = [wheel for wheel in wheels if states[wheel.filename] == ABSENT]
    for wheel in wheels:
        if states[wheel.filename] == SAME:
            print(f"publish: {wheel.filename} is already on the index, same sha256; skipped", flush=True)
        elif states[wheel.filename] == UNKNOWN:
            print(f"publish: the index lists {wheel.filename} without a sha256, so it cannot be compared: skipped",
                  flush=True)  # fmt: skip
    if uploads:
        upload(settings, [wheel.path for wheel in uploads])
        after = index_states(settings, index, uploads, hashes)
        refuse_other_content(after, uploads, hashes, index)
        missing = [w.filename for w in uploads if after[w.filename] == ABSENT]
        if missing:
            raise UserError(
                f"twine uploaded {', '.join(missing)}, but {mask(index)} does not list it: point "
                "SPACY_MODELS_INDEX at the simple URL of the index TWINE_REPOSITORY_URL uploads to"
            )
    print(f"publish: {len(uploads)} uploaded, {len(wheels) - len(uploads)} already there: {mask(index)} holds "
          "every model of the project, each with the sha256 of its build/ file", flush=True)  # fmt: skip


def credentials(settings: Settings) -> dict[str, str]:
    """TWINE_* as make exports them, else as .env sets them (the helper may run outside make)."""
    return {name: settings.get(name) or settings.env_values.get(name, "").strip() for name in CREDENTIALS}


def require_credentials(settings: Settings) -> None:
    missing = [name for name, value in credentials(settings).items() if not value]
    if missing:
        raise UserError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: set TWINE_REPOSITORY_URL (the "
            "index's upload URL), TWINE_USERNAME and TWINE_PASSWORD in .env (see .env.example)"
        )


def team_index(settings: Settings) -> str:
    """The index's PEP 503 simple URL: SPACY_MODELS_INDEX, else TWINE_REPOSITORY_URL's /simple (pypiserver's)."""
    index = settings.models_index
    if not index:
        upload_url = credentials(settings)["TWINE_REPOSITORY_URL"].rstrip("/")
        index = upload_url.removesuffix("/legacy") + "/simple"
    try:
        status = settings.session.get(index + "/", timeout=60).status_code
        reason = f"HTTP {status}"
    except requests.RequestException as error:
        status, reason = 0, type(error).__name__
    if not 200 <= status < 400:
        raise UserError(
            f"cannot read the team index at {mask(index)}/ ({reason}): set SPACY_MODELS_INDEX in .env to "
            "its simple URL (PEP 503, e.g. https://pypi.example.com/simple), which make publish checks first"
        ) from None
    return index


def index_states(
    settings: Settings, index: str, wheels: Iterable[ModelWheel], hashes: dict[str, str]
) -> dict[str, str]:
    """For each wheel: the index has the same file, other bytes under its name and version, none, or no hash."""
    wheels = list(wheels)
    links = releases.index_links(settings.session, index, [wheel.display_name for wheel in wheels])
    states = {}
    for wheel in wheels:
        found = [link for link in links if link.identity() == (wheel.name, wheel.version)]
        if not found:
            states[wheel.filename] = ABSENT
        elif any(link.sha256 not in (None, hashes[wheel.filename]) for link in found):
            states[wheel.filename] = OTHER
        elif any(link.sha256 is None for link in found):
            states[wheel.filename] = UNKNOWN
        else:
            states[wheel.filename] = SAME
    return states


def refuse_other_content(states: dict[str, str], wheels: list[ModelWheel], hashes: dict[str, str], index: str) -> None:
    clashes = [wheel for wheel in wheels if states[wheel.filename] == OTHER]
    if clashes:
        names = ", ".join(f"{w.pin} (sha256 {hashes[w.filename][:12]}… here)" for w in clashes)
        raise UserError(
            f"{mask(index)} already holds {names} with other content: a version is published once, so nothing "
            "was uploaded. Bump the model's version (pipelines/<dir>/meta.json for your own), or have the "
            "index's owner remove the other file"
        )


def upload(settings: Settings, files: list[Path]) -> None:
    """twine upload, credentials from the environment only; its output has every secret replaced by ****."""
    requirements = LOCKS / "publish.txt"
    secrets = [value for _, value in settings.secrets]
    twine = credentials(settings)
    redact = Redactor([*secrets, twine["TWINE_PASSWORD"]])
    env = {**settings.environ, **twine, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    with envs.job_env(settings.tools / "envs", settings.run, "twine", requirements, job="make publish",
                      locked=True) as python:  # fmt: skip
        print(f"publish: uploading {len(files)} model wheels with twine", flush=True)
        run_tool(
            [str(python), "-m", "twine", "--no-color", "upload", "--non-interactive", "--disable-progress-bar",
             *(str(path) for path in files)],
            what="twine upload", env=env, redact=redact,
            fix="Check TWINE_REPOSITORY_URL, TWINE_USERNAME and TWINE_PASSWORD in .env (twine names what was refused)",
        )  # fmt: skip

"""nlp-models: the steps behind a project's Makefile targets (models, lock, wheelhouse, docker, ...).

A generated project's make runs `$(TOOLS)/bin/nlp-models VERB` after exporting its
settings and .env's variables; no setting travels on the command line, so none is
echoed. A project not made from the template runs the same verbs in its own
directory. `nlp-models --help` lists the verbs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from nlp_modeltools import __version__
from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import describe_os_error
from nlp_modeltools.core.redact import mask

# verb -> (module, function, help). Modules are imported for their verb only.
VERBS: dict[str, tuple[str, str, str]] = {
    "models": (
        "collect",
        "models",
        "fetch each listed model once into build/, checked; write requirements-model.in, build/models.json",
    ),
    "links": ("collect", "links", "write build/spacy_model_links.html from the releases API or the team index"),
    "check-models": ("collect", "check_models", "check that each model's own spaCy requirement fits the project's"),
    "lock": ("locking", "lock", "compile requirements.txt with hashes (models from build/ only) if its inputs changed"),
    "upgrade": ("locking", "upgrade", "re-resolve everything, models included, to the newest allowed versions"),
    "wheelhouse": ("dockerbuild", "wheelhouse_step", "put each locked wheel into build/wheels, checked by its hash"),
    "install-failed": ("install", "install_failed", "after a refused install: name the wheelhouse file to blame"),
    "docker": ("dockerbuild", "docker", "build the image for PLATFORM from its own verified wheelhouse, offline"),
    "docker-verify": (
        "dockerbuild",
        "docker_verify",
        "rebuild IMAGE with --no-cache under names of its own: it must be the same image",
    ),
    "sbom": ("sbom", "sbom", "write build/sbom.cdx.json: a CycloneDX SBOM of requirements.txt, every file's sha256"),
    "push": ("push", "push", "push IMAGE to its registry (REGISTRY_USERNAME, REGISTRY_PASSWORD in .env)"),
    "check-secrets": ("secrets", "check_secrets", "fail if a value from .env is in a tracked file or in the lock"),
    "check-env": ("secrets", "check_env", "check that make reads every line of .env as written"),
    "package": ("package", "package", "package each changed pipeline under pipelines/ into build/ (spacy package)"),
    "publish": ("publish", "publish", "upload the model wheels in build/ to the team index (TWINE_* in .env)"),
    "prune": ("collect", "prune", "remove from build/ the model wheels requirements.txt no longer names"),
    "bundle": ("bundle", "bundle", "write an offline install kit for PLATFORM and IMAGE_PYTHON into build/bundle/"),
    "cache-info": ("cache", "cache_info", "show the machine-wide model cache: entries, sizes, last use"),
    "cache-prune": ("cache", "cache_prune", "remove cache entries unused for CACHE_MAX_AGE days, but this project's"),
}


def run_verb(name: str, settings: Settings) -> None:
    module, function, _ = VERBS[name]
    step: Callable[[Settings], None] = getattr(importlib.import_module(f"nlp_modeltools.verbs.{module}"), function)
    step(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nlp-models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (_, _, help_text) in VERBS.items():
        verbs.add_parser(name, help=help_text, description=help_text)
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        settings.env_values  # noqa: B018 - a .env make misreads stops every step, before anything runs
        run_verb(args.verb, settings)
    except UserError as error:
        print(f"error: {settings_safe(settings, str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was left half-written; run the same make command again", file=sys.stderr)
        return 130
    except OSError as error:
        if error.errno is None:  # requests' failures are OSErrors too, with no errno: not a disk's
            return unexpected(settings, error)
        where = Path(error.filename) if error.filename else Path.cwd()
        print(f"error: {settings_safe(settings, describe_os_error(error, where))}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: one line, the details on request
        return unexpected(settings, error)
    return 0


def unexpected(settings: Settings, error: BaseException) -> int:
    if settings.verbose:
        traceback.print_exc()
    message = settings_safe(settings, f"{type(error).__name__}: {error}")
    print(f"error: {message} (an unexpected failure; run with VERBOSE=1 to see where)", file=sys.stderr)
    return 1


def settings_safe(settings: Settings, text: str) -> str:
    """A message with no credential, whatever it quotes."""
    try:
        return settings.redact(text)
    except (UserError, OSError):
        return mask(text)


if __name__ == "__main__":
    sys.exit(main())

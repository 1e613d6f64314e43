"""make push: IMAGE to its registry with the engine's login and push (which sends only the layers it lacks).

REGISTRY_PASSWORD goes to `login --password-stdin` into a login file of this push alone
(podman --authfile, docker's DOCKER_CONFIG); a failure is one line: the registry, the fix.
"""

from __future__ import annotations

import subprocess
import tempfile

from nlp_modeltools.config import Settings
from nlp_modeltools.core import envfile
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.redact import Redactor


def push(settings: Settings) -> None:
    engine, name = settings.engine(), settings.get("IMAGE")
    registry = registry_of(name)
    user, password = settings.get("REGISTRY_USERNAME"), settings.get("REGISTRY_PASSWORD")
    if bool(user) != bool(password):
        raise UserError("set both REGISTRY_USERNAME and REGISTRY_PASSWORD in .env (or neither: the engine's login)")
    redact = Redactor([password, *(value for _, value in envfile.secret_values(settings.env_values))])
    podman, certs = engine.podman, settings.get("REGISTRY_CERT_DIR")
    if certs and not podman:
        raise UserError(f"REGISTRY_CERT_DIR is for podman: give docker the CA as /etc/docker/certs.d/{registry}/ca.crt")
    with tempfile.TemporaryDirectory(prefix="registry-login-") as private:
        options, env = (["--cert-dir", certs] if certs else []), dict(engine.environ)
        if user:
            options += ["--authfile", f"{private}/auth.json"] if podman else []
            env.update({} if podman else {"DOCKER_CONFIG": private})
            login = [engine.program, "login", *options, "--username", user, "--password-stdin", registry]
            run(login, env, redact, password, f"{engine.program} login to {registry} as {user} was refused",
                "check REGISTRY_USERNAME and REGISTRY_PASSWORD in .env, then run make push")  # fmt: skip
        fix = f"check {registry} in IMAGE and REGISTRY_USERNAME, REGISTRY_PASSWORD in .env, then run make push"
        output = run([engine.program, "push", *options, name], env, redact, None,
                     f"{engine.program} push of {name} failed", fix)  # fmt: skip
    print(output, end="")
    print(f"push: {name} is in {registry} (the engine sends only the layers the registry does not hold yet)")


def registry_of(name: str) -> str:
    """The registry part of an image name, as the engines read it (no dot, colon or localhost: Docker Hub)."""
    first, slash, _ = name.partition("/")
    if first == "localhost" or not name:
        raise UserError(f"IMAGE={name} names no registry (localhost/ is this machine's store): set IMAGE to "
                        "registry.example.com/team/<name>:<tag>, then run make docker and make push")  # fmt: skip
    return first if slash and ("." in first or ":" in first) else "docker.io"


def run(command: list[str], env: dict[str, str], redact: Redactor, stdin: str | None, what: str, fix: str) -> str:
    """The engine's output, redacted; a failure becomes one line with the engine's own reason."""
    done = subprocess.run(command, input=stdin, env=env, capture_output=True, text=True, errors="replace")
    output = redact(done.stdout + done.stderr)
    if done.returncode:
        reason = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "no message")
        raise UserError(f"{what} ({reason.removeprefix('Error: ')}): {fix}")
    return output

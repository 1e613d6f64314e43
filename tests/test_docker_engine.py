"""Images on Docker Engine as users have it: 26.1 (BuildKit 0.13 through buildx) on both image stores, and 20.10.

The full image suite runs on podman (test_docker, test_image_layers, test_push); this module holds
what differs on Docker: a plain `docker build .` copies nothing from build/ and says `make models`
on a fresh clone, BuildKit is checked before anything is built, .env's engine settings reach every
call, a failed make docker-verify names the difference and leaves nothing behind (containerd store), and `make
docker` gives the same image from a clone built --no-cache on a fresh daemon, on the classic and the containerd store,
with model layers whose diff IDs and pushed blobs do not change with the rest. Each daemon is a
real dockerd of its own (tests/support/dockerd.py); its images go with it when it stops. The tests
that load no spaCy model in the image build conftest's thin project (one small model wheel, no spaCy).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST, Installed
from tests.support.dockerd import Daemon, import_base_image, start_daemon
from tests.support.project import MakeResult, copy_project, make
from tests.support.registry import Registry, start_registry

pytestmark = pytest.mark.container
BASE = "localhost/nlp-base:bookworm"
TOKEN = "FAKE-DOCKER-INDEX-TOKEN-9b1f27"
PASSWORD = "FAKE-DOCKER-REGISTRY-PASSWORD-3d8e"
BUMP = "six==1.17.0"


def daemon_or_skip(version: str, store: str = "classic") -> Daemon:
    """A running daemon with the base image, or a skip (a failure when CI=true: .ci/run can start them)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true, but Docker Engine cannot run here (needs root and apt-get)")
        pytest.skip("Docker Engine daemons need root and apt-get here; with CI=true this fails instead")
    try:
        daemon = start_daemon(version, store)
    except Exception as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Docker Engine {version} ({store}) does not start here: {error}")
    import_base_image(daemon)
    return daemon


@pytest.fixture(scope="session")
def docker26() -> Iterator[Daemon]:
    daemon = daemon_or_skip("26.1", "classic")
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def docker26_containerd() -> Iterator[Daemon]:
    daemon = daemon_or_skip("26.1", "containerd")
    yield daemon
    daemon.stop()


@pytest.fixture(params=["classic", "containerd"])
def store_daemon(request: pytest.FixtureRequest) -> Daemon:
    return request.getfixturevalue("docker26" if request.param == "classic" else "docker26_containerd")


@contextlib.contextmanager
def fresh_daemon(store: str) -> Iterator[Daemon]:
    """A Docker 26 daemon with an empty store and build cache: another machine."""
    daemon = daemon_or_skip("26.1", store)
    try:
        yield daemon
    finally:
        daemon.stop()


def docker_make(daemon: Daemon, project: Path, *args: str, image: str = "localhost/app:test", check: bool = True,
                env: dict[str, str] | None = None) -> MakeResult:  # fmt: skip
    return make(project, *args, f"BASE_IMAGE={BASE}", f"IMAGE={image}", env={**daemon.env(), **(env or {})},
                check=check)  # fmt: skip


def identity(daemon: Daemon, image: str) -> str:
    """The image ID on the classic store; the config digest on the containerd store (its IDs are manifests)."""
    if daemon.store == "classic":
        return daemon.docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    manifest, archive = saved(daemon, image)
    return "sha256:" + hashlib.sha256(archive.extractfile(manifest["Config"]).read()).hexdigest()


def saved(daemon: Daemon, image: str) -> tuple[dict, tarfile.TarFile]:
    data = subprocess.run([str(daemon.bin_dir / "docker"), "save", image], env=daemon.env(), capture_output=True,
                          check=True).stdout  # fmt: skip
    archive = tarfile.open(fileobj=io.BytesIO(data))
    (manifest,) = json.load(archive.extractfile("manifest.json"))
    return manifest, archive


def files_in(daemon: Daemon, image: str) -> dict[str, bytes]:
    """Every file of every layer of the image, as `docker save` gives them: layer!path -> content."""
    manifest, archive = saved(daemon, image)
    found = {}
    for layer_name in manifest["Layers"]:
        with tarfile.open(fileobj=archive.extractfile(layer_name)) as layer:
            for entry in layer:
                found[f"{layer_name}!{entry.name}"] = layer.extractfile(entry).read() if entry.isfile() else b""
    return found


def diff_ids(daemon: Daemon, image: str) -> list[str]:
    return json.loads(daemon.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout)


def base_layers(daemon: Daemon) -> int:
    return len(diff_ids(daemon, BASE))


def commit(project: Path) -> None:
    """One commit time for every copy: the same files give the same SOURCE_DATE_EPOCH, so a daemon's build cache
    serves the next test's make docker (as it serves a second build of one commit)."""
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    when = {"GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z"}
    subprocess.run(["git", "commit", "--quiet", "-m", "the project"], cwd=project, check=True,
                   env={**os.environ, **when})  # fmt: skip


def clone_with_build(project: Path, target: Path) -> Path:
    """A git clone elsewhere, with the model wheels and wheelhouse make models and make wheelhouse leave."""
    subprocess.run(["git", "clone", "--quiet", str(project), str(target)], check=True)
    for part in ("wheels",):
        shutil.copytree(project / "build" / part, target / "build" / part)
    for wheel in (project / "build").glob("*.whl"):
        shutil.copy2(wheel, target / "build" / wheel.name)
    return target


@pytest.fixture
def project(tmp_path: Path, installed: Installed) -> Path:
    """A committed copy of the installed project (its lock, build/ and wheelhouse), without its venvs."""
    copied = copy_project(installed.path, tmp_path / "proj")
    commit(copied)
    return copied


@pytest.fixture
def thin_project(tmp_path: Path, thin: Path) -> Path:
    """A committed copy of conftest's thin project (one small model wheel, no spaCy): for what loads no model."""
    copied = copy_project(thin, tmp_path / "proj")
    commit(copied)
    return copied


# ---- a plain `docker build .` ---------------------------------------------------------------------------------


def test_a_plain_build_copies_nothing_from_build_and_uses_the_wheelhouse(docker26: Daemon, project: Path) -> None:
    licensed = project / "build" / "licensed_pkg-1.0-py3-none-any.whl"  # a private wheel .env's find-links got
    licensed.write_bytes(b"PK licensed bytes " + TOKEN.encode())
    image = f"localhost/plain-{uuid.uuid4().hex[:8]}:1"
    built = subprocess.run([str(docker26.bin_dir / "docker"), "build", "--network=none", "--build-arg",
                            f"BASE_IMAGE={BASE}", "--tag", image, "."], cwd=project, env=docker26.env(),
                           capture_output=True, text=True)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    assert "image: installing requirements.txt from build/wheels with pip, with no index" in built.stderr
    listing = docker26.docker("run", "--rm", "--network=none", "--entrypoint", "ls", image, "-A", "/app").stdout
    assert listing.split() == [".venv", "requirements.txt", "src"]
    files = files_in(docker26, image)
    debian = "usr/share/python-wheels/"  # the base image's own pip wheels
    assert not [name for name in files if name.endswith(".whl") and debian not in name], "a wheel is in the image"
    assert not [name for name, data in files.items() if TOKEN.encode() in data]
    code = "import spacy; print(spacy.load('en_core_web_sm')('Apple buys U.K. startup').ents[0].label_)"
    loaded = docker26.docker("run", "--rm", "--network=none", "--entrypoint", "python", image, "-c", code).stdout
    assert loaded.strip() == "ORG"


def test_a_plain_build_of_a_fresh_clone_says_make_models(docker26: Daemon, project: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(project), str(clone)], check=True)
    assert sorted(p.name for p in (clone / "build").iterdir()) == ["README.md"]
    built = subprocess.run([str(docker26.bin_dir / "docker"), "build", "--network=none", "--build-arg",
                            f"BASE_IMAGE={BASE}", "--tag", "localhost/fresh:1", "."], cwd=clone, env=docker26.env(),
                           capture_output=True, text=True)  # fmt: skip
    assert built.returncode != 0
    assert "image: no wheel in build/ for en_core_web_sm==3.8.0: run make models (or make wheelhouse), then build " \
        "again" in built.stderr  # fmt: skip
    assert "ERROR: failed to solve" in built.stderr and built.stderr.count("sed -n") == 0, "no script is echoed"


# ---- BuildKit and one environment ------------------------------------------------------------------------------------


def test_the_legacy_builder_is_refused_before_any_layer_is_built(docker26: Daemon, project: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    before = docker26.docker("images", "--quiet", "--all").stdout.split()
    forced = docker_make(docker26, project, "docker", env={"DOCKER_BUILDKIT": "0"}, check=False)
    assert forced.returncode != 0
    (line,) = [line for line in forced.stderr.splitlines() if line.startswith("error:")]
    assert "DOCKER_BUILDKIT=0 turns off BuildKit" in line and "unset DOCKER_BUILDKIT" in line
    no_plugin = tmp_path / "docker-config"  # a Docker 26 client without the buildx plugin
    no_plugin.mkdir()
    missing = docker_make(docker26, project, "docker", env={"DOCKER_CONFIG": str(no_plugin)}, check=False)
    assert missing.returncode != 0
    assert "builds with BuildKit through the buildx plugin, which is not installed: install docker-buildx-plugin" \
        in missing.stderr  # fmt: skip
    assert docker26.docker("images", "--quiet", "--all").stdout.split() == before, "something was built"
    assert "docker: " not in forced.stdout + missing.stdout


# ---- reproducible images whose model layers travel ---------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    found, process = start_registry(tmp_path_factory.mktemp("registry"), "ci", PASSWORD)
    yield found
    process.terminate()
    process.wait(timeout=30)


def uploaded(registry: Registry, since: int) -> list[str]:
    """The digests of the blobs uploaded since the mark (each upload ends with PUT …?digest=sha256:…)."""
    return [r.uri.split("digest=")[1].split("&")[0].replace("%3A", ":") for r in registry.requests(since)
            if r.method == "PUT" and "/blobs/uploads/" in r.uri and "digest=" in r.uri]  # fmt: skip


def env_file(project: Path, registry: Registry, daemon: Daemon | None = None, token: bool = True) -> None:
    """.env with the registry's login, a package-index token (token), and (daemon) the engine's own settings."""
    lines = [f"REGISTRY_USERNAME={registry.username}", f"REGISTRY_PASSWORD={PASSWORD}"]
    lines += [f"PIP_EXTRA_INDEX_URL=https://ci:{TOKEN}@pypi.example.invalid/simple"] if token else []
    if daemon is not None:
        lines += [f"DOCKER_HOST=unix://{daemon.socket}", f"DOCKER_CONFIG={daemon.config_dir}"]
    (project / ".env").write_text("".join(f"{line}\n" for line in lines))


def without_engine_settings(daemon: Daemon) -> dict[str, str]:
    """The shell's environment with the daemon's client on PATH, but no DOCKER_HOST or DOCKER_CONFIG: .env has them."""
    shell = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONFIG")}
    return {**shell, "PATH": daemon.env()["PATH"], "CONTAINER_ENGINE": "docker"}


@pytest.mark.parametrize("store", ["classic", "containerd"])
def test_the_same_image_anywhere_and_a_bump_sends_no_model_byte(
    store: str, request: pytest.FixtureRequest, registry: Registry, thin_project: Path, tmp_path: Path
) -> None:
    """On one daemon: make docker and make push, with the engine's settings in .env only (classic). On a fresh
    daemon (another machine): the clone's --no-cache build is the same image (containerd: the same config digest);
    after a dependency bump the model layer keeps its diff ID, and make push sends no model byte (classic: after a
    docker pull, the README's way around moby#13883). docker-verify's comparison on the containerd store is
    test_a_failed_verify's; on image IDs, test_image_layers' (podman)."""
    first = request.getfixturevalue("docker26" if store == "classic" else "docker26_containerd")
    target = f"{registry.address}/nlp/{store}:{uuid.uuid4().hex[:8]}"
    env_file(thin_project, registry, first if store == "classic" else None)
    shell = without_engine_settings(first) if store == "classic" else {**os.environ, **first.env()}
    settings = [f"BASE_IMAGE={BASE}", f"IMAGE={target}"]
    verified = make(thin_project, "docker", *settings, env=shell)
    image = identity(first, target)
    assert "--provenance=false --sbom=false" in verified.stdout
    pushed = make(thin_project, "push", *settings, env=shell)
    assert PASSWORD not in pushed.output and TOKEN not in pushed.output + verified.output
    for shown in (
        first.docker("history", "--no-trunc", target).stdout,
        first.docker("image", "inspect", target).stdout,
    ):
        assert TOKEN not in shown
    assert store == "containerd" or not [
        name for name, data in files_in(first, target).items() if TOKEN.encode() in data
    ], "the token is in a layer"  # the layers are the same on either store
    below = base_layers(first)
    model_layer = diff_ids(first, target)[below]
    repository, tag = target.split("/", 1)[1].split(":")
    model_blob = registry.manifest(repository, tag)["layers"][below]

    clone = clone_with_build(thin_project, tmp_path / "elsewhere" / "clone")
    env_file(clone, registry, token=False)  # the bump relocks: no index that cannot be reached
    with fresh_daemon(store) as other:
        if store == "classic":  # the way around: the daemon learns the registry's layers from a pull, first
            login = tmp_path / "login"
            login.mkdir()
            env = {**other.env(), "DOCKER_CONFIG": str(login)}
            subprocess.run([str(other.bin_dir / "docker"), "login", "--username", registry.username,
                            "--password-stdin", registry.address], input=PASSWORD, env=env, check=True,
                           capture_output=True, text=True)  # fmt: skip
            subprocess.run([str(other.bin_dir / "docker"), "pull", target], env=env, check=True, capture_output=True)
        docker_make(other, clone, "docker", "DOCKER_BUILD_ARGS=--no-cache", image=target)  # no cache there, either
        assert identity(other, target) == image, "a clone built --no-cache on another daemon is another image"
        requirements = clone / "requirements.in"
        requirements.write_text(requirements.read_text() + BUMP + "\n")
        mark = registry.mark()
        docker_make(other, clone, "push", image=target, env=FAST)
        assert diff_ids(other, target)[below] == model_layer, "the bump (no cache) changed the model layer"
    sent = uploaded(registry, mark)
    after = registry.manifest(repository, tag)
    assert after["layers"][below]["digest"] == model_blob["digest"] and sent, "the bump's own layers were sent"
    assert model_blob["digest"] not in sent, "the model layer was sent again"
    print(
        f"{store}: after a bump, a fresh daemon uploaded {len(sent)} blobs; model layer ({model_blob['size']} B) "
        "not sent"
    )


def test_a_failed_verify_leaves_no_image_and_retags_nothing(docker26_containerd: Daemon, thin_project: Path) -> None:
    """On the containerd store, where images are told apart by their config digest (their IDs are manifests').
    After the flow above on the same daemon: make docker finds its layers, only the --no-cache rebuild is built."""
    daemon = docker26_containerd
    image = f"localhost/verify-{uuid.uuid4().hex[:8]}:1"
    docker_make(daemon, thin_project, "docker", image=image)
    before = daemon.docker("images", "--all", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    with (thin_project / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("RUN date +%s%N > /tmp/built-at\n")
    varies = docker_make(daemon, thin_project, "docker-verify", image=image, check=False)
    assert varies.returncode != 0 and "Traceback" not in varies.output
    (line,) = [line for line in varies.stderr.splitlines() if line.startswith("error:")]
    assert f"a --no-cache rebuild of {image} is another image: layer " in line
    assert "(date +%s%N > /tmp/built-at" in line and re.search(r"\): \S+: (time|content sha256) ", line)
    after = daemon.docker("images", "--all", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert "-verify" not in after
    models = {line for line in before.splitlines() if line.startswith("localhost/spacy-models:")}
    assert models <= set(after.splitlines()), "a model layer's tag now names another image"


# ---- Docker 20.10 ------------------------------------------------------------------------------------------------


def test_docker_20_10_builds_with_buildkit_and_says_it_cannot_be_reproducible(thin_project: Path) -> None:
    """On the thin project: the model layer's files reach the app's venv through its .pth (a spaCy model loading
    from that layer is test_docker's, on podman, and the plain build's, on Docker 26)."""
    daemon = daemon_or_skip("20.10")
    try:
        image = f"localhost/old-{uuid.uuid4().hex[:8]}:1"
        built = docker_make(daemon, thin_project, "docker", image=image, env=FAST)
        assert "Docker Engine 20.10 cannot build reproducible images" in built.stdout
        assert "Docker Engine 24 or newer, or podman, give the same image every time" in built.stdout
        assert "COPY in /opt/spacy-models/en_thin_model-1.0.0/ (a model layer)" in built.stdout
        code = "import en_thin_model; print(en_thin_model.__file__)"
        out = daemon.docker("run", "--rm", "--network=none", "--entrypoint", "python", image, "-c", code).stdout
        assert out.strip() == "/opt/spacy-models/en_thin_model-1.0.0/en_thin_model/__init__.py"
        verify = docker_make(daemon, thin_project, "docker-verify", image=image, env=FAST, check=False)
        assert verify.returncode != 0
        assert "Docker Engine 20.10 cannot build the same image twice" in verify.stderr
        assert "use Docker Engine 24 or newer, or podman" in verify.stderr
    finally:
        daemon.stop()

"""Real Docker Engine daemons for the tests, side by side with podman on one machine.

Most users build the generated project's image with Docker Engine, not podman, and
Docker differs where it matters: its default builder (BuildKit through buildx since
Docker 23, the legacy builder before), which image store it keeps (the classic one or
containerd's, the default on fresh Docker 29 installs), and what each client accepts.
So the product is tested on the Docker versions users have, each a daemon of its own:

- "20.10": Debian 12's own docker.io (/usr/sbin/dockerd, client /usr/bin/docker,
  containerd and runc from bookworm). BuildKit only with DOCKER_BUILDKIT=1.
- "26.1": Debian 13's docker.io, containerd, docker-cli and docker-buildx 26.1.5,
  fetched with `apt-get download` under an apt configuration of this module's own (the
  machine's apt state is never touched), unpacked with `dpkg -x` and cached under
  CACHE_DIR. Bookworm's runc stays in use: trixie's needs glibc 2.38, bookworm has 2.36.
  Store "classic" or "containerd" (the containerd image store).

Each daemon has a short directory of its own under /tmp (a unix socket path holds at
most ~107 bytes) with its data-root, exec-root (where its managed containerd keeps its
socket and state, so two daemons never share containerd state), socket, log, a `bin`
directory whose `docker` is this daemon's own client (the product runs plain `docker`,
so the tests put it first on PATH; /usr/local/bin/docker, a 28.2 client, is never used)
and a DOCKER_CONFIG directory (with the buildx plugin for 26.1; ~/.docker is not used).
There is no bridge networking here: containers and builds need `--network=none`.

The Debian mirror comes from the machine's apt sources at run time (containers.debian_mirror).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.containers import BASE_IMAGE, base_image_archive, debian_mirror
from tests.support.wheels import CACHE_DIR, cache_lock

DOCKER26_VERSION = "26.1.5"
DOCKER26_SUITE = "trixie"
DOCKER26_PACKAGES = ("docker.io", "containerd", "docker-buildx", "docker-cli")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
SYSTEM_DOCKERD = Path("/usr/sbin/dockerd")  # bookworm's docker.io 20.10
SYSTEM_CLIENT = Path("/usr/bin/docker")  # its client; /usr/local/bin/docker (28.2) comes first on PATH
VERSIONS = ("20.10", "26.1")
STORES = ("classic", "containerd")
START_TIMEOUT = 60.0  # seconds until `docker info` must answer
STOP_TIMEOUT = 30.0  # seconds dockerd gets after SIGTERM (it stops containers and its containerd first)
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes with the NUL; leave room
# Variables of the caller's environment that would point a client at some other daemon.
FOREIGN_CLIENT_VARIABLES = ("DOCKER_CONTEXT", "DOCKER_TLS", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


class DockerError(subprocess.CalledProcessError):
    """A docker command that failed; unlike CalledProcessError, its message shows what the command printed."""

    def __str__(self) -> str:
        parts = (self.stdout, self.stderr)
        printed = "\n".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
        return super().__str__() + (f"\n{printed[-4000:]}" if printed else "")


@dataclass
class Daemon:
    """A running dockerd with its own directory, socket, client and client configuration.

    root holds everything: data/ (data-root), exec/ (exec-root, with the managed containerd's socket and
    state in exec/containerd/), docker.sock, docker.pid, daemon.json, dockerd.log, bin/docker (a symlink to
    this version's client) and config/ (DOCKER_CONFIG; config/cli-plugins/docker-buildx for 26.1).
    """

    version: str  # "20.10" or "26.1"
    store: str  # "classic" or "containerd"
    socket: Path
    bin_dir: Path  # put FIRST on PATH: its `docker` is this daemon's own client (a symlink)
    config_dir: Path  # DOCKER_CONFIG for this daemon's client
    root: Path  # the daemon's directory, /tmp/dkXXXXXXXX
    log: Path  # dockerd's (and its managed containerd's) output
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    stopped: bool = field(default=False, repr=False, compare=False)

    def env(self) -> dict[str, str]:
        """Variables that point `docker` at this daemon: merge them over os.environ.

        {"DOCKER_HOST": "unix:///tmp/dk…/docker.sock", "DOCKER_CONFIG": "/tmp/dk…/config",
        "PATH": "/tmp/dk…/bin:<os.environ's PATH>", "CONTAINER_ENGINE": "docker"}. DOCKER_BUILDKIT is not
        set: on 20.10 BuildKit is whatever the caller asks for (the legacy builder by default).
        """
        return {
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.config_dir),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "CONTAINER_ENGINE": "docker",
        }

    def docker(
        self,
        *args: str,
        check: bool = True,
        capture: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run this daemon's client: `docker ARGS` with os.environ + env() + `env` (e.g. {"DOCKER_BUILDKIT": "1"}).

        With capture, stdout and stderr are returned as text. Raises DockerError (a CalledProcessError that
        shows the output) when check is set and the command fails, TimeoutExpired after `timeout` seconds.
        """
        full_env = {k: v for k, v in os.environ.items() if k not in FOREIGN_CLIENT_VARIABLES}
        full_env.update(self.env())
        full_env.update(env or {})
        command = [str(self.bin_dir / "docker"), *args]
        result = subprocess.run(command, env=full_env, capture_output=capture, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise DockerError(result.returncode, command, result.stdout, result.stderr)
        return result

    def stop(self) -> None:
        """Stop the daemon and remove its directory; safe to call twice (it is also registered with atexit).

        SIGKILL to every process in the daemon's cgroups (its containers and BuildKit RUN steps: a container
        outlives its shim); SIGTERM to dockerd (which stops its managed containerd), SIGKILL after STOP_TIMEOUT;
        then SIGTERM/SIGKILL to any process still naming this daemon's directory (containerd, shims); unmount
        everything mounted under it (the data-root's own mount, overlays, network namespaces, …), delete it
        and its cgroups. Raises RuntimeError if something under it stays mounted, OSError if it cannot be removed.
        """
        if self.stopped:
            return
        self.stopped = True
        atexit.unregister(self.stop)
        cgroups = cgroup_dirs(self.root.name)
        _end_processes(_cgroup_processes(cgroups), signals=(signal.SIGKILL,))
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _end_processes(processes_naming(self.root))
        _end_processes(_cgroup_processes(cgroups), signals=(signal.SIGKILL,))
        _unmount_under(self.root)
        shutil.rmtree(self.root)
        for cgroup in cgroups:
            for directory, _, _ in sorted(os.walk(cgroup), key=lambda entry: -len(entry[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of dockerd.log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def _wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Return once `docker info` answers with this daemon's version; RuntimeError if it exits or times out."""
        deadline = time.monotonic() + timeout
        answer = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"dockerd {self.version} ({self.store}) exited with {self.process.returncode} while starting;"
                    f" {self.log}:\n{self.log_tail()}"
                )
            if self.socket.exists():
                answer = self.docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
                served = answer.stdout.strip()
                if answer.returncode == 0 and served:  # a 26.1 client answers 0 and nothing while dockerd dies
                    if not served.startswith(self.version + "."):
                        raise RuntimeError(f"{self.socket} serves Docker {served}, not {self.version}")
                    return
            time.sleep(0.25)
        said = f"; last `docker info`: {answer.stderr.strip()}" if answer is not None else ""
        raise RuntimeError(
            f"dockerd {self.version} ({self.store}) did not answer within {timeout:.0f} s{said};"
            f" {self.log}:\n{self.log_tail()}"
        )


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """subprocess.run, captured; RuntimeError naming the command and its output's tail when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed with exit code {result.returncode}:\n{output}")
    return result


def _apt_download(work: Path, suite: str, packages: Sequence[str]) -> list[Path]:
    """Download `packages` (no dependencies) from Debian `suite` into work/debs with an apt of their own.

    Every apt path points under `work` (sources, lists, cache, status, preferences), so /etc/apt's
    sources and pins, /var/lib/apt and /var/cache/apt are neither read nor written; apt.conf settings
    such as a proxy still apply. Returns the .deb files; RuntimeError if apt fails or a package is missing.
    """
    sources = work / "sources.list"
    sources.write_text(f"deb [signed-by={KEYRING}] {debian_mirror()} {suite} main\n")
    for directory in ("lists/partial", "cache/archives/partial", "state", "debs"):
        (work / directory).mkdir(parents=True, exist_ok=True)
    (work / "status").touch()
    options = {
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": "/dev/null",
        "Dir::Etc::Preferences": "/dev/null",
        "Dir::Etc::PreferencesParts": "/dev/null",
        "Dir::State": work / "state",
        "Dir::State::Lists": work / "lists",
        "Dir::State::status": work / "status",
        "Dir::Cache": work / "cache",
        "APT::Sandbox::User": "root",  # the work directory is private to root; _apt could not write there
    }
    apt = ["apt-get", "-q"] + [f"-o{key}={value}" for key, value in options.items()]
    _run([*apt, "update"])
    _run([*apt, "download", *packages], cwd=work / "debs")
    debs = sorted((work / "debs").glob("*.deb"))
    if len(debs) != len(packages):
        raise RuntimeError(f"apt-get download {' '.join(packages)} gave {[deb.name for deb in debs]}")
    return debs


def docker26_folder() -> Path:
    """CACHE_DIR/docker-26.1.5: trixie's docker.io, containerd, docker-cli and docker-buildx, unpacked.

    Holds usr/sbin/dockerd, usr/bin/docker, usr/bin/containerd, usr/bin/containerd-shim-runc-v2 and
    usr/libexec/docker/cli-plugins/docker-buildx, and no runc (bookworm's is used). Downloaded and unpacked
    once (~75 MB of .debs, ~300 MB unpacked) into a temporary directory next to it, then renamed into place,
    so an interrupted run leaves nothing half done. RuntimeError if apt fails or trixie's dockerd is not 26.1.5.
    """
    folder = CACHE_DIR / f"docker-{DOCKER26_VERSION}"
    if (folder / "usr/sbin/dockerd").exists():
        return folder
    with cache_lock("docker26"):  # a worker waits for the download the run's prefetch (tests/support/prefetch.py) began
        return folder if (folder / "usr/sbin/dockerd").exists() else _download_docker26(folder)


def _download_docker26(folder: Path) -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=CACHE_DIR))
    try:
        unpacked = work / "root"
        for deb in _apt_download(work, DOCKER26_SUITE, DOCKER26_PACKAGES):
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
        for runc in unpacked.glob("usr/*bin/runc*"):  # needs glibc 2.38; none of these packages ships it today
            runc.unlink()
        shutil.rmtree(unpacked / "usr/share/doc", ignore_errors=True)
        shutil.rmtree(unpacked / "usr/share/man", ignore_errors=True)
        said = _run([str(unpacked / "usr/sbin/dockerd"), "--version"]).stdout
        if f"version {DOCKER26_VERSION}" not in said:
            raise RuntimeError(f"Debian {DOCKER26_SUITE}'s docker.io is no longer {DOCKER26_VERSION}: {said.strip()}")
        try:
            unpacked.rename(folder)
        except OSError:
            if not (folder / "usr/sbin/dockerd").exists():  # not another run having won the race
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


@functools.cache
def _dockerd_flags(dockerd: Path) -> str:
    """`dockerd --help`, to pass only the flags this version knows."""
    return _run([str(dockerd), "--help"]).stdout


def start_daemon(version: str, store: str = "classic", insecure_registries: Iterable[str] = ()) -> Daemon:
    """Start a dockerd of `version` ("20.10" or "26.1") with image `store` ("classic" or "containerd", 26.1 only).

    `insecure_registries` ("127.0.0.1:PORT", …) go into daemon.json for plain-HTTP registry tests. Returns
    once `docker info` answers (a few seconds); the daemon is stopped at interpreter exit if the caller does
    not stop it first. ValueError for an unknown version or store; RuntimeError (with the log's tail) if
    dockerd exits or does not answer within START_TIMEOUT.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, not {version!r}")
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES}, not {store!r}")
    if store == "containerd" and version == "20.10":
        raise ValueError("Docker 20.10 has no containerd image store")
    if version == "20.10":
        dockerd, client, own_path, buildx = SYSTEM_DOCKERD, SYSTEM_CLIENT, [], None
    else:
        folder = docker26_folder()
        dockerd, client = folder / "usr/sbin/dockerd", folder / "usr/bin/docker"
        own_path = [folder / "usr/bin", folder / "usr/sbin"]  # its containerd and shim; runc stays bookworm's
        buildx = folder / "usr/libexec/docker/cli-plugins/docker-buildx"

    root = Path(tempfile.mkdtemp(prefix="dk", dir="/tmp"))
    daemon = Daemon(version, store, root / "docker.sock", root / "bin", root / "config", root, root / "dockerd.log")
    atexit.register(daemon.stop)
    try:
        _launch(daemon, dockerd, client, own_path, buildx, list(insecure_registries))
        daemon._wait_ready()
    except BaseException:
        daemon.stop()
        raise
    return daemon


def _launch(
    daemon: Daemon, dockerd: Path, client: Path, own_path: list[Path], buildx: Path | None, insecure: list[str]
) -> None:
    """Lay out the daemon's directory (bin/docker, config/cli-plugins, daemon.json) and start dockerd in it."""
    root = daemon.root
    root.chmod(0o711)
    if len(str(daemon.socket)) > MAX_SOCKET_PATH:
        raise RuntimeError(f"socket path too long for a unix socket: {daemon.socket}")
    daemon.bin_dir.mkdir()
    (daemon.bin_dir / "docker").symlink_to(client)
    (daemon.config_dir / "cli-plugins").mkdir(parents=True)
    if buildx is not None:
        (daemon.config_dir / "cli-plugins/docker-buildx").symlink_to(buildx)
    config: dict[str, object] = {}
    if daemon.store == "containerd":
        config["features"] = {"containerd-snapshotter": True}
    if insecure:
        config["insecure-registries"] = insecure
    (root / "daemon.json").write_text(json.dumps(config, indent=2) + "\n")

    command = [
        str(dockerd),
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",  # its managed containerd's socket and state go to exec/containerd/
        f"--host=unix://{daemon.socket}",
        f"--pidfile={root / 'docker.pid'}",
        f"--config-file={root / 'daemon.json'}",
        "--bridge=none",  # no bridge networking on these machines
        "--iptables=false",
        "--ip-forward=false",  # leave the machine's sysctls alone
        "--userland-proxy=false",
        f"--cgroup-parent=/{root.name}",  # its containers' cgroups, apart from other daemons': stop() empties them
    ]
    if "--ip6tables" in _dockerd_flags(dockerd):
        command.append("--ip6tables=false")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["PATH"] = os.pathsep.join([*map(str, own_path), env.get("PATH", os.defpath)])
    with daemon.log.open("wb") as output:
        # A session of its own: a Ctrl-C meant for pytest does not kill dockerd before stop() cleans up.
        daemon.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def import_base_image(daemon: Daemon) -> str:
    """`docker load` the cached debootstrap base image as localhost/nlp-base:bookworm; returns that name.

    The archive is containers.base_image_archive()'s (a fixed config: the same image on every daemon, as a
    base pulled by digest is; debootstrapped once if missing, ~1-2 min). Does nothing if the daemon already
    has the image. Raises DockerError if the load fails.
    """
    if daemon.docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        daemon.docker("load", "--input", str(base_image_archive()))
    return BASE_IMAGE


def _unescape_mountinfo(path: str) -> str:
    """/proc/self/mountinfo writes space, tab, newline and backslash in a path as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), path)


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or under `directory`, in /proc/self/mountinfo's order (each after what it sits on)."""
    prefix = str(directory).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape_mountinfo(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def _unmount_under(directory: Path) -> None:
    """Unmount everything under `directory`, the latest mount first; RuntimeError if something stays."""
    for _ in range(3):
        points = mounts_under(directory)
        if not points:
            return
        for point in reversed(points):
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "--lazy", point], capture_output=True)
    if points := mounts_under(directory):
        raise RuntimeError(f"still mounted under {directory}: {points}")


def processes_naming(directory: Path) -> list[int]:
    """Process ids (not this one) whose command line names a path under `directory`: dockerd, its containerd, shims."""
    needle = str(directory).rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, waiting for init to reap it, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _end_processes(pids: Iterable[int], signals: Iterable[int] = (signal.SIGTERM, signal.SIGKILL)) -> None:
    """Send each pid the first of `signals`, then the next to those still running after 10 s, and so on."""
    pids = list(pids)
    for sig in signals:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while (pids := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not pids:
            return


def cgroup_dirs(name: str) -> list[Path]:
    """The cgroup directories named `name` at the top of each hierarchy: /sys/fs/cgroup/<name> (cgroup v2)
    and /sys/fs/cgroup/<controller>/<name> (v1). dockerd runs with --cgroup-parent=/<name>, so its containers'
    and BuildKit's cgroups all sit under these."""
    base = Path("/sys/fs/cgroup")
    hierarchies = [base, *(entry for entry in base.iterdir() if entry.is_dir() and not entry.is_symlink())]
    return [hierarchy / name for hierarchy in hierarchies if (hierarchy / name).is_dir()]


def _cgroup_processes(cgroups: Iterable[Path]) -> set[int]:
    """Pids in the cgroups and their descendants."""
    pids = set()
    for cgroup in cgroups:
        for procs in cgroup.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids

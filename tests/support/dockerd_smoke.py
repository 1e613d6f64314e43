"""Smoke check of tests/support/dockerd.py: three Docker Engine daemons at once, each building and running.

Run as `.venv/bin/python -m tests.support.dockerd_smoke` (root; not a pytest file). Starts Docker 20.10
(classic store), 26.1 (classic) and 26.1 (containerd image store) side by side; in each imports the base
image, builds a Dockerfile whose RUN step bind-mounts the context (BuildKit: DOCKER_BUILDKIT=1 on 20.10,
buildx's default builder on 26.1), runs the image with --network=none, and checks that on 26.1 `docker buildx`
works and `docker build` does not fall back to the legacy builder. Then stops them and checks that nothing
of theirs is left mounted or running. Exits non-zero with a message at the first failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.containers import base_rootfs_tarball
from tests.support.dockerd import (
    Daemon,
    cgroup_dirs,
    docker26_folder,
    import_base_image,
    mounts_under,
    processes_naming,
    start_daemon,
)

DOCKERFILE = """\
FROM localhost/nlp-base:bookworm
RUN --mount=type=bind,source=.,target=/ctx ls /ctx > /listing
"""
IMAGE = "localhost/dockerd-smoke:latest"
LEGACY_WARNING = "legacy builder is deprecated"
ENGINE_NAMES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def engine_processes() -> set[int]:
    """Pids of every dockerd, containerd and shim on the machine, whoever started them."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in ENGINE_NAMES:
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def exercise(daemon: Daemon, context: Path) -> None:
    """Import the base image, build and run on `daemon`; print what each step answered."""
    label = f"{daemon.version}/{daemon.store}"
    info = daemon.docker("info", "--format", "{{.ServerVersion}} driver={{.Driver}} {{.DriverStatus}}").stdout
    print(f"[{label}] info: {info.strip()}")
    found = subprocess.run(
        ["sh", "-c", "command -v docker && docker version --format '{{.Client.Version}} -> {{.Server.Version}}'"],
        env={**os.environ, **daemon.env()}, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    print(f"[{label}] plain `docker` on env()'s PATH: {' '.join(found)}")
    check(found[0] == str(daemon.bin_dir / "docker"), f"PATH finds {found[0]}, not the daemon's own client")
    check(found[1].startswith(daemon.version + "."), f"client {found[1]} is not {daemon.version}")
    own_containerd = daemon.root / "exec/containerd/containerd.sock"
    check(own_containerd.is_socket(), f"no managed containerd socket at {own_containerd}")

    started = time.monotonic()
    print(f"[{label}] import: {import_base_image(daemon)} ({time.monotonic() - started:.1f} s)")

    extra = {"DOCKER_BUILDKIT": "1"} if daemon.version == "20.10" else {}
    if daemon.version != "20.10":
        print(f"[{label}] buildx: {daemon.docker('buildx', 'version').stdout.strip()}")
    started = time.monotonic()
    built = daemon.docker("build", "--network=none", "-t", IMAGE, str(context), env=extra)
    output = built.stdout + built.stderr
    print(f"[{label}] build: {time.monotonic() - started:.1f} s; first line: {output.strip().splitlines()[0]}")
    check(LEGACY_WARNING not in output, f"{label}: docker build used the legacy builder:\n{output}")
    if daemon.version != "20.10":
        check("using docker driver" in output, f"{label}: docker build did not go through buildx:\n{output}")
    listing = daemon.docker("run", "--rm", "--network=none", IMAGE, "cat", "/listing").stdout.split()
    print(f"[{label}] run: /listing = {listing}")
    check(listing == ["Dockerfile", "hello.txt"], f"{label}: unexpected listing {listing}")


def main() -> int:
    started = time.monotonic()
    folder = docker26_folder()
    print(f"docker26_folder: {folder} ({time.monotonic() - started:.1f} s)")
    started = time.monotonic()
    print(f"base tarball: {base_rootfs_tarball()} ({time.monotonic() - started:.1f} s)")
    before = engine_processes()
    mounts_before = set(mounts_under(Path("/")))

    daemons: list[Daemon] = []
    try:
        for version, store in (("20.10", "classic"), ("26.1", "classic"), ("26.1", "containerd")):
            started = time.monotonic()
            daemons.append(start_daemon(version, store))
            print(f"started {version}/{store} at {daemons[-1].socket} in {time.monotonic() - started:.1f} s")
        theirs = engine_processes() - before
        print(f"all three running: {len(theirs)} dockerd/containerd processes of theirs")
        check(len(theirs) == 6, "expected a dockerd and a managed containerd for each daemon")
        with tempfile.TemporaryDirectory() as work:
            context = Path(work)
            (context / "Dockerfile").write_text(DOCKERFILE)
            (context / "hello.txt").write_text("hello\n")
            for daemon in daemons:
                exercise(daemon, context)
    finally:
        for daemon in daemons:
            started = time.monotonic()
            daemon.stop()
            print(f"stopped {daemon.version}/{daemon.store} in {time.monotonic() - started:.1f} s")

    for daemon in daemons:
        check(not daemon.root.exists(), f"{daemon.root} is still there")
        check(not mounts_under(daemon.root), f"still mounted: {mounts_under(daemon.root)}")
        check(not processes_naming(daemon.root), f"still running: {processes_naming(daemon.root)}")
        check(not cgroup_dirs(daemon.root.name), f"cgroups left: {cgroup_dirs(daemon.root.name)}")
    left = engine_processes() - before
    check(not left, f"dockerd/containerd processes left: {sorted(left)}")
    new_mounts = sorted(set(mounts_under(Path("/"))) - mounts_before)
    check(not new_mounts, f"mounts left: {new_mounts}")
    print("after stop: no directory, mount, process or cgroup of the three daemons is left")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

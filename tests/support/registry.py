"""A real container registry on loopback: Debian's docker-registry (distribution 2.8) with TLS and htpasswd.

Its certificate comes from a private CA made by trustme; the engine is told the
CA through a certs directory (podman --cert-dir, make push's REGISTRY_CERT_DIR).
Its log names every request with its answer, so a test can count what a push
uploaded: `HEAD /v2/<repo>/blobs/<digest>` answered 200 is a layer it already
held, `PUT /v2/<repo>/blobs/uploads/…?digest=<digest>` an upload.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import trustme

MANIFESTS = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Request:
    method: str
    uri: str
    status: int


@dataclass
class Registry:
    address: str  # 127.0.0.1:PORT
    certs: Path  # a directory holding the CA as ca.crt
    log: Path
    username: str
    password: str

    def requests(self, since: int = 0) -> list[Request]:
        """Every request the registry answered, from the log's byte offset `since`."""
        found = []
        with self.log.open("rb") as handle:
            handle.seek(since)
            for line in handle.read().decode(errors="replace").splitlines():
                if "response completed" not in line:
                    continue
                fields = dict(re.findall(r'(http\.[a-z.]+)=("[^"]*"|\S+)', line))
                found.append(
                    Request(
                        fields["http.request.method"].strip('"'),
                        fields["http.request.uri"].strip('"'),
                        int(fields["http.response.status"]),
                    )
                )
        return found

    def mark(self) -> int:
        return self.log.stat().st_size

    def manifest(self, repository: str, tag: str) -> dict:
        response = requests.get(
            f"https://{self.address}/v2/{repository}/manifests/{tag}",
            auth=(self.username, self.password),
            headers={"Accept": MANIFESTS},
            verify=str(self.certs / "ca.crt"),
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


def start_registry(work: Path, username: str, password: str) -> tuple[Registry, subprocess.Popen]:
    """docker-registry serving on a free port of 127.0.0.1, TLS from a private CA, htpasswd (bcrypt) auth."""
    work.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    certs = work / "certs"
    certs.mkdir()
    ca.cert_pem.write_to_path(str(certs / "ca.crt"))
    server.cert_chain_pems[0].write_to_path(str(work / "server.crt"))
    server.private_key_pem.write_to_path(str(work / "server.key"))
    htpasswd = subprocess.run(
        ["htpasswd", "-niBC", "4", username], input=password, capture_output=True, text=True, check=True
    )
    (work / "htpasswd").write_text(htpasswd.stdout.strip() + "\n")
    port = free_port()
    (work / "config.yml").write_text(
        f"""version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {work / "storage"}
http:
  addr: 127.0.0.1:{port}
  tls:
    certificate: {work / "server.crt"}
    key: {work / "server.key"}
auth:
  htpasswd:
    realm: test-registry
    path: {work / "htpasswd"}
"""
    )
    log = work / "registry.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(work / "config.yml")], stdout=output, stderr=subprocess.STDOUT
        )
    registry = Registry(f"127.0.0.1:{port}", certs, log, username, password)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status = requests.get(f"https://{registry.address}/v2/", verify=str(certs / "ca.crt"), timeout=2)
            if status.status_code == 401:
                return registry, process
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()}")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"docker-registry did not answer on {registry.address}: {log.read_text()}")

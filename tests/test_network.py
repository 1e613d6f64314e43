"""The network as pip sees it: ~/.netrc, a real proxy (tinyproxy), a private CA (trustme), through `make models`.

The helper's HTTP is requests' with the environment trusted, so what works for
pip works for the model downloads: these tests drive the generated Makefile
against loopback servers, a real proxy process and real TLS.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.conftest import FAST
from tests.support.mirror import Mirror, MirrorServer, hostile_servers
from tests.support.project import make

MODEL = "en_core_web_md-3.8.0-py3-none-any.whl"
USER, PASSWORD = "team", "s3cret-pass"
# This machine's own CA settings would hide what a test gives (or takes away).
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@pytest.fixture
def private(wheels: dict) -> Iterator[Mirror]:
    """Loopback servers whose /private/ files want HTTP basic auth (a company's model host)."""
    with hostile_servers() as served:
        served.private_files[MODEL] = wheels["md-3.8.0"]
        served.private_credentials = (USER, PASSWORD)
        yield served


def use_model(project: Path, line: str) -> None:
    (project / "requirements-model.in.url").write_text(line + "\n")


def models(project: Path, cache: dict, **env: str) -> subprocess.CompletedProcess:
    """make models with a fresh model cache (so the download happens) and the given environment."""
    return make(project, "models", env={**FAST, **cache, **env}, check=False)


def fetched(project: Path) -> bool:
    return (project / "build" / MODEL).is_file()


# ---- ~/.netrc and the other ways to give credentials


def test_a_401_names_the_host_and_the_three_ways_to_give_credentials(
    project: Path, private: Mirror, fresh_cache: dict
) -> None:
    use_model(project, f"{private.url}/private/{MODEL}")
    result = models(project, fresh_cache, NETRC=str(project / "no-netrc"))
    host = private.url.split("//", 1)[1]
    assert result.returncode != 0 and "Traceback" not in result.output
    assert f"HTTP 401 from {host}: it wants credentials" in result.stderr
    ways = [
        "`machine 127.0.0.1 login USER password TOKEN` in ~/.netrc",
        f"SPACY_MODELS_URL with them (http://, then USER:TOKEN@{host}/…)",
        "a line relative to that SPACY_MODELS_URL",
    ]
    assert all(way in result.stderr for way in ways), result.stderr
    assert not fetched(project)


@pytest.mark.parametrize("where", ["NETRC", "HOME"])
def test_netrc_credentials_download_and_stay_on_their_host(
    project: Path, private: Mirror, fresh_cache: dict, tmp_path: Path, where: str
) -> None:
    """~/.netrc (HOME) or the file NETRC names: the first way, followed, works; a redirect to another host gets none."""
    netrc = tmp_path / "home" / ".netrc"
    netrc.parent.mkdir()
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    cdn = private.cdn_url.replace("127.0.0.1", "localhost")  # another host name for the same loopback server
    private.add_redirect(f"/moved/{MODEL}", f"{cdn}/private/{MODEL}")
    use_model(project, f"{private.url}/moved/{MODEL}")
    env = {"NETRC": str(netrc)} if where == "NETRC" else {"HOME": str(netrc.parent)}
    refused = models(project, fresh_cache, **env)
    assert refused.returncode != 0 and "HTTP 401 from localhost" in refused.stderr
    assert [r.authorization for r in private.requests_to(private.cdn_url)] == [None], "netrc is for 127.0.0.1 only"

    use_model(project, f"{private.url}/private/{MODEL}")
    result = models(project, fresh_cache, **env)
    assert result.returncode == 0, result.output
    assert fetched(project) and PASSWORD not in result.output


def test_credentials_in_spacy_models_url_serve_absolute_and_relative_lines(
    project: Path, private: Mirror, fresh_cache: dict
) -> None:
    """The second and third ways: SPACY_MODELS_URL's user-info in .env, for any URL of its host."""
    netloc = private.url.split("//", 1)[1]
    with (project / ".env").open("a") as env:
        env.write(f"SPACY_MODELS_URL=http://{USER}:{PASSWORD}@{netloc}/private\n")
    use_model(project, f"{private.url}/private/{MODEL}")  # absolute, no credentials on the line
    result = models(project, fresh_cache, NETRC=str(project / "no-netrc"))
    assert result.returncode == 0, result.output
    assert fetched(project) and PASSWORD not in result.output

    (project / "build" / MODEL).unlink()
    use_model(project, MODEL)  # relative to SPACY_MODELS_URL
    shutil.rmtree(fresh_cache["NLP_MODELS_CACHE"])
    result = models(project, fresh_cache, NETRC=str(project / "no-netrc"))
    assert result.returncode == 0, result.output
    assert fetched(project) and all(r.authorization for r in private.since(0) if r.path.endswith(MODEL))


# ---- a real proxy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Debian's tinyproxy on a free loopback port: (its URL, its log, where each proxied request shows)."""
    if shutil.which("tinyproxy") is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true, but tinyproxy is not installed (.ci/run installs it)")
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy); with CI=true this fails")
    directory = tmp_path / "tinyproxy"
    directory.mkdir()
    directory.chmod(0o777)  # tinyproxy started as root writes its log as nobody
    port, log = free_port(), directory / "tinyproxy.log"
    conf = directory / "tinyproxy.conf"
    conf.write_text(f'Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nLogFile "{log}"\nLogLevel Info\n')
    process = subprocess.Popen(
        ["tinyproxy", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=10)


def proxied(log: Path, path: str) -> bool:
    return log.is_file() and any(
        "GET http://127.0.0.1:" in line and path in line for line in log.read_text().splitlines()
    )


def test_model_downloads_go_through_the_proxy_unless_no_proxy_says_otherwise(
    project: Path, mirror: Mirror, fresh_cache: dict, proxy: tuple[str, Path], wheels: dict
) -> None:
    url, log = proxy
    use_model(project, mirror.add_download(wheels["md-3.8.0"]))
    result = models(project, fresh_cache, HTTP_PROXY=url, NO_PROXY="")
    assert result.returncode == 0, result.output
    assert proxied(log, f"/download/en_core_web_md-3.8.0/{MODEL}"), "the download went through the proxy"

    shutil.rmtree(fresh_cache["NLP_MODELS_CACHE"])
    (project / "build" / MODEL).unlink()
    log.write_text("")
    result = models(project, fresh_cache, HTTP_PROXY=url, NO_PROXY="127.0.0.1")
    assert result.returncode == 0, result.output
    assert fetched(project) and "/download/" not in log.read_text(), "NO_PROXY: straight to the host"


# ---- a private CA


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_mirror(ca: trustme.CA, wheels: dict) -> Iterator[Mirror]:
    """The mirror over https, its certificate signed by a CA no system trusts."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    served = Mirror()
    with MirrorServer(served, tls=context):
        served.add_download(wheels["md-3.8.0"])
        yield served


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_private_ca_is_named_when_missing_and_trusted_when_given(
    project: Path, tls_mirror: Mirror, fresh_cache: dict, ca: trustme.CA, tmp_path: Path, variable: str
) -> None:
    use_model(project, f"{tls_mirror.download_base}/en_core_web_md-3.8.0/{MODEL}")
    system_only = {name: "" for name in CA_VARIABLES}
    refused = models(project, fresh_cache, **system_only)
    assert refused.returncode != 0 and "Traceback" not in refused.output
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "cannot verify the TLS certificate of 127.0.0.1" in line and "REQUESTS_CA_BUNDLE (or SSL_CERT_FILE)" in line

    bundle = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    result = models(project, fresh_cache, **{**system_only, variable: str(bundle)})
    assert result.returncode == 0, result.output
    assert fetched(project)

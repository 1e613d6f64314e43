"""core/failures.py: a failure of the machine read from what pip 26, pip-compile 7.6 and uv 0.13 print themselves.

The texts are produced for real where a loopback can produce them: a closed
port (127.0.0.1:9), a proxy on that closed port, an https server whose
certificate comes from a CA nobody trusts. pip is run with PIP_RETRIES=1 and
uv with UV_HTTP_RETRIES=0: the same lines as their defaults print, without
seconds of back-off (pip with PIP_RETRIES=0 prints no network line at all: see
test_resolve's xfail). What cannot be made here (a full disk, a name server's
answer) is a line captured from the tool.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError, run_tool
from nlp_modeltools.core.failures import machine_failure
from nlp_modeltools.core.tools import Tools

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there
TOOLS = ["pip", "pip-compile", "uv"]
LINE_FIX = "Change or remove the line(s) it names, then run make lock"


def blame_a_line(output: str) -> str:
    """What a resolver step's own explanation would say: it must never be reached for a machine's failure."""
    return "requirements.in:1 (spacy) cannot be met: No matching distribution found for spacy"


def failing_tool(tool: str, tool_environ: dict, tmp_path: Path, *, index: str | None = None,
                 find_links: str | None = None, requirement: str = "spacy",
                 **extra: str) -> tuple[str, dict[str, str]]:  # fmt: skip
    """Run pip download, pip-compile or uv pip compile for one requirement against these sources (none: no index);
    its output (it must fail) and the environment it ran in."""
    (tmp_path / "requirements.in").write_text(f"{requirement}\n")
    env = {**tool_environ, "PIP_RETRIES": "1", "UV_HTTP_RETRIES": "0", **extra}
    python = Tools.program("python")
    if tool == "pip":
        sources = ["--index-url", index] if index else ["--no-index"]
        sources += ["--find-links", find_links] if find_links else []
        command = [python, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path / "got"), *sources, requirement]
    elif tool == "pip-compile":
        env.update({"PIP_INDEX_URL": index} if index else {"PIP_NO_INDEX": "1"})
        env.update({"PIP_FIND_LINKS": find_links} if find_links else {})
        command = [python, "-m", "piptools", "compile", "--quiet", "--output-file", "out.txt", "requirements.in"]
    else:
        sources = ["--index-url", index] if index else ["--no-index"]
        sources += ["--find-links", find_links] if find_links else []
        command = [Tools.program("uv"), "pip", "compile", "--quiet", *sources, "requirements.in"]
    done = subprocess.run(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0, done.stdout
    return done.stdout, env


def assert_no_line_is_blamed(reason: str, fix: str) -> None:
    text = f"{reason}: {fix}"
    assert "requirements.in" not in text and "cannot be met" not in text and "make lock" not in text, text
    assert "run the same make command again" in fix, fix


# ---- for real


@pytest.mark.parametrize("tool", TOOLS)
def test_a_closed_port_is_an_unreachable_host(tool: str, tool_environ: dict, tmp_path: Path) -> None:
    output, env = failing_tool(tool, tool_environ, tmp_path, index=f"http://{CLOSED}/simple")
    assert "Connection refused" in output or "Failed to establish a new connection" in output, output
    found = machine_failure(output, env)
    assert found is not None, output
    reason, fix = found
    assert reason == ("cannot reach a package source" if tool == "pip-compile" else f"cannot reach {CLOSED}")
    assert "PIP_INDEX_URL" in fix and "HTTPS_PROXY" in fix and "OFFLINE=1" in fix
    assert_no_line_is_blamed(reason, fix)


@pytest.mark.parametrize("tool", TOOLS)
def test_a_proxy_that_refuses_names_the_proxy_settings(tool: str, tool_environ: dict, tmp_path: Path) -> None:
    """The index's name cannot be resolved here: only the proxy could have carried the request (no NO_PROXY)."""
    proxy = f"http://{CLOSED}"
    output, env = failing_tool(tool, tool_environ, tmp_path, index="https://pypi.invalid/simple", HTTPS_PROXY=proxy)
    assert "NO_PROXY" not in env and "no_proxy" not in env
    assert "Name or service not known" not in output, "the proxy was bypassed"
    found = machine_failure(output, env)
    assert found is not None, output
    reason, fix = found
    host = "a package source" if tool == "pip-compile" else "pypi.invalid"
    assert reason == f"the proxy {proxy} did not carry the request to {host}"
    assert fix.startswith("check HTTPS_PROXY, HTTP_PROXY and NO_PROXY")
    assert_no_line_is_blamed(reason, fix)


@pytest.mark.parametrize("tool", TOOLS)
def test_an_untrusted_certificate_names_the_ca_bundle_setting(
    tool: str, tool_environ: dict, tmp_path: Path, tls_served
) -> None:
    links = tls_served.add_page("/links.html", '<a href="spacy-3.8.7-py3-none-any.whl">spacy</a>\n')
    output, env = failing_tool(tool, tool_environ, tmp_path, find_links=links)
    assert "CERTIFICATE_VERIFY_FAILED" in output or "UnknownIssuer" in output, output
    found = machine_failure(output, env)
    assert found is not None, output
    reason, fix = found
    host = "a package source" if tool == "pip-compile" else tls_served.url.removeprefix("https://")
    assert reason == f"{host}'s TLS certificate is not trusted here"
    assert fix.startswith("set REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) in .env to a bundle holding your company's CA")
    assert_no_line_is_blamed(reason, fix)


@pytest.mark.parametrize("tool", TOOLS)
def test_the_same_certificate_is_trusted_with_the_ca_bundle(
    tool: str, tool_environ: dict, tmp_path: Path, tls_served, untrusted_ca
) -> None:
    """The control: with the CA given as pip and uv read it, the page is read, and what fails is the resolution."""
    links = tls_served.add_page("/links.html", "<p>no files</p>\n")
    bundle = {"PIP_CERT": str(untrusted_ca.pem), "SSL_CERT_FILE": str(untrusted_ca.pem)}
    output, env = failing_tool(tool, tool_environ, tmp_path, find_links=links, **bundle)
    assert [r.path for r in tls_served.since()] == ["/links.html"], output
    assert machine_failure(output, env) is None, output


@pytest.mark.parametrize("tool", TOOLS)
def test_a_resolver_conflict_is_no_failure_of_the_machine_even_with_a_proxy_set(
    tool: str, tool_environ: dict, tmp_path: Path, make_wheel
) -> None:
    """A proxy in the environment (unused: no index is asked) does not make a conflict the proxy's failure."""
    for version in ("3.8.5", "3.8.7"):
        make_wheel(tmp_path / "wheels", "spacy", version, requires=())
    output, env = failing_tool(tool, tool_environ, tmp_path, find_links=str(tmp_path / "wheels"),
                               requirement="spacy>=4", HTTPS_PROXY=f"http://{CLOSED}")  # fmt: skip
    assert "spacy>=4" in output, output
    assert machine_failure(output, env) is None, output
    assert machine_failure(output, {}) is None


# ---- through run_tool: the machine's reason and fix, never the step's


def test_run_tool_gives_the_machine_s_reason_before_the_step_s_explanation(tool_environ: dict, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("spacy\n")
    env = {**tool_environ, "UV_HTTP_RETRIES": "0", "UV_INDEX_URL": f"http://{CLOSED}/simple"}
    command = [Tools.program("uv"), "pip", "compile", "--quiet", "requirements.in"]
    with pytest.raises(UserError) as failed:
        run_tool(command, what="uv pip compile", fix=LINE_FIX, env=env, cwd=tmp_path, quiet=True,
                 explain=blame_a_line)  # fmt: skip
    message = str(failed.value)
    assert message.startswith(f"uv pip compile failed: cannot reach {CLOSED}: check the network, "), message
    assert "requirements.in" not in message and LINE_FIX not in message and "\n" not in message


def test_a_streamed_tool_s_machine_failure_points_at_its_output(capsys: pytest.CaptureFixture[str]) -> None:
    code = "import sys; print('ERROR: Could not install packages due to an OSError: [Errno 28] No space left on " \
           "device'); sys.exit(1)"  # fmt: skip
    with pytest.raises(UserError) as failed:
        run_tool([sys.executable, "-c", code], what="pip install", fix=LINE_FIX, env={"TMPDIR": "/scratch"})
    assert str(failed.value) == (
        "pip install failed: no space left on device: free some space on the disk it writes to (TMPDIR=/scratch, "
        "where pip and uv unpack, or the project's), or set TMPDIR to a directory on a disk with room, then run the "
        "same make command again (its output is above)"
    )
    assert "No space left" in capsys.readouterr().out


# ---- captured texts: what a loopback cannot produce, and forms of the tools' lines


PIP_DISK_FULL = "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device\n"
UV_CLOSED_PORT_WITH_RETRIES = """\
error: Request failed after 3 retries in 8.3s
  cause: Failed to fetch: http://127.0.0.1:9/simple/spacy/
  cause: error sending request for url (http://127.0.0.1:9/simple/spacy/)
  cause: client error (Connect)
  cause: tcp connect error
  cause: Connection refused (os error 111)
"""
UV_UNKNOWN_HOST = """\
error: Failed to fetch: https://pypi.invalid/simple/spacy/
  cause: error sending request for url (https://pypi.invalid/simple/spacy/)
  cause: client error (Connect)
  cause: dns error
  cause: error resolving DNS
  cause: failed to lookup address information: Name or service not known
"""
PIP_UNKNOWN_HOST = """\
Looking in indexes: https://pypi.invalid/simple
WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by \
'NameResolutionError("HTTPSConnection(host='pypi.invalid', port=443): Failed to resolve 'pypi.invalid' ([Errno -2] \
Name or service not known)")': /simple/rich/
ERROR: Could not find a version that satisfies the requirement rich (from versions: none)
ERROR: No matching distribution found for rich
"""
# pip 23.2 (ensurepip's: the pip a fresh venv starts with) names the proxy itself; pip 26 says only
# NewConnectionError for the proxy's host and port (test_a_proxy_that_refuses_names_the_proxy_settings)
PIP_PROXY_ERROR = """\
Looking in indexes: https://pypi.invalid/simple
WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by \
'ProxyError('Cannot connect to proxy.', NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at \
0x7fc83e7bb9d0>: Failed to establish a new connection: [Errno 111] Connection refused'))': /simple/rich/
ERROR: Could not find a version that satisfies the requirement rich (from versions: none)
ERROR: No matching distribution found for rich
"""


def test_a_full_disk_names_tmpdir_whatever_else_the_output_says() -> None:
    reason, fix = machine_failure("Collecting spacy\n" + PIP_DISK_FULL, {"TMPDIR": "/scratch"})  # type: ignore[misc]
    assert reason == "no space left on device" and "TMPDIR=/scratch" in fix
    proxied = machine_failure(PIP_DISK_FULL + "Connection refused\n", {"HTTPS_PROXY": "http://p:3128"})
    assert proxied is not None and proxied[0] == "no space left on device", "the disk is told before the network"


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (UV_CLOSED_PORT_WITH_RETRIES, "cannot reach 127.0.0.1:9"),
        (UV_UNKNOWN_HOST, "cannot reach pypi.invalid"),
        (PIP_UNKNOWN_HOST, "cannot reach pypi.invalid"),
    ],
)
def test_captured_network_failures_name_the_host(output: str, reason: str) -> None:
    found = machine_failure(output, {})
    assert found is not None and found[0] == reason


def test_a_proxy_error_is_the_proxy_s_even_when_the_proxy_is_configured_elsewhere() -> None:
    """pip.conf's proxy is not in the environment; pip 23's own words still say it was the proxy."""
    found = machine_failure(PIP_PROXY_ERROR, {})
    assert found is not None and found[0] == "the proxy (none set) did not carry the request to pypi.invalid"
    assert found[1].startswith("check HTTPS_PROXY, HTTP_PROXY and NO_PROXY")


def test_user_info_of_a_proxy_is_never_printed() -> None:
    found = machine_failure(UV_CLOSED_PORT_WITH_RETRIES, {"HTTPS_PROXY": "http://me:s3cret@proxy.example:3128"})
    assert found is not None and found[0].startswith("the proxy http://****@proxy.example:3128 did not carry")
    assert "s3cret" not in " ".join(found)


def test_an_untrusted_certificate_behind_a_proxy_is_still_the_certificate_s(
    tool_environ: dict, tmp_path: Path, tls_served
) -> None:
    """A company network: HTTPS_PROXY for the internet, NO_PROXY for its own mirror, whose certificate is signed
    by the company's CA; uv is not told about that CA."""
    links = tls_served.add_page("/links.html", "<p>no files</p>\n")
    output, env = failing_tool("uv", tool_environ, tmp_path, find_links=links,
                               HTTPS_PROXY=f"http://{CLOSED}", NO_PROXY="127.0.0.1")  # fmt: skip
    assert "UnknownIssuer" in output, output
    found = machine_failure(output, env)
    assert found is not None and found[0].endswith("TLS certificate is not trusted here"), found

"""lock/resolve.py: uv pip compile and pip-compile for real, on a find-links directory of tiny wheels.

The project's only index is a loopback server that has nothing (every project
404s), so nothing but the find-links directory and the models' build/ files
can be resolved.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache
from nlp_modeltools.core.http import Session
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.lock import lockfile
from nlp_modeltools.lock.resolve import (
    Resolver,
    absolute_find_links,
    add_missing_hashes,
    compile_lock,
    find_links_files,
    resolver_failure,
    uv_environment,
    write_input,
)
from nlp_modeltools.models import manifest
from nlp_modeltools.models.wheels import read_model_wheel

MODEL = "en_tiny_model"


@pytest.fixture
def project(tmp_path: Path, make_wheel, sha256) -> Paths:
    """requirements.in naming spaCy and the model pins; the model's wheel in build/; spaCy in a find-links dir."""
    paths = Paths(tmp_path / "proj")
    paths.root.mkdir()
    paths.requirements.write_text("spacy>=3.8,<3.9\n-r requirements-model.in\n")
    paths.pins.write_text(f"{MODEL}==1.0.0\n")
    make_wheel(paths.build, MODEL, "1.0.0")
    for version in ("3.8.5", "3.8.7", "3.9.0"):
        make_wheel(tmp_path / "find-links", "spacy", version, requires=())
    return paths


def models_of(paths: Paths, sha256) -> dict:
    wheel = read_model_wheel(paths.build / f"{MODEL}-1.0.0-py3-none-any.whl")
    return {wheel.name: manifest.record(wheel, sha256(wheel.path), None, "requirements-model.in.url:1")}


def resolver(paths: Paths, served, tool_environ: dict, installer: str, **extra: str) -> Resolver:
    environ = {**tool_environ, "PIP_INDEX_URL": f"{served.url}/simple",
               "PIP_FIND_LINKS": str(paths.root.parent / "find-links"), **extra}  # fmt: skip
    return Resolver(paths, Tools(environ), Session({}), HashCache(paths.build / ".sha256-cache.json"), installer,
                    "3.11")  # fmt: skip


@pytest.mark.parametrize("installer", ["uv", "pip-tools"])
def test_the_lock_pins_spacy_from_find_links_and_the_model_to_its_build_file(
    project: Paths, served, tool_environ: dict, sha256, installer: str
) -> None:
    models = models_of(project, sha256)
    scope = lockfile.UNIVERSAL if installer == "uv" else "for this machine"
    lock = compile_lock(resolver(project, served, tool_environ, installer), models, scope, work=project.work)
    spacy, model = lock.by_name()["spacy"], lock.by_name()["en-tiny-model"]
    assert len(lock.entries) == 2
    find_links = project.root.parent / "find-links"
    assert (spacy.requirement, spacy.hashes) == (
        "spacy==3.8.7",
        [f"sha256:{sha256(find_links / 'spacy-3.8.7-py3-none-any.whl')}"],
    )
    build_file = project.build / f"{MODEL}-1.0.0-py3-none-any.whl"
    assert (model.requirement, model.hashes, model.is_model) == (
        f"{MODEL}==1.0.0",
        [f"sha256:{sha256(build_file)}"],
        True,
    )
    assert model.via == ["-r requirements-model.in"] and "-r requirements.in" in spacy.via
    text = lock.render("d" * 64)
    assert lockfile.problems(lock, text) == [] and lock.header[-1] == lockfile.SCOPE_PREFIX + scope
    assert (project.work / "requirements.in").read_text().splitlines() == [
        "spacy>=3.8,<3.9", "", "# Models (requirements-model.in), each its file in build/, never a name:",
        f"en-tiny-model @ {build_file.resolve().as_uri()}",
    ]  # fmt: skip
    assert not project.lock.exists(), "the committed lock is the caller's to write"


def test_the_previous_lock_s_pins_are_kept_until_upgrade(project: Paths, served, tool_environ: dict, sha256) -> None:
    models = models_of(project, sha256)
    previous = project.root / "requirements.txt"
    previous.write_text("spacy==3.8.5\n")
    kept = compile_lock(resolver(project, served, tool_environ, "uv"), models, "x", work=project.work,
                        previous=previous)  # fmt: skip
    assert kept.version_of("spacy").public == "3.8.5"  # type: ignore[union-attr]
    upgraded = compile_lock(resolver(project, served, tool_environ, "uv"), models, "x", work=project.work,
                            previous=previous, upgrade=True)  # fmt: skip
    assert upgraded.version_of("spacy").public == "3.8.7"  # type: ignore[union-attr]


@pytest.mark.parametrize("installer", ["uv", "pip-tools"])
def test_an_unsatisfiable_line_is_named_with_the_resolver_s_reason(
    project: Paths, served, tool_environ: dict, sha256, installer: str
) -> None:
    project.requirements.write_text("# the project\nspacy>=4\n-r requirements-model.in\n")
    with pytest.raises(UserError) as failed:
        compile_lock(resolver(project, served, tool_environ, installer), {}, "x", work=project.work)
    message = str(failed.value)
    tool = "uv pip compile" if installer == "uv" else "pip-compile"
    assert message.startswith(f"{tool} failed: requirements.in:2 (spacy>=4) cannot be met: "), message
    assert message.endswith("Change or remove the line(s) it names, then run make lock; requirements.txt was kept "
                            "as it was (VERBOSE=1 shows its whole output)")  # fmt: skip
    assert "\n" not in message


def test_a_model_that_needs_another_spacy_is_named_by_the_project_s_line(
    project: Paths, served, tool_environ: dict, sha256
) -> None:
    project.requirements.write_text("# the project\nspacy>=3.9\n-r requirements-model.in\n")
    with pytest.raises(UserError) as failed:
        compile_lock(resolver(project, served, tool_environ, "uv"), models_of(project, sha256), "x", work=project.work)
    message = str(failed.value)
    assert message.startswith("uv pip compile failed: requirements.in:2 (spacy>=3.9) cannot be met: "), message
    assert "en-tiny-model" in message and "unsatisfiable" in message


def test_the_resolver_s_input_keeps_requirements_in_s_line_numbers(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.requirements.write_text("spacy>=3.8\n-r requirements-model.in\n-c constraints.txt\nrich\n")
    (tmp_path / "build").mkdir()
    source = write_input(paths, {"en-a": tmp_path / "build" / "en_a-1.0-py3-none-any.whl"}, paths.work)  # type: ignore[dict-item]
    lines = source.read_text().splitlines()
    assert lines[:4] == ["spacy>=3.8", "", "-c ../../constraints.txt", "rich"]
    assert lines[4:] == ["# Models (requirements-model.in), each its file in build/, never a name:",
                         f"en-a @ {(tmp_path / 'build' / 'en_a-1.0-py3-none-any.whl').as_uri()}"]  # fmt: skip


def test_pip_sources_reach_uv_under_its_names() -> None:
    env = uv_environment({"PIP_FIND_LINKS": "https://a/l.html /opt/wheels", "PIP_EXTRA_INDEX_URL": "https://x/s"})
    assert env["UV_FIND_LINKS"] == "https://a/l.html,/opt/wheels" and env["UV_EXTRA_INDEX_URL"] == "https://x/s"
    assert (
        uv_environment({"PIP_INDEX_URL": "https://pip", "UV_INDEX_URL": "https://uv"})["UV_INDEX_URL"] == "https://uv"
    )
    assert uv_environment({})["UV_NO_PROGRESS"] == "1"


def test_relative_find_links_are_made_absolute_for_a_resolver_in_build_lock(tmp_path: Path) -> None:
    env = absolute_find_links({"PIP_FIND_LINKS": "wheels /abs https://h/links.html", "UV_FIND_LINKS": "w,x"}, tmp_path)
    assert env["PIP_FIND_LINKS"] == f"{tmp_path / 'wheels'} /abs https://h/links.html"
    assert env["UV_FIND_LINKS"] == f"{tmp_path / 'w'},{tmp_path / 'x'}"


def test_a_find_links_page_gives_hashes_by_fragment_or_by_download(served, tmp_path: Path, make_wheel, sha256) -> None:
    listed, unlisted = (make_wheel(tmp_path, "rich", v, requires=()) for v in ("13.0.0", "14.0.0"))
    served.add_file("/files/rich-13.0.0-py3-none-any.whl", listed)
    served.add_file("/files/rich-14.0.0-py3-none-any.whl", unlisted)
    served.add_page("/links.html", f'<a href="files/rich-13.0.0-py3-none-any.whl#sha256={sha256(listed)}">a</a>\n'
                                   '<a href="files/rich-14.0.0-py3-none-any.whl">b</a>\n')  # fmt: skip
    environ = {"PIP_FIND_LINKS": f"{served.url}/links.html"}
    found = find_links_files(Session({}), environ, {("rich", "13.0.0"), ("rich", "14.0.0")})
    assert found == {listed.name: [sha256(listed)], unlisted.name: [sha256(unlisted)]}
    assert [r.path for r in served.since()] == ["/links.html", "/files/rich-14.0.0-py3-none-any.whl"]
    lock = lockfile.parse("rich==14.0.0\n    # via -r requirements.in\nspacy==3.8.7 \\\n    --hash=sha256:aa\n")
    add_missing_hashes(Session({}), environ, lock)
    assert [e.hashes for e in lock.entries] == [[f"sha256:{sha256(unlisted)}"], ["sha256:aa"]]


UV_FAILURE = """\
  \N{MULTIPLICATION SIGN} No solution found when resolving dependencies:
  cause: Because only spacy<=3.8.7 is available and you require spacy>=4, we can conclude that your
  requirements are unsatisfiable.
"""
PIP_CONFLICT = """\
ERROR: Cannot install -r requirements.in (line 1) and en-a==1.0 because these package versions have conflicting \
dependencies.

The conflict is caused by:
    The user requested spacy>=3.9 (from -r requirements.in (line 1))
    en-a 1.0 depends on spacy<3.9

To fix this you could try to:
"""


def test_the_resolver_s_reason_is_one_sentence_after_the_lines_it_concerns() -> None:
    lines = [("requirements.in:1", Requirement("spacy>=3.9")), ("requirements.in:2", Requirement("rich"))]
    assert resolver_failure(UV_FAILURE, [lines[0]]) == (
        "requirements.in:1 (spacy>=3.9) cannot be met: Because only spacy<=3.8.7 is available and you require "
        "spacy>=4, we can conclude that your requirements are unsatisfiable"
    )
    assert resolver_failure(PIP_CONFLICT, lines) == (
        "requirements.in:1 (spacy>=3.9) cannot be met: The user requested spacy>=3.9 (from -r requirements.in (line "
        "1)) en-a 1.0 depends on spacy<3.9"
    )
    assert resolver_failure("ERROR: No matching distribution found for rich==99\n", lines) == (
        "requirements.in:2 (rich) cannot be met: No matching distribution found for rich==99"
    )
    assert resolver_failure("something else went wrong\n", lines) == ""


def test_a_reason_that_names_no_line_points_at_requirements_in() -> None:
    assert resolver_failure("No matching distribution found for numpy\n", []) == (
        "requirements.in cannot be met: No matching distribution found for numpy"
    )


def test_the_tools_run_are_this_environment_s(project: Paths, served, tool_environ: dict) -> None:
    tools = resolver(project, served, tool_environ, "uv").tools
    assert os.access(tools.program("uv"), os.X_OK) and os.access(tools.program("python"), os.X_OK)


# ---- uv_environment: what pip reads (its variables and its configuration), under the names uv reads


def pip_conf(directory: Path, text: str) -> str:
    path = directory / "pip.conf"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "PIP_CERT"])
def test_the_ca_bundle_pip_trusts_reaches_uv_as_ssl_cert_file(variable: str) -> None:
    env = uv_environment({"PIP_CONFIG_FILE": os.devnull, variable: "/etc/company-ca.pem"})
    assert env["SSL_CERT_FILE"] == "/etc/company-ca.pem" and env[variable] == "/etc/company-ca.pem"
    mine = uv_environment({"PIP_CONFIG_FILE": os.devnull, variable: "/etc/company-ca.pem", "SSL_CERT_FILE": "/mine"})
    assert mine["SSL_CERT_FILE"] == "/mine", "uv's own setting wins"
    assert "SSL_CERT_FILE" not in uv_environment({"PIP_CONFIG_FILE": os.devnull})


def test_a_bundle_that_is_set_wins_over_pip_s_configured_cert(tmp_path: Path) -> None:
    """A bundle in the environment wins over pip.conf's cert. That pip.conf's cert reaches uv when none is set is
    the xfail below: a global pip.conf with its own cert (this machine's /etc/pip.conf has one) wins instead."""
    config = pip_conf(tmp_path, "[global]\ncert = /etc/ssl/company.pem\n")
    assert uv_environment({"PIP_CONFIG_FILE": config, "SSL_CERT_FILE": "/mine"})["SSL_CERT_FILE"] == "/mine"
    assert uv_environment({"PIP_CONFIG_FILE": config, "REQUESTS_CA_BUNDLE": "/rq"})["SSL_CERT_FILE"] == "/rq"


def test_pip_s_configured_cert_is_the_one_pip_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A global pip.conf (XDG_CONFIG_DIRS, as /etc/xdg or /etc hold one) names another cert; PIP_CONFIG_FILE's wins,
    for pip (`pip config get global.cert`) and so for uv."""
    (tmp_path / "xdg" / "pip").mkdir(parents=True)
    pip_conf(tmp_path / "xdg" / "pip", "[global]\ncert = /etc/ssl/system-bundle.pem\n")
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg"))
    monkeypatch.delenv("PIP_CERT", raising=False)
    config = pip_conf(tmp_path, "[global]\ncert = /etc/ssl/company.pem\n")
    pip = subprocess.run([Tools.program("python"), "-m", "pip", "config", "get", "global.cert"], capture_output=True,
                         text=True, env={**os.environ, "PIP_CONFIG_FILE": config})  # fmt: skip
    assert pip.stdout.strip() == "/etc/ssl/company.pem", "what pip itself uses"
    assert uv_environment({"PIP_CONFIG_FILE": config})["SSL_CERT_FILE"] == "/etc/ssl/company.pem"


def test_pip_s_configured_proxy_reaches_uv_unless_one_is_set(tmp_path: Path) -> None:
    config = pip_conf(tmp_path, "[global]\nproxy = http://proxy.example:3128\n")
    env = uv_environment({"PIP_CONFIG_FILE": config})
    assert (env["HTTPS_PROXY"], env["HTTP_PROXY"]) == ("http://proxy.example:3128", "http://proxy.example:3128")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        kept = uv_environment({"PIP_CONFIG_FILE": config, name: "http://mine:8080"})
        assert {key: value for key, value in kept.items() if key.upper().endswith("_PROXY")} == {
            name: "http://mine:8080"
        }
    assert "HTTPS_PROXY" not in uv_environment({"PIP_CONFIG_FILE": os.devnull})


def test_a_set_http_proxy_is_kept_when_pip_configures_one(tmp_path: Path) -> None:
    config = pip_conf(tmp_path, "[global]\nproxy = http://proxy.example:3128\n")
    env = uv_environment({"PIP_CONFIG_FILE": config, "HTTP_PROXY": "http://mine:8080"})
    assert env["HTTP_PROXY"] == "http://mine:8080"


def test_uv_s_cache_goes_beside_the_model_cache_unless_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    base = {"PIP_CONFIG_FILE": os.devnull}
    assert uv_environment({**base, "NLP_MODELS_CACHE": "/cache/models"})["UV_CACHE_DIR"] == "/cache/models/uv"
    assert uv_environment({**base, "NLP_MODELS_CACHE": "~/models"})["UV_CACHE_DIR"] == "/home/someone/models/uv"
    assert uv_environment({**base, "NLP_MODELS_CACHE": "/c", "UV_CACHE_DIR": "/u"})["UV_CACHE_DIR"] == "/u"
    assert "UV_CACHE_DIR" not in uv_environment(base)


# ---- the machine's failures, for real: never a requirements.in line


LINE_FIX = "Change or remove the line(s) it names"


@pytest.fixture
def tls_links(project: Paths, tls_served) -> str:
    """The find-links wheels served over https, from a links page whose hrefs give no hash."""
    wheels = sorted((project.root.parent / "find-links").glob("*.whl"))
    for wheel in wheels:
        tls_served.add_file(f"/files/{wheel.name}", wheel)
    return tls_served.add_page("/links.html", "".join(f'<a href="files/{w.name}">{w.name}</a>\n' for w in wheels))


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "PIP_CERT"])
def test_a_find_links_page_behind_the_company_ca_is_read_with_pip_s_ca_bundle(
    project: Paths, served, tls_served, tls_links: str, tool_environ: dict, sha256, untrusted_ca, variable: str
) -> None:
    """uv reads the page and hashes its files itself: the engine's own requests session is not needed here."""
    trusted = resolver(
        project, served, tool_environ, "uv", PIP_FIND_LINKS=tls_links, **{variable: str(untrusted_ca.pem)}
    )
    lock = compile_lock(trusted, models_of(project, sha256), lockfile.UNIVERSAL, work=project.work)
    spacy = lock.by_name()["spacy"]
    wheel = project.root.parent / "find-links" / "spacy-3.8.7-py3-none-any.whl"
    assert (spacy.requirement, spacy.hashes) == ("spacy==3.8.7", [f"sha256:{sha256(wheel)}"])
    assert "/links.html" in [r.path for r in tls_served.since()]


def test_a_find_links_page_whose_certificate_is_not_trusted_names_the_ca_bundle_setting(
    project: Paths, served, tls_served, tls_links: str, tool_environ: dict, sha256
) -> None:
    untrusted = resolver(project, served, tool_environ, "uv", PIP_FIND_LINKS=tls_links)
    with pytest.raises(UserError) as failed:
        compile_lock(untrusted, models_of(project, sha256), lockfile.UNIVERSAL, work=project.work)
    message = str(failed.value)
    host = tls_served.url.removeprefix("https://")
    assert message == (
        f"uv pip compile failed: {host}'s TLS certificate is not trusted here: set REQUESTS_CA_BUNDLE (or "
        "SSL_CERT_FILE) in .env to a bundle holding your company's CA, then run the same make command again"
    )
    assert "requirements.in" not in message and LINE_FIX not in message


def proxied(project: Paths, tool_environ: dict, installer: str, **extra: str) -> Resolver:
    """spaCy only from an index whose name does not resolve here (https: HTTPS_PROXY is used for it), through a
    proxy on a closed port; no find-links, no NO_PROXY. PIP_RETRIES=1: pip's default 5 prints the same line 5 times,
    after 7 s of back-off; UV_HTTP_RETRIES=0: uv's default 3 gives the same causes after 8 s."""
    environ = {**tool_environ, "PIP_INDEX_URL": "https://pypi.invalid/simple", "HTTPS_PROXY": "http://127.0.0.1:9",
               "PIP_RETRIES": "1", "UV_HTTP_RETRIES": "0", **extra}  # fmt: skip
    assert not any(name.lower() == "no_proxy" for name in environ) and "NO_PROXY" not in os.environ
    return Resolver(project, Tools(environ), Session({}), HashCache(project.build / ".sha256-cache.json"), installer,
                    "3.11")  # fmt: skip


@pytest.mark.parametrize("installer", ["uv", "pip-tools"])
def test_a_proxy_that_refuses_names_the_proxy_settings_not_a_line(
    project: Paths, tool_environ: dict, sha256, installer: str
) -> None:
    with pytest.raises(UserError) as failed:
        compile_lock(proxied(project, tool_environ, installer), models_of(project, sha256), "x", work=project.work)
    message = str(failed.value)
    tool, host = ("uv pip compile", "pypi.invalid") if installer == "uv" else ("pip-compile", "a package source")
    assert message == (
        f"{tool} failed: the proxy http://127.0.0.1:9 did not carry the request to {host}: check HTTPS_PROXY, "
        "HTTP_PROXY and NO_PROXY (in .env or your shell), then run the same make command again"
    )
    assert "requirements.in:" not in message and LINE_FIX not in message


@pytest.mark.xfail(strict=True, reason="engine bug: with PIP_RETRIES=0 pip-compile prints no network line at all "
                   "(not even with --verbose), so the proxy's failure is blamed on requirements.in:1")  # fmt: skip
def test_a_proxy_that_refuses_is_not_blamed_on_a_line_when_pip_does_not_retry(
    project: Paths, tool_environ: dict, sha256
) -> None:
    resolver_ = proxied(project, tool_environ, "pip-tools", PIP_RETRIES="0")
    with pytest.raises(UserError) as failed:
        compile_lock(resolver_, models_of(project, sha256), "x", work=project.work)
    assert "requirements.in:" not in str(failed.value) and "HTTPS_PROXY" in str(failed.value), str(failed.value)

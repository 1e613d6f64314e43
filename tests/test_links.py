"""Model discovery and upgrades: the releases API, version ranges, compatibility, no dependency confusion."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST
from tests.support.mirror import Mirror, MirrorServer, hostile_servers
from tests.support.project import make, venv_python
from tests.support.wheels import TinyModel, build_tiny

TOKEN = "ghp_FAKE0TOKEN0nlp0template0test0000001"
FAKE_RELEASES = 250


@pytest.fixture
def releases(wheels: dict) -> Iterator[Mirror]:
    """A GitHub stand-in of its own: 250 cheap releases first, the real wheels on the last page."""
    mirror = Mirror()
    with MirrorServer(mirror):
        mirror.add_fake_releases(FAKE_RELEASES)
        for key in ("sm-3.8.0", "md-3.8.0", "sm-3.7.1"):
            mirror.add_release(wheels[key], with_digest=key != "sm-3.7.1")
        mirror.releases = mirror.releases[3:] + mirror.releases[:3]  # real ones beyond the first pages
        yield mirror


def api_settings(mirror: Mirror) -> list[str]:
    return [f"SPACY_MODELS_API={mirror.api_url}", f"SPACY_MODELS_URL={mirror.download_base}"]


def api_requests(mirror: Mirror, mark: int) -> list:
    return [r for r in mirror.since(mark) if "/releases" in r.path]


def test_links_reads_every_page_with_digests_and_etags(project: Path, releases: Mirror, wheels: dict) -> None:
    page = project / "build" / "spacy_model_links.html"
    result = make(project, "links", *api_settings(releases))
    requests = api_requests(releases, 0)
    assert [re.search(r"[?&]page=(\d+)", r.path).group(1) if "&page=" in r.path else "1" for r in requests] == [
        "1",
        "2",
        "3",
    ]
    assert "per_page=100" in requests[0].path
    assert "253 model files from 3 API pages (3 read, 0 not modified since last time)" in result.stdout
    assert "spacy_model_links.html: written" in result.stdout
    text = page.read_text()
    sm = wheels["sm-3.8.0"]
    sm_url = f"{releases.download_base}/en_core_web_sm-3.8.0/{sm.name}"
    assert f'<a href="{sm_url}#sha256={hashlib.sha256(sm.read_bytes()).hexdigest()}">{sm.name}</a>' in text
    assert f'<a href="{releases.download_base}/en_core_web_sm-3.7.1/{wheels["sm-3.7.1"].name}">' in text
    names = re.findall(r">([^<]+\.whl)</a>", text)
    assert len(names) == 253 and names == sorted(names, key=lambda n: (n.split("-")[0].replace("_", "-"), n))

    mtime = page.stat().st_mtime_ns
    mark = releases.mark()
    result = make(project, "links", *api_settings(releases))
    again = api_requests(releases, mark)
    assert len(again) == 3 and all(r.headers.get("If-None-Match") for r in again)
    assert all(r.status == 304 for r in again)
    assert "(0 read, 3 not modified since last time)" in result.stdout
    assert "spacy_model_links.html: the same as before, left as it was" in result.stdout
    assert page.stat().st_mtime_ns == mtime


def test_the_token_is_sent_as_a_header_and_never_shown(project: Path, releases: Mirror, fresh_cache: dict) -> None:
    (project / ".env").write_text(f"GITHUB_TOKEN={TOKEN}\n")
    (project / "requirements-model.in.range").write_text("en_core_web_md>=3.8,<3.9\n")
    outputs = [make(project, "links", *api_settings(releases)), make(project, "-n", "links", *api_settings(releases))]
    outputs.append(make(project, "models", *api_settings(releases), env=fresh_cache))  # a download really happens
    assert all(r.authorization == f"Bearer {TOKEN}" for r in api_requests(releases, 0))
    downloads = [r for r in releases.since(0) if r.path.endswith(".whl")]
    assert downloads and all(r.authorization is None for r in downloads), "the token must not go to download hosts"
    for result in outputs:
        assert TOKEN not in result.output
    for path in project.rglob("*"):
        if path.is_file() and path.name != ".env" and ".venv" not in path.parts:
            assert TOKEN.encode() not in path.read_bytes(), f"the token leaked into {path}"


def test_a_rate_limit_says_when_it_resets_and_how_to_raise_it(project: Path, releases: Mirror) -> None:
    releases.rate_limited = True
    result = make(project, "links", *api_settings(releases), check=False)
    assert result.returncode != 0
    assert "rate limit (60 requests an hour) is used up" in result.stderr
    assert "resets at 2030-03-17 17:46 UTC" in result.stderr
    assert "Set GITHUB_TOKEN in .env" in result.stderr
    assert not (project / "build" / "spacy_model_links.html").exists()


@pytest.mark.parametrize(
    ("api", "message"),
    [("http://127.0.0.1:9/repos/x/y", "cannot reach http://127.0.0.1:9/repos/x/y/releases?per_page=100"),
     ("{mirror}/nothing-here", "HTTP 404 Not Found from {mirror}/nothing-here/releases?per_page=100")],
)  # fmt: skip
def test_api_failures_name_the_url(project: Path, releases: Mirror, api: str, message: str) -> None:
    result = make(project, "links", f"SPACY_MODELS_API={api.format(mirror=releases.url)}", check=False)
    assert result.returncode != 0 and message.format(mirror=releases.url) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_range_resolves_to_the_newest_fitting_release_and_upgrades(
    project: Path, releases: Mirror, wheels: dict, installer: str, fresh_cache: dict
) -> None:
    settings = [
        *api_settings(releases),
        f"INSTALLER={installer}",
        f"NLP_MODELS_CACHE={fresh_cache['NLP_MODELS_CACHE']}",
    ]
    (project / "requirements-model.in.range").write_text("en_core_web_md>=3.7,<3.9\n")
    mark = releases.mark()
    make(project, "install", *settings)
    downloads = [r.path.rsplit("/", 1)[-1] for r in releases.since(mark) if r.path.endswith(".whl")]
    assert downloads == [wheels["md-3.8.0"].name]
    lock = (project / "requirements.txt").read_text()
    block = re.search(r"^en_core_web_md==3\.8\.0 \\\n(    --hash=\S+.*\n)+", lock, re.MULTILINE)
    assert block and block.group(0).count("--hash=") == 1
    assert "en_core_web_md==3.8.0" in (project / "requirements-model.in").read_text().splitlines()

    releases.add_release(build_tiny(TinyModel("en_core_web_md", "3.8.1")))
    releases.add_release(build_tiny(TinyModel("en_core_web_md", "3.9.0", spacy_range=">=3.9.0,<3.10.0")))
    mark = releases.mark()
    make(project, "install", *settings)
    assert releases.since(mark) == [], "a locked range model stays put until make upgrade"

    result = make(project, "upgrade", *settings)
    assert "en_core_web_md: 3.8.0 -> 3.8.1" in result.stdout
    assert "en_core_web_md==3.8.1" in (project / "requirements.txt").read_text()
    make(project, "install", *settings)
    version = "import en_core_web_md; print(en_core_web_md.load().meta['version'])"
    assert venv_python(project, version).strip() == "3.8.1"


def test_a_stale_links_page_never_moves_a_locked_model(
    project: Path, releases: Mirror, wheels: dict, fresh_cache: dict
) -> None:
    releases.add_release(build_tiny(TinyModel("en_core_web_md", "3.8.1")))
    (project / "requirements-model.in.range").write_text("en_core_web_md>=3.7,<3.9\n")
    make(project, "install", *api_settings(releases), env=FAST)
    lock = (project / "requirements.txt").read_text()
    assert "en_core_web_md==3.8.1 \\" in lock
    page = project / "build" / "spacy_model_links.html"
    page.write_text(re.sub(r"<a [^>]*en_core_web_md-3\.8\.1[^<]*</a><br/>\n", "", page.read_text()))
    (project / "build" / "en_core_web_md-3.8.1-py3-none-any.whl").unlink()  # a teammate's clone: not fetched yet
    (project / "requirements-model.in.range").touch()
    mark = releases.mark()
    make(project, "install", *api_settings(releases), env={**FAST, **fresh_cache})
    assert (project / "requirements.txt").read_text() == lock, "the lock kept its version"
    assert "en_core_web_md==3.8.1" in (project / "requirements-model.in").read_text()
    assert api_requests(releases, mark), "the stale page was refreshed once"


def test_a_model_for_another_spacy_is_refused_before_anything_is_installed(
    project: Path, releases: Mirror, mirror: Mirror, wheels: dict
) -> None:
    ranges = project / "requirements-model.in.range"
    ranges.write_text("en_core_web_sm>=3.7,<3.8\n")
    result = make(project, "install", *api_settings(releases), env=FAST, check=False)
    assert result.returncode != 0 and "en_core_web_sm is already listed at requirements-model.in.url" in result.stderr

    (project / "requirements-model.in.url").write_text("# no exact model\n")
    result = make(project, "install", *api_settings(releases), env=FAST, check=False)
    assert result.returncode != 0
    assert "requirements-model.in.range:1: en_core_web_sm<3.8,>=3.7 allows 3.7.1, but none of the newest fits" in (
        result.stderr
    )
    assert "needs spacy<3.8.0,>=3.7.0, but this project uses spacy<3.9,>=3.8" in result.stderr
    assert not (project / ".venv").exists()

    ranges.write_text("")
    old = wheels["sm-3.7.1"].name
    (project / "requirements-model.in.url").write_text(f"{mirror.download_base}/en_core_web_sm-3.7.1/{old}\n")
    result = make(project, "check-models", env=FAST, check=False)
    assert result.returncode != 0
    expected = "check-models: en_core_web_sm==3.7.1 needs spacy<3.8.0,>=3.7.0: does not fit: this project uses "
    assert expected + "spacy<3.9,>=3.8 (requirements.in:" in result.stdout
    assert not (project / ".venv").exists()


def test_check_models_reports_each_fitting_model(project: Path) -> None:
    result = make(project, "check-models", env=FAST)
    assert "check-models: en_core_web_sm==3.8.0 needs spacy<3.9.0,>=3.7.5: fits spacy<3.9,>=3.8" in result.stdout


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b'{"message": "Not Found"}', "with a JSON dict, not a list of releases: 'Not Found'"),
        (b"<html>rate limited</html>", "with something that is not JSON"),
        (b'[{"assets": [{"name": null, "browser_download_url": null}]}]', "links: 0 model files"),
    ],
    ids=["object", "html", "null-name"],
)
def test_a_malformed_api_answer_is_one_line(project: Path, answer: bytes, message: str) -> None:
    with hostile_servers() as api:
        api.add_route("/repos/x/y/releases", answer, "application/json")
        result = make(project, "links", f"SPACY_MODELS_API={api.url}/repos/x/y", env=FAST, check=False)
    assert message in result.output and "Traceback" not in result.output
    assert (result.returncode == 0) == message.startswith("links:")


def test_an_endless_api_is_capped(project: Path) -> None:
    with hostile_servers() as api:
        api.add_route("/repos/x/y/releases", b"[]", "application/json", endless_next=True)
        result = make(project, "links", f"SPACY_MODELS_API={api.url}/repos/x/y", env=FAST, check=False)
        asked = len(api.since(0))
    assert result.returncode != 0 and "more than 100 pages" in result.stderr
    assert asked == 100

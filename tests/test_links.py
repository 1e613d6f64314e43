"""Model discovery and upgrades: the releases API, version ranges, compatibility, no dependency confusion."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Installed
from tests.support.mirror import Mirror, MirrorServer
from tests.support.project import copy_project, make, venv_python
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
    assert "253 model wheels from 3 API pages" in result.stdout
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
    assert "(3 unchanged since the last run)" in result.stdout and "(unchanged)" in result.stdout
    assert page.stat().st_mtime_ns == mtime


def test_the_token_is_sent_as_a_header_and_never_shown(project: Path, releases: Mirror) -> None:
    (project / ".env").write_text(f"GITHUB_TOKEN={TOKEN}\n")
    (project / "requirements.in").write_text((project / "requirements.in").read_text() + "en_core_web_md>=3.8,<3.9\n")
    outputs = [make(project, "links", *api_settings(releases)), make(project, "-n", "links", *api_settings(releases))]
    outputs.append(make(project, "models", *api_settings(releases)))
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
    project: Path, releases: Mirror, wheels: dict, shared_tools: dict
) -> None:
    requirements = project / "requirements.in"
    requirements.write_text(requirements.read_text() + "en_core_web_md>=3.7,<3.9\n")
    mark = releases.mark()
    make(project, "install", *api_settings(releases), env=shared_tools)
    assert [r.path.rsplit("/", 1)[-1] for r in releases.since(mark) if r.path.endswith(".whl")] == [
        wheels["md-3.8.0"].name
    ]
    lock = (project / "requirements.txt").read_text()
    block = re.search(r"^en-core-web-md==3\.8\.0 \\\n(    --hash=\S+.*\n)+", lock, re.MULTILINE)
    assert block and block.group(0).count("--hash=") == 1
    assert "    # via -r requirements.in" in lock

    releases.add_release(build_tiny(TinyModel("en_core_web_md", "3.8.1")))
    releases.add_release(build_tiny(TinyModel("en_core_web_md", "3.9.0", spacy_range=">=3.9.0,<3.10.0")))
    mark = releases.mark()
    make(project, "install", *api_settings(releases), env=shared_tools)
    assert releases.since(mark) == [], "a locked range model stays put until make upgrade"

    result = make(project, "upgrade", *api_settings(releases), env=shared_tools)
    assert "en-core-web-md: 3.8.0 -> 3.8.1" in result.stdout
    assert "en-core-web-md==3.8.1" in (project / "requirements.txt").read_text()
    make(project, "install", *api_settings(releases), env=shared_tools)
    assert (
        venv_python(project, "import en_core_web_md; print(en_core_web_md.load().meta['version'])").strip() == "3.8.1"
    )


def test_a_model_for_another_spacy_is_refused_before_anything_is_installed(
    project: Path, releases: Mirror, mirror: Mirror, wheels: dict
) -> None:
    requirements = project / "requirements.in"
    base = requirements.read_text()
    requirements.write_text(base + "en_core_web_sm>=3.7,<3.8\n")
    result = make(project, "install", *api_settings(releases), check=False)
    assert result.returncode != 0 and "en_core_web_sm is also in requirements-model.in.url" in result.stderr

    (project / "requirements-model.in.url").write_text("# no exact model\n")
    result = make(project, "install", *api_settings(releases), check=False)
    assert result.returncode != 0
    assert "en_core_web_sm>=3.7,<3.8 allows 3.7.1, but none is built for spacy>=3.8,<3.9" in result.stderr
    assert not (project / ".venv").exists()

    requirements.write_text(base)
    old = wheels["sm-3.7.1"].name
    (project / "requirements-model.in.url").write_text(f"{mirror.download_base}/en_core_web_sm-3.7.1/{old}\n")
    result = make(project, "check-models", check=False)
    assert result.returncode != 0
    assert "en_core_web_sm 3.7.1 (requirements-model.in.url:1) needs spacy<3.8.0,>=3.7.0" in result.stderr
    assert "but this project uses spacy>=3.8,<3.9 (requirements.in:3)" in result.stderr
    assert not (project / ".venv").exists()


def test_check_models_reports_each_fitting_model(project: Path) -> None:
    result = make(project, "check-models")
    assert "check-models: en_core_web_sm==3.8.0 needs spacy<3.9.0,>=3.7.5: fits spacy>=3.8,<3.9" in result.stdout


@pytest.fixture
def squatter_index(wheels: dict) -> Iterator[Mirror]:
    """A package index that squats the model names: a higher version and same-version impostors."""
    index = Mirror()
    with MirrorServer(index):
        for model in (
            TinyModel("en_core_web_sm", "999.9.9"),
            TinyModel("en_core_web_sm", "3.8.0", requires=("six",)),
            TinyModel("en_core_web_md", "999.9.9"),
            TinyModel("en_core_web_md", "3.8.0", requires=("six",)),
        ):
            index.add_index_file(model.name.replace("_", "-"), build_tiny(model))
        yield index


def test_no_index_can_shadow_a_model(
    tmp_path: Path, installed: Installed, releases: Mirror, squatter_index: Mirror, wheels: dict, shared_tools: dict
) -> None:
    project = copy_project(installed.path, tmp_path / "proj")
    (project / "requirements.txt").unlink()  # a fresh resolution, with the squatted index configured
    (project / ".env").write_text(f"PIP_EXTRA_INDEX_URL={squatter_index.index_url}\n")
    requirements = project / "requirements.in"
    requirements.write_text(requirements.read_text() + "en_core_web_md>=3.8\n")

    make(project, "install", *api_settings(releases), env=shared_tools)
    assert any("/simple/" in r.path for r in squatter_index.since(0)), "the index was configured and consulted"
    lock = (project / "requirements.txt").read_text()
    for key, name in (("sm-3.8.0", "en-core-web-sm"), ("md-3.8.0", "en-core-web-md")):
        block = re.search(rf"^{name}==3\.8\.0 \\\n    --hash=sha256:(\w+)\n", lock, re.MULTILINE)
        assert block, f"{name} is not pinned to the mirror's 3.8.0 with a single hash"
        assert block.group(1) == hashlib.sha256(wheels[key].read_bytes()).hexdigest()
    assert "999.9.9" not in lock and "\nsix==" not in lock
    code = (
        "import spacy; sm, md = spacy.load('en_core_web_sm'), spacy.load('en_core_web_md');"
        "print(sorted({e.label_ for e in sm('Apple bought Acme in U.K.').ents}), md('Acme').ents[0].label_)"
    )
    labels = venv_python(project, code)
    assert "GPE" in labels and TinyModel("en_core_web_md", "3.8.0").marker in labels
    assert not [r for r in squatter_index.since(0) if r.path.startswith("/files/")], "no squatted file was fetched"

"""models/releases.py: the links page, from a GitHub-shaped releases API or a team's PEP 503 index, both on loopback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.http import Session, basic
from nlp_modeltools.models import releases
from nlp_modeltools.models.releases import LinksSource, ModelLink, ReleasesClient, write_links

API_PATH = "/repos/acme/models"
SHA = {name: char * 64 for name, char in (("a1", "1"), ("a2", "2"), ("b1", "3"))}


def link(name: str, version: str, sha256: str | None = None, suffix: str = "-py3-none-any.whl") -> ModelLink:
    filename = f"{name}-{version}{suffix}"
    return ModelLink(filename, f"https://h/{filename}", sha256)


def asset(served, filename: str, digest: str | None) -> dict:
    return {"name": filename, "browser_download_url": f"{served.url}/download/{filename}",
            "digest": f"sha256:{digest}" if digest else None}  # fmt: skip


def two_pages(served) -> list[object]:
    """Two API pages of releases, newest first, as GitHub answers: wheels with digests, an sdist, a non-model."""
    return [
        [{"tag_name": "en_a-2.0.0", "assets": [asset(served, "en_a-2.0.0-py3-none-any.whl", SHA["a2"]),
                                               asset(served, "notes.txt", None)]},
         {"tag_name": "en_b-1.0.0", "assets": [asset(served, "en_b-1.0.0.tar.gz", None)]}],
        [{"tag_name": "en_a-1.0.0", "assets": [asset(served, "en_a-1.0.0-py3-none-any.whl", SHA["a1"])]}],
    ]  # fmt: skip


def source(tmp_path: Path, served, index: str = "", token: bool = False) -> LinksSource:
    return LinksSource(tmp_path / "build" / "spacy_model_links.html", Session({}), index, Session({}),
                       served.url + API_PATH, token)  # fmt: skip


def test_the_links_page_lists_every_model_file_of_every_api_page(
    tmp_path: Path, served, capsys: pytest.CaptureFixture[str]
) -> None:
    served.add_api(f"{API_PATH}/releases", two_pages(served))
    links = write_links(source(tmp_path, served), ["en_a"])
    assert sorted((x.filename, x.sha256) for x in links) == [
        ("en_a-1.0.0-py3-none-any.whl", SHA["a1"]), ("en_a-2.0.0-py3-none-any.whl", SHA["a2"]),
        ("en_b-1.0.0.tar.gz", None),
    ]  # fmt: skip
    page = (tmp_path / "build" / "spacy_model_links.html").read_text()
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert hrefs == [f"{served.url}/download/en_a-1.0.0-py3-none-any.whl#sha256={SHA['a1']}",
                     f"{served.url}/download/en_a-2.0.0-py3-none-any.whl#sha256={SHA['a2']}",
                     f"{served.url}/download/en_b-1.0.0.tar.gz"], "sorted by name and version"  # fmt: skip
    assert [r.path for r in served.since()] == [f"{API_PATH}/releases?per_page=100",
                                                f"{API_PATH}/releases?per_page=100&page=2"]  # fmt: skip
    assert capsys.readouterr().out == (
        f"links: 3 model files from 2 API pages (2 read, 0 not modified since last time) -> {tmp_path}/build/"
        "spacy_model_links.html: written\n"
    )
    assert releases.read_links(tmp_path / "build" / "spacy_model_links.html") == sorted(
        links, key=lambda x: (x.filename.split("-")[0], Version(x.filename.split("-")[1].removesuffix(".tar.gz")))
    )


def test_a_second_run_asks_with_the_etags_and_reads_no_unchanged_page(
    tmp_path: Path, served, capsys: pytest.CaptureFixture[str]
) -> None:
    served.add_api(f"{API_PATH}/releases", two_pages(served))
    first = write_links(source(tmp_path, served), [])
    page = tmp_path / "build" / "spacy_model_links.html"
    stamp = page.stat().st_mtime_ns
    mark, _ = served.mark(), capsys.readouterr()
    assert write_links(source(tmp_path, served), []) == first
    again = served.since(mark)
    assert [r.status for r in again] == [304, 304] and all(r.headers.get("If-None-Match") for r in again)
    assert capsys.readouterr().out.endswith("from 2 API pages (0 read, 2 not modified since last time) -> "
                                            f"{page}: the same as before, left as it was\n")  # fmt: skip
    assert page.stat().st_mtime_ns == stamp


def test_a_new_release_is_read_from_the_page_that_changed(tmp_path: Path, served) -> None:
    pages = two_pages(served)
    served.add_api(f"{API_PATH}/releases", pages)
    write_links(source(tmp_path, served), [])
    pages[0].insert(0, {"tag_name": "en_b-1.1.0", "assets": [asset(served, "en_b-1.1.0-py3-none-any.whl", SHA["b1"])]})  # type: ignore[attr-defined]
    mark = served.mark()
    links = write_links(source(tmp_path, served), [])
    assert [r.status for r in served.since(mark)] == [200, 304]
    assert "en_b-1.1.0-py3-none-any.whl" in {x.filename for x in links}
    cache = json.loads((tmp_path / "build" / "spacy_model_links.json").read_text())
    assert cache["api"] == served.url + API_PATH and len(cache["pages"]) == 2


def test_a_used_up_rate_limit_says_when_it_resets_and_how_to_raise_it(tmp_path: Path, served) -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1900000000", "x-ratelimit-limit": "60"}
    served.add_page(f"{API_PATH}/releases", '{"message": "API rate limit exceeded"}', "application/json", 403, headers)
    with pytest.raises(UserError) as refused:
        write_links(source(tmp_path, served), [])
    assert re.fullmatch(
        rf"GitHub's API rate limit \(60 requests an hour\) is used up for {re.escape(served.url + API_PATH)}"
        r"/releases\?per_page=100; it resets at 2030-03-17 17:46 UTC \(in \d+ min\)\. Set GITHUB_TOKEN in \.env \(a "
        r"token with no scopes will do\) to raise the limit to 5000 an hour",
        str(refused.value),
    )
    assert not (tmp_path / "build" / "spacy_model_links.html").exists()


def test_a_refused_token_is_named(tmp_path: Path, served) -> None:
    served.add_page(f"{API_PATH}/releases", '{"message": "Bad credentials"}', "application/json", 401)
    with pytest.raises(UserError) as refused:
        write_links(source(tmp_path, served, token=True), [])
    assert str(refused.value) == (
        f"the releases API refused GITHUB_TOKEN (HTTP 401 from {served.url}{API_PATH}/releases?per_page=100): fix it "
        "in .env, or unset it"
    )


@pytest.mark.parametrize(
    ("body", "next_page", "message"),
    [
        ("[]", "{other}/repos/acme/models/releases?page=2", "the releases API's next page {other}/repos/acme/models/"
                                                            "releases?page=2 is on another host: not followed"),
        ("[]", "{url}/repos/acme/models/releases?per_page=100", "the releases API's pages loop back to {url}/repos/"
                                                                "acme/models/releases?per_page=100: check "
                                                                "SPACY_MODELS_API"),
        ("<html>busy</html>", None, "the releases API answered {url}/repos/acme/models/releases?per_page=100 with "
                                    "something that is not JSON"),
        ('{"message": "Not Found"}', None, "the releases API answered {url}/repos/acme/models/releases?per_page=100 "
                                           "with a JSON dict, not a list of releases: 'Not Found'"),
    ],
)  # fmt: skip
def test_a_hostile_or_broken_api_ends_in_one_line(
    tmp_path: Path, served, body: str, next_page: str | None, message: str
) -> None:
    headers = {"Link": f'<{next_page.format(url=served.url, other=served.other_url)}>; rel="next"'} if next_page else {}
    served.add_page(f"{API_PATH}/releases", body, "application/json", 200, headers)
    with pytest.raises(UserError) as refused:
        ReleasesClient(Session({}), served.url + API_PATH, tmp_path / "cache.json", False).links()
    assert str(refused.value) == message.format(url=served.url, other=served.other_url)


def test_api_answers_of_the_wrong_shape_end_in_one_line() -> None:
    with pytest.raises(UserError, match="with a JSON dict, not a list of releases: 'Bad credentials'"):
        releases.assets_of({"message": "Bad credentials"}, "https://api.example/releases")
    answer = [
        {"assets": [{"name": None}, {"name": "a-1.0-py3-none-any.whl", "browser_download_url": "javascript:x"}]},
        {"assets": "nope"},
        "not a release",
        {"assets": [{"name": "b-1.0-py3-none-any.whl", "browser_download_url": "https://h/b", "digest": "md5:1"}]},
    ]
    assert releases.assets_of(answer, "u") == [["b-1.0-py3-none-any.whl", "https://h/b", None]]


def test_the_links_page_escapes_hostile_names_and_reads_back() -> None:
    hostile = ModelLink('x"><script>-1.0-py3-none-any.whl', 'https://h/a"b.whl', "c" * 64)
    page = releases.render_page([hostile, link("en_acme_ner", "1.0.0")])
    assert 'x"><script>' not in page and "x&quot;&gt;&lt;script&gt;-1.0" in page and 'a"b' not in page
    back = releases.links_in_page(page, "file:///x")
    assert {(b.filename, b.url) for b in back} == {
        ('a"b.whl', hostile.url),
        ("en_acme_ner-1.0.0-py3-none-any.whl", "https://h/en_acme_ner-1.0.0-py3-none-any.whl"),
    }


def test_a_wheel_wins_over_the_sdist_of_the_same_release() -> None:
    links = [link("en_a", "1.0.0", suffix=".tar.gz"), link("en_a", "1.0.0"), link("en_a", "0.9.0", suffix=".tar.gz"),
             link("en_b", "1.0.0")]  # fmt: skip
    found = releases.releases_of("en-a", links)  # type: ignore[arg-type]
    assert {str(v): x.filename for v, x in found.items()} == {
        "1.0.0": "en_a-1.0.0-py3-none-any.whl", "0.9.0": "en_a-0.9.0.tar.gz",
    }  # fmt: skip


# ---- a team's index


def test_a_team_index_gives_its_files_without_credentials_and_leaves_out_other_hosts(
    tmp_path: Path, served, sha256, make_wheel, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = make_wheel(tmp_path, "en_a", "1.0.0")
    served.require("/simple/", basic("team", "s3cret"))
    served.add_page("/simple/en-a/", f'<a href="../../files/en_a-1.0.0-py3-none-any.whl#sha256={sha256(wheel)}">x</a>'
                                     '<a href="../../files/en_a-0.9.0.zip">old</a>')  # fmt: skip
    served.add_redirect("/simple/en-c/", f"{served.other_url}/pypi/en-c/")  # pypiserver's fallback, say
    served.add_page("/pypi/en-c/", '<a href="/files/en_c-1.0.0-py3-none-any.whl">x</a>')
    index = served.with_userinfo("team:s3cret", "/simple")
    links = write_links(source(tmp_path, served, index=index), ["En.A", "en_b", "en_c"])
    assert links == [ModelLink("en_a-1.0.0-py3-none-any.whl", f"{served.url}/files/en_a-1.0.0-py3-none-any.whl",
                               sha256(wheel))]  # fmt: skip
    assert [(r.path, r.status) for r in served.requests_to(served.url)] == [
        ("/simple/en-a/", 200), ("/simple/en-b/", 404), ("/simple/en-c/", 302),
    ]  # fmt: skip
    out = capsys.readouterr().out
    other = served.other_url.removeprefix("http://")
    assert out.startswith(f"links: the team index sends en-c to {other}, another host: left out\n")
    assert (
        f"links: 1 model files from the team index http://****@{served.url.removeprefix('http://')}/simple -> " in out
    )
    assert "s3cret" not in (tmp_path / "build" / "spacy_model_links.html").read_text()

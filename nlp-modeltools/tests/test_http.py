"""core/http.py: sessions as pip has them, credentials by origin, one-line failures, against real loopback servers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from nlp_modeltools.core import http
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.http import Credential, Session, basic, credentials_from_urls, get, origin, without_userinfo

WHAT = "downloading m.whl"


def bearer(tokens: dict[str, str]) -> Session:
    return Session({origin(url): Credential(f"Bearer {token}", "a test token") for url, token in tokens.items()})


def hub_session(served, token: str | None) -> Session:
    """The session make models uses for a Hub at served.url: HF_TOKEN for it alone, and the advice for a 401."""
    hub = origin(served.url)
    credentials = {hub: Credential(f"Bearer {token}", "HF_TOKEN in .env")} if token else {}
    return Session(credentials, {hub: "set HF_TOKEN in .env to a token with access to this repository"})


def test_an_origin_is_scheme_host_and_port_with_the_default_ports() -> None:
    assert origin("HTTPS://u:p@Example.org/x") == ("https", "example.org", 443)
    assert origin("http://example.org:8080/x") == ("http", "example.org", 8080)
    assert origin("http://example.org/x") == ("http", "example.org", 80)
    with pytest.raises(UserError) as refused:
        origin("https://user:secret@example.org:99999/x")
    assert str(refused.value) == "https://****@example.org:99999/x is not a valid URL (bad port): fix the URL"


def test_without_userinfo_drops_credentials_and_on_request_the_query() -> None:
    url = "https://u:p@h/a/m.whl?token=t#sha256=abc"
    assert without_userinfo(url) == "https://h/a/m.whl?token=t#sha256=abc"
    assert without_userinfo(url, keep_query=False) == "https://h/a/m.whl"


def test_each_url_with_user_info_gives_a_basic_credential_for_its_origin() -> None:
    found = credentials_from_urls({"SPACY_MODELS_URL": "https://ci:t%40k@mirror.example/m", "SPACY_MODELS_INDEX": ""})
    assert found == {
        ("https", "mirror.example", 443): Credential(basic("ci", "t@k"), "the user-info of SPACY_MODELS_URL in .env")
    }


def test_a_credential_goes_to_its_own_origin_only(served) -> None:
    served.add_file("/x", b"x")
    session = bearer({served.url: "for-main"})
    get(session, served.url + "/x", WHAT)
    get(session, served.other_url + "/x", WHAT)
    assert [r.authorization for r in served.requests_to(served.url)] == ["Bearer for-main"]
    assert [r.authorization for r in served.requests_to(served.other_url)] == [None]


def test_a_url_s_own_user_info_is_sent_as_basic_auth(served) -> None:
    served.add_file("/x", b"x")
    get(Session({}), served.with_userinfo("team:s3cret", "/x"), WHAT)
    assert [r.authorization for r in served.since()] == [basic("team", "s3cret")]


def test_netrc_gives_credentials_as_pip_reads_them(served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login team password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    served.add_file("/x", b"x")
    served.require("/private/", basic("team", "right"))
    get(Session({}), served.url + "/x", WHAT)
    assert [r.authorization for r in served.since()] == [basic("team", "from-netrc")]
    with pytest.raises(UserError) as refused:
        get(Session({}), served.url + "/private/m.whl", WHAT)
    port = served.url.rsplit(":", 1)[1]
    assert str(refused.value) == f"{WHAT}: 127.0.0.1:{port} refused the credentials from {netrc} (HTTP 401): fix them"


def test_basic_credentials_are_dropped_on_a_cross_origin_redirect(served) -> None:
    served.add_file("/download/m.whl", b"wheel")
    served.add_redirect("/start", served.other_url + "/download/m.whl")
    get(Session({}), served.with_userinfo("team:s3cret", "/start"), WHAT)
    (start,) = served.requests_to(served.url)
    (other,) = served.requests_to(served.other_url)
    assert start.authorization == basic("team", "s3cret") and other.authorization is None


def test_a_bearer_token_is_dropped_on_a_cross_origin_redirect(served) -> None:
    served.add_file("/download/m.whl", b"wheel")
    url = served.add_redirect("/start", served.other_url + "/download/m.whl")
    assert get(bearer({served.url: "ghp_token"}), url, WHAT).content == b"wheel"
    assert [r.authorization for r in served.requests_to(served.url)] == ["Bearer ghp_token"]
    assert [r.authorization for r in served.requests_to(served.other_url)] == [None]


def test_credentials_are_kept_on_a_same_origin_redirect(served) -> None:
    served.add_file("/download/m.whl", b"wheel")
    served.add_redirect("/start", served.url + "/download/m.whl")
    get(Session({}), served.with_userinfo("team:s3cret", "/start"), WHAT)
    first, second = served.since()
    assert first.authorization == second.authorization == basic("team", "s3cret")


def test_the_other_origin_gets_its_own_credentials(served) -> None:
    served.add_file("/download/m.whl", b"wheel")
    url = served.add_redirect("/start", served.other_url + "/download/m.whl")
    get(bearer({served.url: "for-main", served.other_url: "for-cdn"}), url, WHAT)
    assert [r.authorization for r in served.since()] == ["Bearer for-main", "Bearer for-cdn"]


def test_a_hub_token_never_reaches_the_cdn(served) -> None:
    served.require("/acme/", "Bearer hf_secret")
    served.refuse_credentials("/cdn/")
    served.add_file("/cdn/abc/m.whl", b"wheel")
    url = served.add_redirect("/acme/models/resolve/main/m.whl", served.other_url + "/cdn/abc/m.whl")
    assert get(hub_session(served, "hf_secret"), url, WHAT).content == b"wheel"
    (hub,) = served.requests_to(served.url)
    (cdn,) = served.requests_to(served.other_url)
    assert (hub.authorization, hub.status) == ("Bearer hf_secret", 302)
    assert (cdn.authorization, cdn.status) == (None, 200)


def test_401_names_the_host_and_the_variable_never_the_token(served) -> None:
    served.require("/acme/", "Bearer hf_right")
    url = served.url + "/acme/models/resolve/main/m.whl"
    host = served.url.removeprefix("http://")
    with pytest.raises(UserError) as refused:
        get(hub_session(served, None), url, WHAT)
    assert (
        str(refused.value)
        == f"{WHAT}: HTTP 401 from {host}: set HF_TOKEN in .env to a token with access to this repository"
    )
    with pytest.raises(UserError) as refused:
        get(hub_session(served, "hf_wrong_secret"), url, WHAT)
    assert str(refused.value) == f"{WHAT}: {host} refused the credentials from HF_TOKEN in .env (HTTP 401): fix them"
    assert len(served.since()) == 2, "a 401 is not retried"


def test_401_without_credentials_names_the_three_ways_to_give_them(served) -> None:
    served.require("/private/", basic("team", "right"))
    host = served.url.removeprefix("http://")
    with pytest.raises(UserError) as refused:
        get(Session({}), served.url + "/private/m.whl", WHAT)
    assert str(refused.value) == (
        f"{WHAT}: HTTP 401 from {host}: it wants credentials. Give them in one of three ways: a line "
        "`machine 127.0.0.1 login USER password TOKEN` in ~/.netrc (or the file NETRC names); in .env, "
        f"SPACY_MODELS_URL with them (http://, then USER:TOKEN@{host}/…), sent to {host} only, for every URL there; "
        "or a line relative to that SPACY_MODELS_URL"
    )


def test_503_is_retried_after_the_time_retry_after_asks(served) -> None:
    url = served.add_file("/download/m.whl", b"wheel")
    served.fault(url, fail=1, fail_status=503, retry_after="1")
    started = time.monotonic()
    assert get(Session({}), url, WHAT).content == b"wheel"
    assert time.monotonic() - started >= 0.9
    assert [r.status for r in served.since()] == [503, 200]


def test_redirect_loops_and_chains_end_in_a_clear_error(served) -> None:
    served.add_redirect("/a", f"{served.url}/b")
    url = served.add_redirect("/b", f"{served.url}/a")
    with pytest.raises(UserError, match=rf"^downloading m.whl: {re.escape(url)} redirects more than 10 times"):
        get(Session({}), url, WHAT)
    for number in range(12):
        served.add_redirect(f"/hop{number}", f"{served.url}/hop{number + 1}")
    with pytest.raises(UserError, match=r"redirects more than 10 times \(a loop\?\): check the URL or the server$"):
        get(Session({}), f"{served.url}/hop0", WHAT)


def test_a_redirect_to_another_scheme_is_named(served) -> None:
    url = served.add_redirect("/start", "ftp://files.example/m.whl")
    with pytest.raises(UserError, match=r"leads to a URL that is not http\(s\): check the URL$"):
        get(Session({}), url, WHAT)


def test_the_callers_advice_ends_a_4xx_message(served) -> None:
    served.add_page("/gone", "gone", status=410)
    with pytest.raises(UserError) as refused:
        get(Session({}), served.url + "/gone", "the team index failed", fix="check SPACY_MODELS_INDEX")
    assert (
        str(refused.value) == f"the team index failed: HTTP 410 Gone from {served.url}/gone: check SPACY_MODELS_INDEX"
    )


def test_statuses_the_caller_handles_are_returned(served) -> None:
    assert get(Session({}), served.url + "/missing", WHAT, ok=(404,)).status_code == 404


def test_a_session_takes_ssl_cert_file_as_pip_does(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    assert Session({}).verify == str(tmp_path / "ca.pem")
    assert Session({}).headers["User-Agent"] == http.USER_AGENT

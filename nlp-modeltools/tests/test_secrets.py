"""core/secrets.py: required variables, a private source asked once (a real loopback server), leaks found by line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.http import Session, basic
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.core.secrets import check_no_leaks, check_private_sources, find_leaks, require_variables

SECRETS = [("PRODIGY_KEY", "k-12345678")]


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git project: a tracked file holding the secret on line 2, an untracked one, and .env itself."""
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / ".env").write_text("PRODIGY_KEY=k-12345678\n")
    (root / "src" / "app.py").write_text("import os\nKEY = 'k-12345678'\n")
    (root / "notes.txt").write_text("k-12345678\n")
    git(root, "init", "-q")
    git(root, "add", ".env", "src/app.py")
    return root


def test_a_secret_in_a_tracked_file_is_named_by_file_line_and_variable(project: Path) -> None:
    assert find_leaks(project, project / ".env", SECRETS, []) == ["src/app.py:2 holds the value of PRODIGY_KEY"]


def test_extra_files_are_read_too_and_untracked_ones_are_not(project: Path, tmp_path: Path) -> None:
    (project / "requirements.txt").write_text("a==1\n--extra-index-url https://ci:k-12345678@h/simple\n")
    outside = tmp_path / "bundle.toml"
    outside.write_text("k-12345678")
    leaks = find_leaks(project, project / ".env", SECRETS, [project / "requirements.txt", outside, tmp_path / "nope"])
    assert leaks == [
        "src/app.py:2 holds the value of PRODIGY_KEY",
        "requirements.txt:2 holds the value of PRODIGY_KEY",
        f"{outside}:1 holds the value of PRODIGY_KEY",
    ]


def test_outside_git_every_file_but_venvs_and_build_is_read(tmp_path: Path) -> None:
    for name in ("a.txt", ".venv/lib/x.py", "build/wheels/x.txt", "sub/b.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("the key: k-12345678\n")
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe k-12345678")
    leaks = find_leaks(tmp_path, tmp_path / ".env", SECRETS, [])
    assert sorted(leaks) == ["a.txt:1 holds the value of PRODIGY_KEY", "sub/b.txt:1 holds the value of PRODIGY_KEY"]


def test_check_no_leaks_names_every_place_and_what_to_do(project: Path) -> None:
    with pytest.raises(UserError) as leaked:
        check_no_leaks(Paths(project), SECRETS)
    assert str(leaked.value) == (
        "a secret from .env is in a file git tracks (or in requirements.txt): src/app.py:2 holds the value of "
        "PRODIGY_KEY. Remove it from there, rotate it, and keep it in .env only"
    )
    assert "k-12345678" not in str(leaked.value)
    check_no_leaks(Paths(project), [])


def test_a_required_variable_missing_with_no_env_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(UserError) as missing:
        require_variables(["PRODIGY_KEY"], {}, tmp_path / ".env")
    assert str(missing.value) == (
        ".env is missing, and PRODIGY_KEY must be set for a private package: cp .env.example .env && chmod 600 .env, "
        "then set PRODIGY_KEY in it"
    )


def test_a_required_variable_empty_in_env_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PRODIGY_KEY=\n")
    with pytest.raises(UserError) as missing:
        require_variables(["OTHER", "PRODIGY_KEY"], {"OTHER": "set", "PRODIGY_KEY": "  "}, tmp_path / ".env")
    assert str(missing.value) == "PRODIGY_KEY is empty: set it in .env (see .env.example); a private package needs it"
    require_variables(["PRODIGY_KEY"], {"PRODIGY_KEY": "k"}, tmp_path / ".env")


def test_a_private_source_that_refuses_its_key_is_named_before_any_resolver(served) -> None:
    served.require("/private/", basic("ci", "right-key"))
    served.add_page("/private/simple/", "<html></html>")
    refused = served.with_userinfo("ci:k-12345678", "/private/simple/")
    environ = {"PIP_EXTRA_INDEX_URL": f"{served.url}/public {refused}"}
    with pytest.raises(UserError) as caught:
        check_private_sources(Session({}), environ, SECRETS)
    assert str(caught.value) == (
        f"127.0.0.1 refused the credentials in PIP_EXTRA_INDEX_URL (HTTP 401 from "
        f"http://****@{served.url.removeprefix('http://')}/private/simple/): check PRODIGY_KEY and "
        "PIP_EXTRA_INDEX_URL in .env"
    )
    assert [r.path for r in served.since()] == ["/private/simple/"], "sources without credentials are not asked"


def test_a_private_source_that_accepts_its_key_passes(served) -> None:
    served.require("/private/", basic("ci", "k-12345678"))
    served.add_page("/private/links.html", "<html></html>")
    check_private_sources(Session({}), {"UV_FIND_LINKS": served.with_userinfo("ci:k-12345678", "/private/links.html")},
                          SECRETS)  # fmt: skip
    assert [r.status for r in served.since()] == [200]

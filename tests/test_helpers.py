"""The generated project's helper modules, imported directly (no make, no network): the rules they own."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from nlp_modeltools.core import envfile
from nlp_modeltools.core.errors import Redactor, UserError
from nlp_modeltools.core.files import HashCache, write_atomic
from nlp_modeltools.core.platforms import manylinux_tags
from nlp_modeltools.lock import lockfile
from nlp_modeltools.lock.resolve import uv_environment
from nlp_modeltools.models import inputs, ranges, releases
from nlp_modeltools.models.wheels import expected_identity, spacy_fits

GITHUB = "https://github.com/explosion/spacy-models/releases/download"


# ---- .env


def test_env_lines_read_as_make_reads_them() -> None:
    text = "# settings\nexport A=one\nB := $(A)-two\nC=${B}\\#3$$\n\n  # indented comment\nD?=x y\n"
    values = envfile.expand(envfile.parse(text), environ={})
    assert values == {"A": "one", "B": "one-two", "C": "one-two#3$", "D": "x y"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("KEY=abc#def", "holds a '#'"),
        ('KEY="abc"', "is quoted"),
        ("KEY='abc'", "is quoted"),
        ("KEY=abc ", "ends with spaces"),
        ("KEY=ab$c", "holds a '$'"),
        ("KEY=$(shell rm -rf /)", "holds a '$'"),
        ("KEY=abc\\", "ends with \\"),
        ("KEY=a\x07b", "control character"),
        ("target: ; echo hi", "is not a NAME=value line"),
        ("define KEY", "is not a NAME=value line"),
    ],
)
def test_env_lines_make_would_misread_are_refused_by_name_never_value(line: str, problem: str) -> None:
    with pytest.raises(UserError) as caught:
        envfile.parse(f"# x\n{line}\n", ".env")
    message = str(caught.value)
    assert ".env:2" in message and problem in message
    if line.startswith("KEY"):
        assert "KEY" in message and line.split("=", 1)[1].strip("\"' \\") not in message


def test_secret_values_are_named_variables_and_url_credentials() -> None:
    values = {"PRODIGY_KEY": "k-1234", "PIP_EXTRA_INDEX_URL": "https://ci:tok-5678@h/simple", "PYTHON": "python3"}
    assert sorted(envfile.secret_values(values)) == [("PIP_EXTRA_INDEX_URL", "tok-5678"), ("PRODIGY_KEY", "k-1234")]
    redact = Redactor(["tok-5678"])
    assert redact("see https://ci:tok-5678@h/simple and tok-5678") == "see https://****@h/simple and ****"


# ---- model lists


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_wheel_lines_resolve_relative_mirrored_and_local(tmp_path: Path) -> None:
    (tmp_path / "own-1.0-py3-none-any.whl").write_bytes(b"")
    urls = write(
        tmp_path,
        "requirements-model.in.url",
        "# models\n"
        "en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl\n"
        f"{GITHUB}/en_core_web_md-3.8.0/en_core_web_md-3.8.0-py3-none-any.whl#sha256={'a' * 64}  # pinned\n"
        "./own-1.0-py3-none-any.whl\n",
    )
    sources = inputs.read_wheel_sources(urls, "http://mirror.example/models")
    assert [s.url for s in sources[:2]] == [
        "http://mirror.example/models/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl",
        "http://mirror.example/models/en_core_web_md-3.8.0/en_core_web_md-3.8.0-py3-none-any.whl",
    ]
    assert sources[1].sha256 == "a" * 64 and sources[2].local and sources[2].name == "own"
    assert [s.where for s in sources] == [f"requirements-model.in.url:{n}" for n in (2, 3, 4)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("http://h/x/..%2F..%2Fevil-1.0-py3-none-any.whl", "is not a plain file name"),
        ("http://h/x/%2Fetc%2Fevil-1.0-py3-none-any.whl", "is not a plain file name"),
        ("http://h/x/evil%0a-1.0-py3-none-any.whl", "is not a plain file name"),
        ("http://h/x/model-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "built for one platform"),
        ("http://h/x/notes.txt", "is neither a wheel"),
        ("http://h/x/a b-1.0-py3-none-any.whl", "a URL has no spaces"),
        ("http://h/x/m-1.0-py3-none-any.whl#md5=abc", "unsupported URL fragment"),
        ("ftp://h/x/m-1.0-py3-none-any.whl", "ftp: URLs are not supported"),
    ],
)
def test_wheel_lines_refuse_what_could_escape_build(tmp_path: Path, line: str, message: str) -> None:
    urls = write(tmp_path, "requirements-model.in.url", line + "\n")
    with pytest.raises(UserError, match=message):
        inputs.read_wheel_sources(urls, GITHUB)


def test_hub_wheel_names_promise_the_project_only() -> None:
    assert expected_identity("en_acme_ner-any-py3-none-any.whl", "x") == ("en-acme-ner", None)
    assert expected_identity("en_acme_ner-1.0.0rc1-py3-none-any.whl", "x") == ("en-acme-ner", Version("1.0.0rc1"))


def test_range_lines_are_pep_508_names_with_specifiers_and_markers(tmp_path: Path) -> None:
    ranges_file = write(tmp_path, "r", "en_acme_ner~=1.2\nxx_sent_ud_sm>=3.8.0rc1; python_version >= '3'\n")
    found = inputs.read_range_sources(ranges_file)
    assert [(s.name, str(s.requirement.specifier)) for s in found] == [
        ("en-acme-ner", "~=1.2"),
        ("xx-sent-ud-sm", ">=3.8.0rc1"),
    ]
    for bad in ("en_acme_ner[extra]>=1\n", "en_acme_ner @ https://h/x.whl\n", "not a requirement!\n"):
        with pytest.raises(UserError):
            inputs.read_range_sources(write(tmp_path, "bad", bad))


def test_a_model_named_in_requirements_in_or_its_includes_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "requirements-model.in", "en_acme_ner==1.0.0\n")
    write(tmp_path, "extra.in", "rich\nEn.Acme-NER>=1\n")
    requirements = write(tmp_path, "requirements.in", "spacy>=3.8,<3.9\n-r requirements-model.in\n-r extra.in\n")
    with pytest.raises(UserError, match=r"extra.in:2 names En.Acme-NER|extra.in:2 names en-acme-ner"):
        inputs.check_no_model_by_name(requirements, tmp_path / "requirements-model.in", ["en-acme-ner"])
    inputs.check_no_model_by_name(requirements, tmp_path / "requirements-model.in", ["de-contracts-lg"])


# ---- spaCy fit, ranges


@pytest.mark.parametrize(
    ("model", "project", "locked", "fits"),
    [
        (">=3.8.0,<3.9.0", ">=3.8,<3.9", None, True),
        (">=3.7.0,<3.8.0", ">=3.8,<3.9", None, False),
        (">3.8,<3.9", ">3.8.1,<3.8.5", None, True),
        ("<3.9.0,>=3.7.5", ">=3.8,<3.9", "3.8.7", True),
        (">=3.8.0,<3.8.5", ">=3.8,<3.9", "3.8.7", False),
        (">=3.8.0rc1,<3.9", ">=3.8,<3.9", None, True),
        ("~=3.7.0", ">=3.8,<3.9", None, False),
    ],
)
def test_a_model_fits_when_its_spacy_range_admits_the_projects(
    model: str, project: str, locked: str | None, fits: bool
) -> None:
    assert spacy_fits(SpecifierSet(model), SpecifierSet(project), Version(locked) if locked else None) is fits


def link(name: str, version: str) -> releases.ModelLink:
    filename = f"{name}-{version}-py3-none-any.whl"
    return releases.ModelLink(filename, f"https://h/{filename}", None)


def test_range_candidates_follow_pep_440_pre_release_rules() -> None:
    def newest(spec: str, versions: list[str]) -> list[str]:
        source = inputs.RangeSource(Requirement(f"en_acme_ner{spec}"), "r:1")
        return [str(v) for v, _ in ranges.candidates(source, [link("en_acme_ner", v) for v in versions])]

    assert newest(">=1.0", ["1.0.0", "1.1.0rc1", "1.0.1"]) == ["1.0.1", "1.0.0"]
    assert newest(">=1.1.0rc1", ["1.0.0", "1.1.0rc1"]) == ["1.1.0rc1"]
    assert newest("==1.0.0.post1", ["1.0.0", "1.0.0.post1"]) == ["1.0.0.post1"]
    assert newest("<2", ["0.9", "2.0.0"]) == ["0.9"]


# ---- the releases API and the links page


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
    hostile = releases.ModelLink('x"><script>-1.0-py3-none-any.whl', 'https://h/a"b.whl', "c" * 64)
    page = releases.render_page([hostile, link("en_acme_ner", "1.0.0")])
    assert 'x"><script>' not in page and "x&quot;&gt;&lt;script&gt;-1.0" in page and 'a"b' not in page
    back = releases.links_in_page(page, "file:///x")
    assert {(b.filename, b.url) for b in back} == {
        ('a"b.whl', hostile.url),
        ("en_acme_ner-1.0.0-py3-none-any.whl", "https://h/en_acme_ner-1.0.0-py3-none-any.whl"),
    }


# ---- the lock


DRAFT = """\
# This file was autogenerated by uv via the following command:
#    make lock
en-acme-ner @ file:///tmp/p/build/en_acme_ner-1.0.0-py3-none-any.whl \\
    --hash=sha256:aaaa
    # via -r requirements.in
spacy==3.8.7 \\
    --hash=sha256:bbbb \\
    --hash=sha256:cccc
    # via
    #   -r requirements.in
    #   -r ../../extra.in
    #   en-acme-ner
"""


def test_a_draft_becomes_a_lock_with_models_pinned_to_their_file() -> None:
    lock = lockfile.finish(DRAFT, {"en-acme-ner": ("en_acme_ner==1.0.0", "f" * 64)}, lockfile.UNIVERSAL)  # type: ignore[dict-item]
    text = lock.render("d" * 64)
    assert lockfile.parse(text).universal and f"{lockfile.SCOPE_PREFIX}{lockfile.UNIVERSAL}\n" in text
    model_block = f"en_acme_ner==1.0.0 \\\n    --hash=sha256:{'f' * 64}\n    # via -r requirements-model.in\n"
    assert text.endswith(f"{lockfile.MODELS_HEADER}\n{model_block}")
    assert "#   -r extra.in" in text and "../../" not in text and "file:" not in text
    assert lockfile.problems(lock, text) == []
    assert lockfile.parse(text).version_of("spacy") == Version("3.8.7")


def test_an_unsafe_lock_is_named() -> None:
    text = "--extra-index-url https://u:p@h/simple\nrich==1 \\\n    --hash=sha256:aa\nfoo>=1\nbar @ file:///x.whl\n"
    found = lockfile.problems(lockfile.parse(text), text)
    assert any("names a package source" in p for p in found)
    assert any("foo>=1 is not pinned" in p for p in found) and any("foo>=1 has no --hash" in p for p in found)
    assert any("local path or a URL with credentials" in p for p in found)


def test_changes_name_each_moved_package_and_each_replaced_file() -> None:
    old = lockfile.parse(
        "a==1 \\\n    --hash=sha256:x\nb==1 \\\n    --hash=sha256:x\nm==1 \\\n    --hash=sha256:aaaa\n"
    )
    new = lockfile.parse(
        "a==2 \\\n    --hash=sha256:y\nc==1 \\\n    --hash=sha256:z\nm==1 \\\n    --hash=sha256:bbbb\n"
    )
    assert lockfile.changes(old, new, {"m": "https://x/m-1-py3-none-any.whl"}) == [
        "  a: 1 -> 2", "  b: 1 -> (removed)", "  c: (new) -> 1",
        "  m 1: file changed, sha256 aaaa… -> bbbb… (from https://x/m-1-py3-none-any.whl)",
    ]  # fmt: skip


# ---- files, installers, images


def test_the_hash_cache_sees_a_same_size_edit_with_the_old_mtime(tmp_path: Path) -> None:
    path = tmp_path / "model.whl"
    path.write_bytes(b"A" * 1000)
    cache = HashCache(tmp_path / "cache.json")
    first = cache.sha256(path)
    stamp = path.stat()
    time.sleep(0.01)
    with path.open("r+b") as handle:
        handle.write(b"B")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size == stamp.st_size and path.stat().st_mtime_ns == stamp.st_mtime_ns
    assert cache.sha256(path) != first


def test_committed_files_follow_the_umask_and_private_ones_do_not(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "requirements.txt", "x\n")
        write_atomic(tmp_path / "secret", "x\n", private=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "requirements.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requirements.txt", "secret"], "no temporary file left"


def test_pip_sources_reach_uv_under_its_names() -> None:
    env = uv_environment({"PIP_FIND_LINKS": "https://a/l.html /opt/wheels", "PIP_EXTRA_INDEX_URL": "https://x/s"})
    assert env["UV_FIND_LINKS"] == "https://a/l.html,/opt/wheels" and env["UV_EXTRA_INDEX_URL"] == "https://x/s"
    assert (
        uv_environment({"PIP_INDEX_URL": "https://pip", "UV_INDEX_URL": "https://uv"})["UV_INDEX_URL"] == "https://uv"
    )


def test_manylinux_tags_name_every_older_glibc() -> None:
    tags = manylinux_tags("2.28", "aarch64")
    assert tags[0] == "manylinux_2_28_aarch64" and "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert "manylinux1_aarch64" not in tags and "manylinux1_x86_64" in manylinux_tags("2.28", "x86_64")


# ---- the wheelhouse


def test_lock_entries_for_another_platform_are_not_needed(tmp_path: Path) -> None:
    from nlp_modeltools.core.files import HashCache
    from nlp_modeltools.ship.wheelhouse import Wheelhouse

    lock = lockfile.parse(
        'rich==13.0 \\\n    --hash=sha256:aa\nappnope==0.1.4 ; sys_platform == "darwin" \\\n    --hash=sha256:bb\n'
    )
    house = Wheelhouse(tmp_path, HashCache(tmp_path / "cache.json"))
    assert [e.requirement for e in house.missing(lock)] == ["rich==13.0"]
    mac = {"sys_platform": "darwin"}
    assert [e.requirement for e in house.missing(lock, mac)] == [
        "rich==13.0",
        'appnope==0.1.4 ; sys_platform == "darwin"',
    ]


def test_a_source_distribution_is_refused_and_removed(tmp_path: Path) -> None:
    from nlp_modeltools.ship.wheelhouse import refuse_sources

    (tmp_path / "ok-1.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "needs_build-2.0.tar.gz").write_bytes(b"")
    with pytest.raises(UserError, match=re.escape("needs_build-2.0.tar.gz: pip found only the source")):
        refuse_sources(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok-1.0-py3-none-any.whl"]


def test_a_locked_model_never_goes_to_pip_by_name(tmp_path: Path) -> None:
    from nlp_modeltools.core.tools import Tools
    from nlp_modeltools.ship.wheelhouse import fill

    text = f"spacy==3.8.7 \\\n    --hash=sha256:aa\n\n{lockfile.MODELS_HEADER}\nen_acme_ner==1.0.0 \\\n"
    text += "    --hash=sha256:bb\n    # via -r requirements-model.in\n"
    message = "build/ has no file with the locked hash of en_acme_ner==1.0.0: run make models"
    with pytest.raises(UserError, match=re.escape(message)):
        fill(Tools(), HashCache(tmp_path / "c.json"), lockfile.parse(text), text, tmp_path / "wheels", models={})

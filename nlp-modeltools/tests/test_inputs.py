"""models/inputs.py: the project's model lists (.url, .range) and requirements.in's checks, line by line."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.models import inputs
from nlp_modeltools.models.inputs import GITHUB_RELEASES, mirror_url

GITHUB = "https://github.com/explosion/spacy-models/releases/download"
SHA = "a" * 64


def write(tmp_path: Path, name: str, text: str, newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def urls(tmp_path: Path, text: str, newline: str = "\n") -> list[inputs.WheelSource]:
    return inputs.read_wheel_sources(write(tmp_path, "requirements-model.in.url", text, newline), GITHUB)


def refused(call, *args) -> str:
    with pytest.raises(UserError) as caught:
        call(*args)
    return str(caught.value)


def test_wheel_lines_resolve_relative_mirrored_and_local(tmp_path: Path) -> None:
    (tmp_path / "own-1.0-py3-none-any.whl").write_bytes(b"")
    path = write(
        tmp_path,
        "requirements-model.in.url",
        "# models\n"
        "en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl\n"
        f"{GITHUB}/en_core_web_md-3.8.0/en_core_web_md-3.8.0-py3-none-any.whl#sha256={SHA}  # pinned\n"
        "./own-1.0-py3-none-any.whl\n",
    )
    sources = inputs.read_wheel_sources(path, "http://mirror.example/models")
    assert [s.url for s in sources[:2]] == [
        "http://mirror.example/models/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl",
        "http://mirror.example/models/en_core_web_md-3.8.0/en_core_web_md-3.8.0-py3-none-any.whl",
    ]
    assert sources[1].sha256 == SHA and sources[2].local and sources[2].name == "own"
    assert sources[2].path == tmp_path / "own-1.0-py3-none-any.whl"
    assert [s.where for s in sources] == [f"requirements-model.in.url:{n}" for n in (2, 3, 4)]


def test_a_crlf_file_reads_as_its_lf_twin(tmp_path: Path) -> None:
    text = f"# models\n{GITHUB}/a-1.0/en_a-1.0.0-py3-none-any.whl#sha256={SHA}\n\nen_b-2.0.0.tar.gz # sdist\n"
    lf = urls(tmp_path, text)
    crlf = urls(tmp_path, text, "\r\n")
    assert crlf == lf and [s.where for s in crlf] == ["requirements-model.in.url:2", "requirements-model.in.url:4"]
    assert crlf[0].sha256 == SHA and crlf[1].sdist and crlf[1].url == f"{GITHUB}/en_b-2.0.0.tar.gz"


def test_sha256_and_egg_fragments_are_read_and_checked(tmp_path: Path) -> None:
    (source,) = urls(tmp_path, f"{GITHUB}/x/en_a-1.0.0-py3-none-any.whl#egg=en_a==1.0.0&sha256={SHA}\n")
    assert (source.sha256, source.name, source.display_name) == (SHA, "en-a", "en_a")
    (plain,) = urls(tmp_path, f"{GITHUB}/x/en_a-1.0.0-py3-none-any.whl#egg=En.A\n")
    assert plain.sha256 is None


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
    with pytest.raises(UserError, match=message):
        urls(tmp_path, line + "\n")


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        (f"#sha256={'A' * 64}", f"requirements-model.in.url:1: unsupported URL fragment #sha256={'A' * 64}; write "
                                "#sha256=<64 lowercase hex digits>"),
        ("#egg=en_b==1.0.0", "requirements-model.in.url:1: #egg=en_b==1.0.0 does not name the file's model "
                             "(en_a-1.0.0-py3-none-any.whl): fix one of them"),
        ("#egg=en_a==2.0.0", "requirements-model.in.url:1: #egg=en_a==2.0.0 does not name the file's model "
                             "(en_a-1.0.0-py3-none-any.whl): fix one of them"),
    ],
)  # fmt: skip
def test_a_fragment_that_does_not_fit_the_file_is_named(tmp_path: Path, fragment: str, message: str) -> None:
    assert refused(urls, tmp_path, f"{GITHUB}/x/en_a-1.0.0-py3-none-any.whl{fragment}\n") == message


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        ("requirements-model.in.url", "en_core_web_sm==3.8.0", "requirements-model.in.url:1 is a model by name "
         "(en_core_web_sm==3.8.0), not a URL: move it to requirements-model.in.range (name==version works there), "
         "or write the URL of its wheel or sdist here"),
        ("requirements-model.in.range", f"{GITHUB}/x/en_a-1.0.0-py3-none-any.whl", "requirements-model.in.range:1 "
         "is a URL or a file: move it to requirements-model.in.url, which lists those"),
        ("requirements-model.in.range", "./en_a-1.0.0.tar.gz", "requirements-model.in.range:1 is a URL or a file: "
         "move it to requirements-model.in.url, which lists those"),
        ("requirements-model.in.url", "--find-links https://h/", "requirements-model.in.url:1 is a pip option "
         "(--find-links): model lists hold no options; remove the line"),
        ("requirements-model.in.range", "<<<<<<< HEAD", "requirements-model.in.range:1 is a merge-conflict marker "
         "(<<<<<<<): resolve the conflict in that file first"),
    ],
)  # fmt: skip
def test_a_line_in_the_wrong_file_says_where_it_belongs(tmp_path: Path, name: str, line: str, message: str) -> None:
    path = write(tmp_path, name, line + "\n")
    read = inputs.read_wheel_sources if name.endswith(".url") else inputs.read_range_sources
    assert refused(read, *([path, GITHUB] if name.endswith(".url") else [path])) == message


def test_a_control_character_is_refused_with_its_line(tmp_path: Path) -> None:
    assert refused(urls, tmp_path, "# ok\nen_a-1.0.0-py3-none-any.whl\x07\n") == (
        "requirements-model.in.url:2 holds a control character: remove it"
    )


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


def test_a_range_line_s_marker_decides_whether_it_applies_here(tmp_path: Path) -> None:
    here, elsewhere = inputs.read_range_sources(
        write(tmp_path, "r", "en_a>=1\r\nen_b>=1; sys_platform == 'plan9'\r\n", "\n")
    )
    assert here.applies() and not elsewhere.applies() and elsewhere.where == "r:2"


def test_a_range_line_packaging_cannot_read_is_named(tmp_path: Path) -> None:
    message = refused(inputs.read_range_sources, write(tmp_path, "requirements-model.in.range", "en_a>=1,,<2\n"))
    assert message.startswith("requirements-model.in.range:1: cannot read 'en_a>=1,,<2' (")
    assert message.endswith("); write it as name>=1.0,<2")


def test_each_model_is_listed_once_in_one_place(tmp_path: Path) -> None:
    wheels = urls(tmp_path, f"{GITHUB}/x/en_a-1.0.0-py3-none-any.whl\n")
    ranges = inputs.read_range_sources(write(tmp_path, "requirements-model.in.range", "\n\nEn.A>=1\n"))
    assert refused(inputs.check_unique, [*wheels, *ranges]) == (
        "requirements-model.in.range:3: En.A is already listed at requirements-model.in.url:1; list each model once"
    )
    inputs.check_unique(wheels)


def test_a_model_named_in_requirements_in_or_its_includes_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "requirements-model.in", "en_acme_ner==1.0.0\n")
    write(tmp_path, "extra.in", "rich\nEn.Acme-NER>=1\n")
    requirements = write(tmp_path, "requirements.in", "spacy>=3.8,<3.9\n-r requirements-model.in\n-r extra.in\n")
    with pytest.raises(UserError, match=r"extra.in:2 names En.Acme-NER|extra.in:2 names en-acme-ner"):
        inputs.check_no_model_by_name(requirements, tmp_path / "requirements-model.in", ["en-acme-ner"])
    inputs.check_no_model_by_name(requirements, tmp_path / "requirements-model.in", ["de-contracts-lg"])


def test_includes_are_followed_once_each_and_the_model_pins_skipped(tmp_path: Path) -> None:
    write(tmp_path, "a.in", "-r b.in\nrich\n")
    write(tmp_path, "b.in", "--requirement=a.in\n-c constraints.txt\n")
    write(tmp_path, "constraints.txt", "spacy<3.9  # the series\n")
    write(tmp_path, "requirements-model.in", "en_a==1\n")
    requirements = write(tmp_path, "requirements.in", "-r a.in\n-r requirements-model.in\n-r missing.in\n")
    pins = tmp_path / "requirements-model.in"
    assert [p.name for p in inputs.requirement_files(requirements, pins)] == [
        "requirements.in", "a.in", "b.in", "constraints.txt",
    ]  # fmt: skip
    spacy, where = inputs.project_spacy(requirements, pins)  # type: ignore[misc]
    assert (str(spacy), where) == ("spacy<3.9", "constraints.txt:1")


def test_a_merge_conflict_in_requirements_in_stops_with_its_line(tmp_path: Path) -> None:
    requirements = write(tmp_path, "requirements.in", "spacy>=3.8\n=======\nspacy>=3.7\n")
    assert refused(inputs.requirement_lines, requirements, tmp_path / "requirements-model.in") == (
        "requirements.in:2 is a merge-conflict marker (=======): resolve the conflict in that file first"
    )


def test_the_pins_file_round_trips(tmp_path: Path, make_wheel) -> None:
    from nlp_modeltools.models.wheels import read_model_wheel

    wheels = [read_model_wheel(make_wheel(tmp_path, name, "1.0.0")) for name in ("en_b", "en_a")]
    text = inputs.render_pins(wheels)
    assert text.endswith("edit those, not this file. Exact versions of every model.\nen_a==1.0.0\nen_b==1.0.0\n")
    assert inputs.read_pins(write(tmp_path, "requirements-model.in", text)) == {"en-a": "1.0.0", "en-b": "1.0.0"}
    assert refused(inputs.read_pins, write(tmp_path, "requirements-model.in", "en_a>=1\n")) == (
        "requirements-model.in:1: expected name==version; run make models to write this file again"
    )


def test_range_sources_know_their_requirement() -> None:
    source = inputs.RangeSource(Requirement("En_Acme.NER>=1"), "r:1")
    assert (source.name, source.display_name) == ("en-acme-ner", "En_Acme.NER")


def test_mirror_url_rewrites_github_release_downloads_only() -> None:
    github = GITHUB_RELEASES + "en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl"
    assert mirror_url(github, "http://m/models/") == "http://m/models/en_core_web_sm-3.8.0/" + github.rsplit("/")[-1]
    assert mirror_url(github, None) == github
    assert mirror_url("https://huggingface.co/a/b/resolve/main/x.whl", "http://m") == (
        "https://huggingface.co/a/b/resolve/main/x.whl"
    )

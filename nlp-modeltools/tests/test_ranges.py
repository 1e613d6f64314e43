"""models/ranges.py: the release a ranged model gets, from a links page whose files a loopback server serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache
from nlp_modeltools.core.http import Session
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.models import ranges
from nlp_modeltools.models.fetch import Fetcher
from nlp_modeltools.models.inputs import GITHUB_RELEASES, RangeSource
from nlp_modeltools.models.releases import ModelLink
from nlp_modeltools.models.store import ModelStore


def link(name: str, version: str, url: str = "https://h", sha256: str | None = None) -> ModelLink:
    filename = f"{name}-{version}-py3-none-any.whl"
    return ModelLink(filename, f"{url}/{filename}", sha256)


def ranged(spec: str, where: str = "requirements-model.in.range:1") -> RangeSource:
    return RangeSource(Requirement(spec), where)


@pytest.fixture
def fetcher(tmp_path: Path) -> Fetcher:
    build = tmp_path / "build"
    build.mkdir()
    return Fetcher(build, ModelStore(tmp_path / "cache"), Session({}), HashCache(build / ".sha256-cache.json"), Tools())


@pytest.fixture
def page(tmp_path: Path, served, make_wheel, sha256) -> list[ModelLink]:
    """en_a 1.0.0 (for spaCy 3.8) and 1.1.0 (for 3.9), served with their digests, as a links page lists them."""
    links = []
    for version, spacy in (("1.0.0", "spacy>=3.8.0,<3.9.0"), ("1.1.0", "spacy>=3.9.0,<3.10.0")):
        wheel = make_wheel(tmp_path / "served", "en_a", version, requires=(spacy,))
        served.add_file(f"/download/{wheel.name}", wheel)
        links.append(link("en_a", version, f"{served.url}/download", sha256(wheel)))
    return links


def mirror(tmp_path: Path, models_url: str = "", index: str = "") -> ranges.Mirror:
    return ranges.Mirror(models_url, index, tmp_path / "build" / "spacy_model_links.html")


def needs_spacy_3_8(wheel) -> str | None:
    needs = wheel.requirement_on("spacy")
    return None if needs.specifier.contains("3.8.7") else f"needs {needs}, but this project uses spacy>=3.8,<3.9"


def test_range_candidates_follow_pep_440_pre_release_rules() -> None:
    def newest(spec: str, versions: list[str]) -> list[str]:
        return [
            str(v)
            for v, _ in ranges.candidates(ranged(f"en_acme_ner{spec}"), [link("en_acme_ner", v) for v in versions])
        ]

    assert newest(">=1.0", ["1.0.0", "1.1.0rc1", "1.0.1"]) == ["1.0.1", "1.0.0"]
    assert newest(">=1.1.0rc1", ["1.0.0", "1.1.0rc1"]) == ["1.1.0rc1"]
    assert newest("==1.0.0.post1", ["1.0.0", "1.0.0.post1"]) == ["1.0.0.post1"]
    assert newest("<2", ["0.9", "2.0.0"]) == ["0.9"]
    assert newest(">=1", ["1.1.0rc1"]) == ["1.1.0rc1"], "a pre-release when it is all there is, as pip does"


def test_a_github_link_goes_through_the_mirror_and_an_index_link_gets_its_credentials(tmp_path: Path) -> None:
    github = link("en_a", "1.0.0", GITHUB_RELEASES.rstrip("/") + "/en_a-1.0.0", "f" * 64)
    through = mirror(tmp_path, "http://mirror.example/models").source(github, "r:1")
    assert through.url == "http://mirror.example/models/en_a-1.0.0/en_a-1.0.0-py3-none-any.whl"
    assert (through.sha256, through.where) == ("f" * 64, "r:1 (en_a-1.0.0-py3-none-any.whl)")
    team = link("en_a", "1.0.0", "https://index.example/files")
    with_index = mirror(tmp_path, "", "https://team:tok@index.example/simple")
    assert with_index.source(team, "r:1").url == "https://team:tok@index.example/files/en_a-1.0.0-py3-none-any.whl"
    elsewhere = link("en_a", "1.0.0", "https://cdn.example/files")
    assert with_index.source(elsewhere, "r:1").url == elsewhere.url, "credentials stay with their own host"


def test_the_locked_version_is_kept_while_in_range_until_upgrade() -> None:
    locked = {"en-a": ("1.0.0", "a" * 64)}
    kept = ranges.locked_release(ranged("en_a>=1,<2"), locked, upgrade=False)  # type: ignore[arg-type]
    assert kept is not None and kept[0] == "1.0.0" and kept[1].sha256 == "a" * 64
    assert ranges.locked_release(ranged("en_a>=1,<2"), locked, upgrade=True) is None  # type: ignore[arg-type]
    assert ranges.locked_release(ranged("en_a>=1.1"), locked, upgrade=False) is None  # type: ignore[arg-type]
    assert ranges.locked_release(ranged("en_b>=1"), locked, upgrade=False) is None  # type: ignore[arg-type]


def test_the_newest_release_that_fits_is_taken_and_the_misfit_left_out_of_build(
    tmp_path: Path, fetcher: Fetcher, page: list[ModelLink], capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = ranges.resolve_range(fetcher, mirror(tmp_path), ranged("en_a>=1"), page, {}, False, needs_spacy_3_8)
    assert wheel.pin == "en_a==1.0.0" and wheel.path == fetcher.build / "en_a-1.0.0-py3-none-any.whl"
    assert sorted(p.name for p in fetcher.build.glob("*.whl")) == ["en_a-1.0.0-py3-none-any.whl"]
    assert len(fetcher.store.info()) == 2, "the machine's cache keeps the refused one"
    assert "models: skipped en_a==1.1.0: needs spacy<3.10.0,>=3.9.0, but this project uses spacy>=3.8,<3.9\n" in (
        capsys.readouterr().out
    )


def test_when_none_of_the_newest_fits_each_is_named(tmp_path: Path, fetcher: Fetcher, page: list[ModelLink]) -> None:
    with pytest.raises(UserError) as refused:
        ranges.resolve_range(fetcher, mirror(tmp_path), ranged("en_a>=1"), page, {}, False, lambda wheel: "too new")
    assert str(refused.value) == (
        "requirements-model.in.range:1: en_a>=1 allows 1.1.0, 1.0.0, but none of the newest fits: en_a==1.1.0 (too "
        "new); en_a==1.0.0 (too new). Narrow the range to releases built for the project's spaCy, or change spaCy"
    )
    assert list(fetcher.build.glob("*.whl")) == []


def test_a_locked_release_is_fetched_by_its_locked_hash(
    tmp_path: Path, fetcher: Fetcher, page: list[ModelLink], sha256, served
) -> None:
    locked = {"en-a": ("1.1.0", page[1].sha256)}
    wheel = ranges.resolve_range(fetcher, mirror(tmp_path), ranged("en_a>=1"), page, locked, False, needs_spacy_3_8)  # type: ignore[arg-type]
    assert wheel.pin == "en_a==1.1.0", "the lock's version is kept, whatever fits better now"
    assert [r.path for r in served.since()] == ["/download/en_a-1.1.0-py3-none-any.whl"]


def test_a_lock_the_page_does_not_list_asks_for_a_fresh_page(tmp_path: Path, fetcher: Fetcher) -> None:
    with pytest.raises(ranges.StaleLinksError) as stale:
        ranges.resolve_range(fetcher, mirror(tmp_path), ranged("en_a>=1"), [link("en_a", "1.0.0")],
                             {"en-a": ("1.2.0", "b" * 64)}, False, needs_spacy_3_8)  # type: ignore[arg-type]  # fmt: skip
    assert str(stale.value) == (
        "requirements-model.in.range:1: requirements.txt locks en-a 1.2.0, which the links page "
        f"({tmp_path / 'build' / 'spacy_model_links.html'}) does not list: run make links to refresh it"
    )


def test_a_model_missing_from_the_page_or_out_of_range_is_named(tmp_path: Path, fetcher: Fetcher) -> None:
    links = [link("en_a", "1.0.0"), link("en_a", "1.1.0")]
    with pytest.raises(UserError) as missing:
        ranges.resolve_range(fetcher, mirror(tmp_path), ranged("en_b>=1"), links, {}, False, needs_spacy_3_8)
    assert str(missing.value) == (
        "requirements-model.in.range:1: en-b is not on the links page "
        f"({tmp_path / 'build' / 'spacy_model_links.html'}): check the name, point SPACY_MODELS_API at where it is "
        "published, or run make links to refresh the list"
    )
    with pytest.raises(UserError) as narrow:
        ranges.resolve_range(fetcher, mirror(tmp_path, index="https://i/simple"), ranged("en_a>=2"), links, {}, False,
                             needs_spacy_3_8)  # fmt: skip
    assert str(narrow.value) == (
        "requirements-model.in.range:1: no release of en-a is in >=2 (there are 1.0.0, 1.1.0): widen the range"
    )
    with pytest.raises(UserError, match="point SPACY_MODELS_INDEX at where it is published"):
        ranges.resolve_range(fetcher, mirror(tmp_path, index="https://i/simple"), ranged("en_b>=1"), links, {},
                             False, needs_spacy_3_8)  # fmt: skip


def test_a_page_that_points_at_another_model_keeps_nothing(
    tmp_path: Path, fetcher: Fetcher, served, make_wheel, sha256
) -> None:
    impostor = make_wheel(tmp_path / "served", "en_other", "1.0.0")
    served.add_file("/download/en_a-1.0.0-py3-none-any.whl", impostor)
    links = [link("en_a", "1.0.0", f"{served.url}/download")]
    with pytest.raises(UserError) as refused:
        ranges.resolve_range(fetcher, mirror(tmp_path), ranged("en_a>=1"), links, {}, False, needs_spacy_3_8)
    message = str(refused.value)  # its location twice: see test_fetch's xfail
    assert message.startswith("requirements-model.in.range:1 (en_a-1.0.0-py3-none-any.whl): ")
    assert message.endswith(": the file is en_other 1.0.0, not en-a 1.0.0; nothing was kept")
    assert list(fetcher.build.glob("*.whl")) == [] and fetcher.store.info() == []


def test_a_locked_release_in_the_machine_s_cache_needs_no_page(
    tmp_path: Path, fetcher: Fetcher, make_wheel, sha256
) -> None:
    wheel = make_wheel(tmp_path / "elsewhere", "en_a", "1.0.0")
    fetcher.store.add(wheel, sha256(wheel))
    found = ranges.pinned_wheel(fetcher, ranged("en_a>=1"), {"en-a": ("1.0.0", sha256(wheel))}, False)  # type: ignore[arg-type]
    assert found is not None and found.path == fetcher.build / "en_a-1.0.0-py3-none-any.whl"
    assert found.path.stat().st_ino == (fetcher.store.entries / sha256(wheel)).stat().st_ino
    assert ranges.pinned_wheel(fetcher, ranged("en_a>=1"), {"en-a": ("1.0.0", "0" * 64)}, True) is None  # type: ignore[arg-type]

"""models/collect.py: make models' data flow on a real project directory, models served by loopback servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache
from nlp_modeltools.core.http import Session
from nlp_modeltools.core.paths import Paths
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.lock import lockfile
from nlp_modeltools.models import manifest
from nlp_modeltools.models.collect import ModelSources, SpacyCheck, collect_models, locked_hashes
from nlp_modeltools.models.fetch import Fetcher
from nlp_modeltools.models.ranges import Mirror
from nlp_modeltools.models.releases import LinksSource
from nlp_modeltools.models.store import ModelStore
from nlp_modeltools.models.wheels import read_model_wheel

API = "/repos/acme/models"
PINS_HEADER = (
    "# Written by `make models` from requirements-model.in.url, requirements-model.in.range\n"
    "# and pipelines/: edit those, not this file. Exact versions of every model.\n"
)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    paths = Paths(tmp_path / "proj")
    paths.root.mkdir()
    paths.requirements.write_text("spacy>=3.8,<3.9\n-r requirements-model.in\n")
    return paths


def run(paths: Paths, served, cache: Path, upgrade: bool = False, tools: Tools | None = None) -> list:
    """collect_models with what one `nlp-models models` process makes: new sessions, hash cache and store."""
    paths.build.mkdir(exist_ok=True)
    fetcher = Fetcher(paths.build, ModelStore(cache), Session({}), HashCache(paths.build / ".sha256-cache.json"),
                      tools or Tools())  # fmt: skip
    links = LinksSource(paths.links, Session({}), "", Session({}), served.url + API, False)
    sources = ModelSources(f"{served.url}/download", "https://huggingface.co", links,
                           Mirror(f"{served.url}/download", "", paths.links))  # fmt: skip
    return collect_models(paths, fetcher, sources, upgrade=upgrade)


def serve(served, tmp_path: Path, make_wheel, name: str, version: str, spacy: str = "spacy>=3.8.0,<3.9.0") -> Path:
    wheel = make_wheel(tmp_path / "served" / version, name, version, requires=(spacy,))
    served.add_file(f"/download/{name}-{version}/{wheel.name}", wheel)
    return wheel


def release(served, wheel: Path, sha256) -> dict:
    url = f"{served.url}/download/{'-'.join(wheel.name.split('-')[:2])}/{wheel.name}"
    return {"tag_name": wheel.name, "assets": [{"name": wheel.name, "browser_download_url": url,
                                                "digest": f"sha256:{sha256(wheel)}"}]}  # fmt: skip


def test_a_url_line_becomes_the_pins_the_manifest_and_make_s_list(
    paths: Paths, served, tmp_path: Path, make_wheel, sha256, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = serve(served, tmp_path, make_wheel, "en_a", "1.0.0")
    paths.urls.write_text("# models\nen_a-1.0.0/en_a-1.0.0-py3-none-any.whl\n")
    (model,) = run(paths, served, tmp_path / "cache")
    url = f"{served.url}/download/en_a-1.0.0/en_a-1.0.0-py3-none-any.whl"
    assert (model.wheel.pin, model.url, model.where) == ("en_a==1.0.0", url, "requirements-model.in.url:2")
    assert paths.pins.read_text() == PINS_HEADER + "en_a==1.0.0\n"
    assert (paths.work / "models.mk").read_text() == (
        "# Written by make models: the model lists it read, the files it left.\n"
        "model_lists_seen := requirements-model.in.url\nmodel_files := build/en_a-1.0.0-py3-none-any.whl\n"
    )
    (record,) = manifest.read(paths.manifest)
    assert record == manifest.ModelRecord("en_a", "1.0.0", wheel.name, sha256(wheel), url, "<3.9.0,>=3.8.0",
                                          "requirements-model.in.url:2")  # fmt: skip
    assert manifest.current(paths, HashCache(paths.build / ".sha256-cache.json")) == [record]
    assert capsys.readouterr().out == "models: wrote requirements-model.in\n"


def test_a_second_run_makes_no_request_and_rewrites_nothing(
    paths: Paths, served, tmp_path: Path, make_wheel, capsys: pytest.CaptureFixture[str]
) -> None:
    serve(served, tmp_path, make_wheel, "en_a", "1.0.0")
    paths.urls.write_text("en_a-1.0.0/en_a-1.0.0-py3-none-any.whl\n")
    run(paths, served, tmp_path / "cache")
    written = {p: p.stat().st_mtime_ns for p in (paths.pins, paths.manifest, paths.work / "models.mk")}
    mark, _ = served.mark(), capsys.readouterr()
    (again,) = run(paths, served, tmp_path / "cache")
    assert again.wheel.pin == "en_a==1.0.0" and served.since(mark) == []
    assert {p: p.stat().st_mtime_ns for p in written} == written and capsys.readouterr().out == ""


def test_a_ranged_model_is_the_newest_release_that_fits_the_project_s_spacy(
    paths: Paths, served, tmp_path: Path, make_wheel, sha256, capsys: pytest.CaptureFixture[str]
) -> None:
    old = serve(served, tmp_path, make_wheel, "en_r", "1.0.0")
    new = serve(served, tmp_path, make_wheel, "en_r", "1.1.0", spacy="spacy>=3.9.0,<3.10.0")
    served.add_api(f"{API}/releases", [[release(served, new, sha256), release(served, old, sha256)]])
    paths.ranges.write_text("en_r>=1\n")
    (model,) = run(paths, served, tmp_path / "cache")
    assert model.wheel.pin == "en_r==1.0.0" and model.where == "requirements-model.in.range:1"
    assert model.url == f"{served.url}/download/en_r-1.0.0/{old.name}"
    assert sorted(p.name for p in paths.build.glob("*.whl")) == [old.name]
    out = capsys.readouterr().out
    assert "models: skipped en_r==1.1.0: needs spacy<3.10.0,>=3.9.0, but this project uses spacy<3.9,>=3.8 " in out
    assert paths.links.is_file() and (paths.work / "models.mk").read_text().endswith(
        "model_lists_seen := requirements-model.in.range\nmodel_files := build/en_r-1.0.0-py3-none-any.whl\n"
    )


def test_a_relock_keeps_the_locked_release_and_asks_no_api_until_upgrade(
    paths: Paths, served, tmp_path: Path, make_wheel, sha256
) -> None:
    """The one upward edge: collect reads the previous requirements.txt, so a ranged model keeps its version."""
    old = serve(served, tmp_path, make_wheel, "en_r", "1.0.0")
    newer = serve(served, tmp_path, make_wheel, "en_r", "1.2.0")
    served.add_api(f"{API}/releases", [[release(served, newer, sha256), release(served, old, sha256)]])
    paths.ranges.write_text("en_r>=1\n")
    cache = tmp_path / "cache"
    store = ModelStore(cache)
    store.add(old, sha256(old))
    paths.lock.write_text(f"spacy==3.8.7 \\\n    --hash=sha256:aa\n\n{lockfile.MODELS_HEADER}\nen_r==1.0.0 \\\n"
                          f"    --hash=sha256:{sha256(old)}\n    # via -r requirements-model.in\n")  # fmt: skip
    (kept,) = run(paths, served, cache)
    assert kept.wheel.pin == "en_r==1.0.0" and served.since() == [], "from the machine's cache, by the locked hash"
    (upgraded,) = run(paths, served, cache, upgrade=True)
    assert upgraded.wheel.pin == "en_r==1.2.0"
    assert [r.path.split("?")[0] for r in served.since()] == [f"{API}/releases",
                                                              f"/download/en_r-1.2.0/{newer.name}"]  # fmt: skip
    assert json.loads(paths.manifest.read_text())["models"][0]["version"] == "1.2.0"


def test_a_release_whose_file_is_not_its_digest_is_refused_with_the_links_page_s_advice(
    paths: Paths, served, tmp_path: Path, make_wheel, sha256
) -> None:
    """The API's asset digest becomes the links page's #sha256, and that the hash the download must have: its
    advice is the page's (make links), never the lock's (make upgrade), for there is no lock."""
    wheel = serve(served, tmp_path, make_wheel, "en_r", "1.0.0")
    listed = {**release(served, wheel, sha256)}
    listed["assets"] = [{**listed["assets"][0], "digest": "sha256:" + "d" * 64}]
    served.add_api(f"{API}/releases", [[listed]])
    paths.ranges.write_text("en_r>=1\n")
    with pytest.raises(UserError) as refused:
        run(paths, served, tmp_path / "cache")
    assert f"#sha256={'d' * 64}" in paths.links.read_text()
    url = f"{served.url}/download/en_r-1.0.0/{wheel.name}"
    assert str(refused.value) == (
        f"requirements-model.in.range:1 ({wheel.name}): {wheel.name} from {url} has sha256 {sha256(wheel)}, not the "
        f"expected {'d' * 64}: the server sent another file, and nothing was kept. The expected hash is the digest "
        "the links page gives: run make links"
    )
    assert "make upgrade" not in str(refused.value) and "requirements.txt" not in str(refused.value)
    assert list(paths.build.glob("*.whl")) == [] and ModelStore(tmp_path / "cache").info() == []


def test_a_model_for_another_spacy_is_refused_and_leaves_build(
    paths: Paths, served, tmp_path: Path, make_wheel
) -> None:
    serve(served, tmp_path, make_wheel, "en_old", "3.7.1", spacy="spacy>=3.7.0,<3.8.0")
    paths.urls.write_text("en_old-3.7.1/en_old-3.7.1-py3-none-any.whl\n")
    with pytest.raises(UserError) as refused:
        run(paths, served, tmp_path / "cache")
    assert str(refused.value) == (
        "en_old==3.7.1 (requirements-model.in.url:1) needs spacy<3.8.0,>=3.7.0, but this project uses "
        "spacy<3.9,>=3.8 (requirements.in:1): pick a release of en_old built for that spaCy (make check-models lists "
        "them), or change the spaCy version; nothing was installed"
    )
    assert list(paths.build.glob("*.whl")) == [] and not paths.manifest.exists() and not paths.pins.exists()


def test_a_model_named_in_requirements_in_is_refused_after_collecting(
    paths: Paths, served, tmp_path: Path, make_wheel
) -> None:
    serve(served, tmp_path, make_wheel, "en_a", "1.0.0")
    paths.urls.write_text("en_a-1.0.0/en_a-1.0.0-py3-none-any.whl\n")
    paths.requirements.write_text("spacy>=3.8,<3.9\nen-a\n-r requirements-model.in\n")
    with pytest.raises(UserError, match=r"^requirements.in:2 names en-a, a model of this project: models belong in "):
        run(paths, served, tmp_path / "cache")


def test_a_wheel_put_in_build_counts_as_a_model_for_requirements_in(
    paths: Paths, served, tmp_path: Path, make_wheel
) -> None:
    make_wheel(paths.build, "en_dropped", "1.0.0")
    paths.requirements.write_text("spacy>=3.8,<3.9\nen_dropped\n")
    with pytest.raises(UserError, match=r"^requirements.in:2 names en-dropped, a model of this project"):
        run(paths, served, tmp_path / "cache")


def test_the_spacy_series_is_the_locked_one_else_the_lowest_allowed(paths: Paths) -> None:
    assert SpacyCheck(paths, None).series() == (3, 8)
    lock = lockfile.parse("spacy==3.9.2 \\\n    --hash=sha256:aa\n")
    assert SpacyCheck(paths, lock).series() == (3, 9)
    assert SpacyCheck(paths, lock).locked == Version("3.9.2")
    paths.requirements.write_text("rich\n")
    assert SpacyCheck(paths, None).series() is None


def test_locked_hashes_are_the_models_block_of_the_lock() -> None:
    lock = lockfile.parse(f"spacy==3.8.7 \\\n    --hash=sha256:aa\n\n{lockfile.MODELS_HEADER}\nEn_A==1.0.0 \\\n"
                          "    --hash=sha256:bb\n    # via -r requirements-model.in\n")  # fmt: skip
    assert locked_hashes(lock) == {"en-a": ("1.0.0", "bb")} and locked_hashes(None) == {}


def test_a_model_without_an_upper_spacy_bound_is_told_apart(paths: Paths, tmp_path: Path, make_wheel) -> None:
    check = SpacyCheck(paths, None)
    unbounded = read_model_wheel(make_wheel(tmp_path, "en_u", "1.0.0", requires=("spacy>=3.8.0",)))
    bounded = read_model_wheel(make_wheel(tmp_path, "en_b", "1.0.0"))
    assert check.unbounded(unbounded) and not check.unbounded(bounded)

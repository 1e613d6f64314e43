"""models/fetch.py: one model source's wheel into build/, checked, through the machine's store, from loopback."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache
from nlp_modeltools.core.http import Session
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.models.fetch import Expected, Fetcher, check_offered_hash, expectation, hub_note, wheels_in_build
from nlp_modeltools.models.inputs import WheelSource
from nlp_modeltools.models.store import ModelStore

WHERE = "requirements-model.in.url:1"
WHEEL = "en_a-1.0.0-py3-none-any.whl"


def fetcher(project: Path, cache: Path, tools: Tools | None = None) -> Fetcher:
    """What make models builds for one run: new objects each time, as a new process has."""
    build = project / "build"
    build.mkdir(parents=True, exist_ok=True)
    return Fetcher(build, ModelStore(cache), Session({}), HashCache(build / ".sha256-cache.json"), tools or Tools())


@pytest.fixture
def served_wheel(tmp_path: Path, served, make_wheel) -> tuple[Path, str]:
    wheel = make_wheel(tmp_path / "served", "en_a", "1.0.0")
    return wheel, served.add_file(f"/download/en_a-1.0.0/{WHEEL}", wheel)


def test_a_wheel_is_fetched_once_into_build_through_the_store(tmp_path: Path, served, served_wheel, sha256) -> None:
    wheel, url = served_wheel
    project, cache = tmp_path / "proj", tmp_path / "cache"
    got = fetcher(project, cache).wheel(WheelSource(url, None, WHERE), None)
    assert (got.pin, got.path) == ("en_a==1.0.0", project / "build" / WHEEL)
    entry = cache / "sha256" / sha256(wheel)
    assert got.path.stat().st_ino == entry.stat().st_ino, "build/ holds a hard link to the store's entry"
    assert fetcher(project, cache).wheel(WheelSource(url, None, WHERE), None).path == got.path
    got.path.unlink()
    assert fetcher(project, cache).wheel(WheelSource(url, None, WHERE), None).path == got.path
    other_project = tmp_path / "other"
    assert fetcher(other_project, cache).wheel(WheelSource(url, None, WHERE), None).pin == "en_a==1.0.0"
    assert [r.path for r in served.since()] == [f"/download/en_a-1.0.0/{WHEEL}"], "one download on this machine"
    assert list((project / "build" / ".partial").glob("*.part*")) == []


def test_a_wrong_sha256_is_refused_and_nothing_is_kept(tmp_path: Path, served_wheel, sha256) -> None:
    wheel, url = served_wheel
    source = WheelSource(url, "0" * 64, WHERE)
    project, cache = tmp_path / "proj", tmp_path / "cache"
    with pytest.raises(UserError) as refused:
        fetcher(project, cache).wheel(source, expectation(source, {}, upgrade=False))
    message = str(refused.value)
    assert message.startswith(f"{WHERE}: {WHEEL} from {url} has sha256 {sha256(wheel)}, not the expected {'0' * 64}: ")
    assert wheels_in_build(project / "build") == {} and list((project / "build" / ".partial").glob("*.part*")) == []
    assert ModelStore(cache).info() == []


def test_a_wrong_sha256_on_the_line_names_the_line_as_the_fix(tmp_path: Path, served_wheel) -> None:
    _, url = served_wheel
    source = WheelSource(url, "0" * 64, WHERE)
    assert expectation(source, {}, upgrade=True) is not None, "make upgrade keeps the line's hash"
    with pytest.raises(UserError) as refused:
        fetcher(tmp_path / "proj", tmp_path / "cache").wheel(source, expectation(source, {}, upgrade=False))
    assert "fix the #sha256= or the URL" in str(refused.value) and "make upgrade" not in str(refused.value)


def test_a_download_that_is_not_the_locked_file_names_make_upgrade(tmp_path: Path, served_wheel, sha256) -> None:
    """No #sha256= on the line: the hash is the lock's for that version, and so is the advice."""
    wheel, url = served_wheel
    source = WheelSource(url, None, WHERE)
    locked = {"en-a": ("1.0.0", "c" * 64)}
    project, cache = tmp_path / "proj", tmp_path / "cache"
    with pytest.raises(UserError) as refused:
        fetcher(project, cache).wheel(source, expectation(source, locked, upgrade=False))  # type: ignore[arg-type]
    assert str(refused.value) == (
        f"{WHERE}: {WHEEL} from {url} has sha256 {sha256(wheel)}, not the expected {'c' * 64}: the server sent "
        "another file, and nothing was kept. The expected hash is requirements.txt, which locked en-a==1.0.0 with "
        "another file: if the new file is the one you want, run make upgrade to lock it"
    )
    assert wheels_in_build(project / "build") == {} and ModelStore(cache).info() == []
    assert "fix the #sha256=" not in str(refused.value)


def test_a_file_that_is_another_model_than_its_url_names_is_not_kept(tmp_path: Path, served, make_wheel) -> None:
    impostor = make_wheel(tmp_path / "served", "en_other", "1.0.0")
    url = served.add_file(f"/download/en_a-1.0.0/{WHEEL}", impostor)
    project, cache = tmp_path / "proj", tmp_path / "cache"
    with pytest.raises(UserError, match=r": the file is en_other 1.0.0, not en-a 1.0.0; nothing was kept$"):
        fetcher(project, cache).wheel(WheelSource(url, None, WHERE), None)
    assert wheels_in_build(project / "build") == {} and ModelStore(cache).info() == []


def test_a_file_that_is_another_model_is_named_by_its_line_once(tmp_path: Path, served, make_wheel) -> None:
    impostor = make_wheel(tmp_path / "served", "en_other", "1.0.0")
    url = served.add_file(f"/download/en_a-1.0.0/{WHEEL}", impostor)
    with pytest.raises(UserError) as refused:
        fetcher(tmp_path / "proj", tmp_path / "cache").wheel(WheelSource(url, None, WHERE), None)
    assert str(refused.value) == f"{WHERE}: the file is en_other 1.0.0, not en-a 1.0.0; nothing was kept"


def test_a_build_file_that_changed_since_the_lock_names_rm_and_make_models(
    tmp_path: Path, served_wheel, make_wheel, sha256
) -> None:
    _, url = served_wheel
    project = tmp_path / "proj"
    changed = make_wheel(project / "build", "en_a", "1.0.0", files={"en_a/extra.txt": "edited"})
    locked = {"en-a": ("1.0.0", "c" * 64)}
    source = WheelSource(url, None, WHERE)
    with pytest.raises(UserError) as refused:
        fetcher(project, tmp_path / "cache").wheel(source, expectation(source, locked, upgrade=False))  # type: ignore[arg-type]
    assert str(refused.value) == (
        f"build/{WHEEL} does not match requirements.txt, which locked en-a==1.0.0 with another file (sha256 "
        f"cccccccccccc… expected, {sha256(changed)[:12]}… found): it changed after it was fetched. Delete it (rm "
        f"build/{WHEEL}) and run make models to fetch it again; if the new file is the one you want, run make "
        "upgrade to lock it"
    )


def test_the_hash_a_line_must_have_is_its_own_else_the_lock_s_for_that_version() -> None:
    with_hash = WheelSource(f"https://h/{WHEEL}", "a" * 64, WHERE)
    plain = WheelSource(f"https://h/{WHEEL}", None, WHERE)
    locked = {"en-a": ("1.0.0", "b" * 64)}
    assert expectation(with_hash, locked, upgrade=False) == Expected("a" * 64, f"the #sha256= of {WHERE}",  # type: ignore[arg-type]
                                                                     "fix the #sha256= or the URL")  # fmt: skip
    assert expectation(plain, locked, upgrade=False).sha256 == "b" * 64  # type: ignore[arg-type,union-attr]
    assert expectation(plain, locked, upgrade=True) is None  # type: ignore[arg-type]
    assert expectation(plain, {"en-a": ("0.9.0", "b" * 64)}, upgrade=False) is None  # type: ignore[arg-type]
    hub = WheelSource("https://hub/a/b/resolve/main/en_a-any-py3-none-any.whl", None, WHERE)
    bound = expectation(hub, locked, upgrade=False)  # type: ignore[arg-type]
    assert bound is not None and bound.version == Version("1.0.0") and bound.binds(Version("1.0.0"))
    assert not bound.binds(Version("2.0.0")), "a Hub file of another version is a new file, not a changed one"


def test_a_hub_url_at_a_branch_is_noted_as_moving() -> None:
    branch = "https://hf.example/acme/ner/resolve/main/en_a-any-py3-none-any.whl"
    assert hub_note(branch, "https://hf.example") == (
        f"note: {branch} is at the moving revision 'main': the first file fetched is kept and locked; pin a commit "
        "instead of a branch to make it reproducible"
    )
    assert hub_note(branch.replace("main", "0123456789abcdef0123456789abcdef01234567"), "https://hf.example") is None
    assert hub_note(branch, "https://huggingface.co") is None


def test_an_index_that_offers_the_locked_version_with_another_hash_is_refused_before_downloading() -> None:
    source = WheelSource("https://hub/x/en_a-any-py3-none-any.whl", "d" * 64, "r:1 (en_a-1.0.0…)")
    expected = Expected("e" * 64, "requirements.txt", "run make upgrade to lock a new file")
    with pytest.raises(UserError) as refused:
        check_offered_hash(source, expected)
    assert str(refused.value) == (
        "r:1 (en_a-1.0.0…): the index now offers this file with sha256 dddddddddddd…, not the eeeeeeeeeeee… of "
        "requirements.txt: it was replaced after it was locked, so nothing was downloaded. Have the original restored "
        "there; run make upgrade to lock a new file"
    )
    check_offered_hash(WheelSource(source.url, "e" * 64, "r:1"), expected)


def test_a_local_wheel_is_copied_into_build_and_a_missing_one_named(tmp_path: Path, make_wheel) -> None:
    wheel = make_wheel(tmp_path / "mine", "en_a", "1.0.0")
    got = fetcher(tmp_path / "proj", tmp_path / "cache").wheel(WheelSource(wheel.as_uri(), None, WHERE), None)
    assert got.path == tmp_path / "proj" / "build" / WHEEL and got.path.read_bytes() == wheel.read_bytes()
    missing = tmp_path / "mine" / "en_b-1.0.0-py3-none-any.whl"
    with pytest.raises(UserError) as refused:
        fetcher(tmp_path / "proj", tmp_path / "cache").wheel(WheelSource(missing.as_uri(), None, WHERE), None)
    assert str(refused.value) == f"{WHERE}: {missing} does not exist: fix the path, or run make package if it is yours"


def test_offline_a_wheel_outside_the_cache_is_named_with_the_way_out(tmp_path: Path, served_wheel, served) -> None:
    _, url = served_wheel
    with pytest.raises(UserError) as refused:
        fetcher(tmp_path / "proj", tmp_path / "cache", Tools(offline=True)).wheel(WheelSource(url, None, WHERE), None)
    assert str(refused.value) == (
        f"{WHERE}: {WHEEL} is not in the model cache ({tmp_path / 'cache'}) and OFFLINE=1 forbids downloading it "
        f"from {url}: run once without OFFLINE=1, or put the file in build/"
    )
    assert served.since() == []


def sdist(directory: Path, name: str, version: str) -> Path:
    """A model's sdist as spacy package --build sdist writes it: name-version/ with setup.py and the package."""
    files = {
        "setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, packages=[{name!r}], "
                    "install_requires=['spacy>=3.8.0,<3.9.0'])\n",
        f"{name}/__init__.py": "",
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for relative, text in files.items():
            info = tarfile.TarInfo(f"{name}-{version}/{relative}")
            info.size, info.mode = len(text.encode()), 0o644
            archive.addfile(info, io.BytesIO(text.encode()))
    return path


def test_an_sdist_is_built_once_per_machine(
    tmp_path: Path, served, tool_environ: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    url = served.add_file("/download/en_sd-1.0.0/en_sd-1.0.0.tar.gz", sdist(tmp_path / "served", "en_sd", "1.0.0"))
    tools = Tools(tool_environ)
    first = fetcher(tmp_path / "one", tmp_path / "cache", tools).wheel(WheelSource(url, None, WHERE), None)
    assert (first.pin, first.path.name) == ("en_sd==1.0.0", "en_sd-1.0.0-py3-none-any.whl")
    assert str(first.requirement_on("spacy")) == "spacy<3.9.0,>=3.8.0"
    assert capsys.readouterr().out == "models: building a wheel from en_sd-1.0.0.tar.gz (once per machine)\n"
    second = fetcher(tmp_path / "two", tmp_path / "cache", tools).wheel(WheelSource(url, None, WHERE), None)
    assert second.path.read_bytes() == first.path.read_bytes() and capsys.readouterr().out == ""
    assert len(served.since()) == 1, "the second project takes the built wheel from the store"

"""ship/wheelhouse.py: build/wheels holds exactly the lock's files by hash; models linked, the rest by real pip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.files import HashCache
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.lock import lockfile
from nlp_modeltools.ship.wheelhouse import STAMP, Wheelhouse, fill, refuse_sources, stamp_text, verify


def lock_text(spacy_sha: str, model_sha: str) -> str:
    return (
        f"spacy==3.8.7 \\\n    --hash=sha256:{spacy_sha}\n    # via -r requirements.in\n\n{lockfile.MODELS_HEADER}\n"
        f"en_a==1.0.0 \\\n    --hash=sha256:{model_sha}\n    # via -r requirements-model.in\n"
    )


@pytest.fixture
def project(tmp_path: Path, make_wheel, sha256) -> dict:
    """A model in build/, spaCy in a find-links directory (pip's only source), and the lock of both."""
    model = make_wheel(tmp_path / "build", "en_a", "1.0.0")
    spacy = make_wheel(tmp_path / "find-links", "spacy", "3.8.7", requires=())
    text = lock_text(sha256(spacy), sha256(model))
    hashes = HashCache(tmp_path / "build" / ".sha256-cache.json")
    return {"model": model, "spacy": spacy, "text": text, "lock": lockfile.parse(text),
            "dest": tmp_path / "build" / "wheels", "hashes": hashes}  # fmt: skip


def pip_tools(tool_environ: dict, find_links: Path, offline: bool = False) -> Tools:
    return Tools({**tool_environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(find_links)}, offline=offline)


def test_fill_links_the_models_and_downloads_the_rest_by_hash(
    project: dict, tool_environ: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], make_wheel
) -> None:
    dest = project["dest"]
    stray = make_wheel(dest, "spacy", "3.8.5", requires=())  # an older version, no longer locked
    house = fill(pip_tools(tool_environ, tmp_path / "find-links"), project["hashes"], project["lock"], project["text"],
                 dest, {"en-a": project["model"]})  # fmt: skip
    assert sorted(p.name for p in dest.iterdir()) == [
        STAMP,
        "en_a-1.0.0-py3-none-any.whl",
        "spacy-3.8.7-py3-none-any.whl",
    ]
    assert (dest / "en_a-1.0.0-py3-none-any.whl").stat().st_ino == project["model"].stat().st_ino, "linked"
    assert (dest / "spacy-3.8.7-py3-none-any.whl").read_bytes() == project["spacy"].read_bytes()
    assert (dest / STAMP).read_text() == stamp_text(project["text"]) and not stray.exists()
    assert house.missing(project["lock"]) == []
    assert capsys.readouterr().out == f"wheelhouse: downloading 1 packages into {dest}/\n", "the model is not asked for"


def test_a_complete_wheelhouse_needs_nothing_even_offline(project: dict, tool_environ: dict, tmp_path: Path) -> None:
    fill(pip_tools(tool_environ, tmp_path / "find-links"), project["hashes"], project["lock"], project["text"],
         project["dest"], {"en-a": project["model"]})  # fmt: skip
    fill(pip_tools(tool_environ, tmp_path / "nowhere", offline=True), HashCache(tmp_path / "fresh.json"),
         project["lock"], project["text"], project["dest"], {"en-a": project["model"]})  # fmt: skip


def test_offline_a_missing_package_names_the_command_that_fetches_it(project: dict, tmp_path: Path) -> None:
    with pytest.raises(UserError) as refused:
        fill(Tools(offline=True), project["hashes"], project["lock"], project["text"], project["dest"],
             {"en-a": project["model"]})  # fmt: skip
    assert str(refused.value) == (
        f"OFFLINE=1, but {project['dest']}/ lacks spacy==3.8.7: run make wheelhouse once with network access"
    )


def test_verify_names_the_file_whose_bytes_changed(project: dict, tool_environ: dict, tmp_path: Path) -> None:
    fill(pip_tools(tool_environ, tmp_path / "find-links"), project["hashes"], project["lock"], project["text"],
         project["dest"], {"en-a": project["model"]})  # fmt: skip
    verify(project["hashes"], project["lock"], project["dest"])
    changed = project["dest"] / "spacy-3.8.7-py3-none-any.whl"
    changed.write_bytes(changed.read_bytes() + b"\0")
    with pytest.raises(UserError) as refused:
        verify(project["hashes"], project["lock"], project["dest"])
    assert str(refused.value) == (
        f"{project['dest']}/ lacks the locked file of spacy==3.8.7 (spacy-3.8.7-py3-none-any.whl changed or no "
        "longer locked): run make wheelhouse (it fetches what is missing and replaces what changed)"
    )


def test_a_package_pip_cannot_find_is_one_line(project: dict, tool_environ: dict, tmp_path: Path) -> None:
    with pytest.raises(UserError) as failed:
        fill(pip_tools(tool_environ, tmp_path / "empty"), project["hashes"], project["lock"], project["text"],
             project["dest"], {"en-a": project["model"]})  # fmt: skip
    message = str(failed.value)
    assert message.startswith("pip download failed: ") and "\n" not in message, message
    assert message.endswith("then make lock (VERBOSE=1 shows its whole output)")
    assert not (project["dest"] / STAMP).exists() and not (project["dest"] / ".missing.txt").exists()


def test_lock_entries_for_another_platform_are_not_needed(tmp_path: Path) -> None:
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
    (tmp_path / "ok-1.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "needs_build-2.0.tar.gz").write_bytes(b"")
    (tmp_path / ".complete").write_text("")
    with pytest.raises(UserError) as refused:
        refuse_sources(tmp_path)
    assert str(refused.value) == (
        "needs_build-2.0.tar.gz: pip found only the source of these, and an install with no index cannot build it: "
        "pin a version that has wheels for this platform in requirements.in, then run make lock"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".complete", "ok-1.0-py3-none-any.whl"]


def test_a_locked_model_never_goes_to_pip_by_name(tmp_path: Path) -> None:
    text = f"spacy==3.8.7 \\\n    --hash=sha256:aa\n\n{lockfile.MODELS_HEADER}\nen_acme_ner==1.0.0 \\\n"
    text += "    --hash=sha256:bb\n    # via -r requirements-model.in\n"
    message = "build/ has no file with the locked hash of en_acme_ner==1.0.0: run make models"
    with pytest.raises(UserError, match=re.escape(message)):
        fill(Tools(), HashCache(tmp_path / "c.json"), lockfile.parse(text), text, tmp_path / "wheels", models={})


def test_a_model_file_that_changed_in_build_is_not_taken_for_the_locked_one(
    project: dict, tool_environ: dict, tmp_path: Path, make_wheel
) -> None:
    changed = make_wheel(tmp_path / "changed", "en_a", "1.0.0", files={"en_a/extra.txt": "another build"})
    with pytest.raises(UserError, match=r"^build/ has no file with the locked hash of en_a==1.0.0: run make models"):
        fill(pip_tools(tool_environ, tmp_path / "find-links"), project["hashes"], project["lock"], project["text"],
             project["dest"], {"en-a": changed})  # fmt: skip
    assert not (project["dest"] / "en_a-1.0.0-py3-none-any.whl").exists(), "the wrong file is not left there"

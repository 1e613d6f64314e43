"""The machine-wide model cache through make: shared by projects, self-healing, shown and trimmed.

Each test has its own cache (NLP_MODELS_CACHE) and reads the mirror's request
log: a project that needs a model the machine already holds fetches 0 bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from tests.conftest import FAST
from tests.support.mirror import Mirror
from tests.support.project import copy_project, make

SM_WHEEL = "en_core_web_sm-3.8.0-py3-none-any.whl"
DAY = 86400


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def downloads(mirror: Mirror, mark: int) -> list[tuple[str, int]]:
    return [(r.path.rsplit("/", 1)[-1], r.sent) for r in mirror.since(mark) if r.path.endswith(".whl")]


def test_two_projects_share_one_download_and_a_corrupted_entry_is_fetched_again(
    rendered: Path, tmp_path: Path, mirror: Mirror, fresh_cache: dict
) -> None:
    first = copy_project(rendered, tmp_path / "first")
    mark = mirror.mark()
    make(first, "models", env=fresh_cache)
    assert [name for name, _ in downloads(mirror, mark)] == [SM_WHEEL]
    entry = Path(fresh_cache["NLP_MODELS_CACHE"]) / "sha256" / sha256(first / "build" / SM_WHEEL)
    assert entry.is_file()

    second = copy_project(rendered, tmp_path / "second")
    mark = mirror.mark()
    make(second, "models", env=fresh_cache)
    assert mirror.since(mark) == [], "the second project fetches 0 bytes: the machine has the model"
    assert (second / "build" / SM_WHEEL).stat().st_ino == entry.stat().st_ino, "hard-linked, not copied"

    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x01
    entry.unlink()  # its own inode: the projects' hard links keep the good bytes
    entry.write_bytes(bytes(data))
    third = copy_project(rendered, tmp_path / "third")
    mark = mirror.mark()
    make(third, "models", env=fresh_cache)
    assert [name for name, _ in downloads(mirror, mark)] == [SM_WHEEL], "a corrupted entry is fetched again"
    assert sha256(entry) == entry.name == sha256(third / "build" / SM_WHEEL)


def test_cache_info_shows_and_cache_prune_trims_all_but_this_projects_models(
    rendered: Path, tmp_path: Path, mirror: Mirror, wheels: dict, fresh_cache: dict
) -> None:
    project = copy_project(rendered, tmp_path / "proj")
    make(project, "lock", env={**FAST, **fresh_cache})
    other = copy_project(rendered, tmp_path / "other")
    md = wheels["md-3.8.0"]
    (other / "requirements-model.in.url").write_text(f"{mirror.download_base}/en_core_web_md-3.8.0/{md.name}\n")
    make(other, "models", env=fresh_cache)
    cache = Path(fresh_cache["NLP_MODELS_CACHE"])
    sm_hash, md_hash = sha256(project / "build" / SM_WHEEL), sha256(md)

    info = make(project, "cache-info", env=fresh_cache).stdout
    assert f"cache-info: {cache}: 2 model wheels" in info and "(1 pinned by this project's requirements.txt)" in info
    sm_line = next(line for line in info.splitlines() if "en_core_web_sm 3.8.0" in line)
    md_line = next(line for line in info.splitlines() if "en_core_web_md 3.8.0" in line)
    assert "12.8MB" in sm_line and "pinned here" in sm_line and f"sha256:{sm_hash[:12]}" in sm_line
    assert "kB" in md_line and "pinned here" not in md_line and "(today)" in md_line

    old = time.time() - 200 * DAY
    for digest in (sm_hash, md_hash):
        os.utime(cache / "used" / digest, (old, old))
    assert "200 days ago" in make(project, "cache-info", env=fresh_cache).stdout

    refused = make(project, "cache-prune", "CACHE_MAX_AGE=soon", env=fresh_cache, check=False)
    assert refused.returncode != 0 and "CACHE_MAX_AGE=soon is not a number of days" in refused.stderr
    pruned = make(project, "cache-prune", env=fresh_cache).stdout
    assert "cache-prune: removed 1 model wheels unused for 90 days" in pruned
    assert "kept 1, 1 of them pinned by this project" in pruned
    assert (cache / "sha256" / sm_hash).is_file(), "what this project's lock pins stays, however old"
    assert not (cache / "sha256" / md_hash).exists()
    assert sha256(other / "build" / md.name) == md_hash, "a project's build/ keeps its file"

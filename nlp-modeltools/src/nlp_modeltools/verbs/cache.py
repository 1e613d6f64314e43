"""The machine-wide model cache (NLP_MODELS_CACHE): what it holds (make cache-info) and trimming it (make cache-prune).

Entries are wheels named by their sha256, shared by every project on the
machine; build/ holds hard links to them. Pruning never removes an entry that
this project's requirements.txt pins, and a project whose entry another prune
removed still has its build/ file (a hard link keeps the bytes).
"""

from __future__ import annotations

import datetime
import time

from nlp_modeltools.config import Settings
from nlp_modeltools.core.errors import UserError
from nlp_modeltools.lock import lockfile
from nlp_modeltools.models.store import ModelStore, human_size
from nlp_modeltools.models.wheels import read_metadata


def pinned_here(settings: Settings) -> set[str]:
    """The sha256 of every file this project's requirements.txt pins."""
    lock = lockfile.read(settings.paths.lock)
    return {h.removeprefix("sha256:") for entry in (lock.entries if lock else []) for h in entry.hashes}


def max_age_days(settings: Settings) -> float:
    text = settings.get("CACHE_MAX_AGE", "90")
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if days < 0:
        raise UserError(f"CACHE_MAX_AGE={text} is not a number of days: set it to e.g. 90 (in .env or on make's line)")
    return days


def describe(store: ModelStore, sha256: str) -> str:
    """'name version' from the entry's own METADATA, or what it is when that cannot be read."""
    try:
        metadata = read_metadata(store.entries / sha256)
        return f"{metadata.name} {metadata.version}"
    except (UserError, ValueError):
        return "(not a readable wheel)"


def age(seconds_ago: float) -> str:
    days = int(seconds_ago // 86400)
    return "today" if days == 0 else "1 day ago" if days == 1 else f"{days} days ago"


def cache_info(settings: Settings) -> None:
    store, keep = settings.store, pinned_here(settings)
    entries = store.info()
    total = sum(entry.size for entry in entries)
    here = sum(1 for entry in entries if entry.sha256 in keep)
    print(f"cache-info: {store.root}: {len(entries)} model wheels, {human_size(total)} "
          f"({here} pinned by this project's requirements.txt)")  # fmt: skip
    now = time.time()
    for entry in entries:
        used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d")
        mark = "  pinned here" if entry.sha256 in keep else ""
        print(f"  {describe(store, entry.sha256):<40} {human_size(entry.size):>9}  used {used} "
              f"({age(now - entry.last_used)})  sha256:{entry.sha256[:12]}{mark}")  # fmt: skip
    partial = sum(p.stat().st_size for p in store.partials.glob("*.part") if p.is_file())
    if partial:
        print(f"  unfinished downloads: {human_size(partial)} (the next download resumes them; cache-prune trims)")


def cache_prune(settings: Settings) -> None:
    store, keep, days = settings.store, pinned_here(settings), max_age_days(settings)
    before = {entry.sha256: entry.size for entry in store.info()}
    freed = store.prune(keep, older_than_days=days)
    after = {entry.sha256 for entry in store.info()}
    removed = sum(size for sha256, size in before.items() if sha256 not in after)
    linked = f"; {human_size(removed - freed)} stay linked from projects' build/" if removed > freed else ""
    print(f"cache-prune: removed {len(before.keys() - after)} model wheels unused for {days:g} days "
          f"({human_size(freed)} freed{linked}); kept {len(after)}, {len(after & keep)} of them pinned by "
          "this project")  # fmt: skip

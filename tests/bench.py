"""`make bench`: the speed and size figures of the main flow, measured and printed (not asserted).

Against the local mirror with the real en_core_web_sm 3.8.0 (12.8 MB): a cold
`make install` in a fresh rendering, a warm one (nothing to do), one after an
edit that leaves the lock's inputs as they were, and, with a container engine,
`make docker` cold and after a change in src/, with the image's size.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.containers import configure_podman, ensure_base_image, find_engine
from tests.support.mirror import Mirror, MirrorServer
from tests.support.project import make, render
from tests.support.wheels import CACHE_DIR, build_real_sm

Row = tuple[str, float, int]


def timed(project: Path, mirror: Mirror, label: str, *args: str) -> Row:
    mark = mirror.mark()
    started = time.monotonic()
    make(project, *args)
    seconds = time.monotonic() - started
    return label, seconds, sum(r.sent for r in mirror.since(mark))


def image_rows(project: Path, mirror: Mirror) -> list[Row]:
    configure_podman(CACHE_DIR / "containers")
    engine = find_engine()
    if engine is None:
        print("bench: no container engine, image figures skipped", file=sys.stderr)
        return []
    settings = [f"BASE_IMAGE={ensure_base_image(engine)}", "IMAGE=localhost/nlp-template-bench:latest"]
    rows = [
        timed(project, mirror, "make docker (cold)", "docker", *settings, "DOCKER_BUILD_ARGS=--no-cache"),
        timed(project, mirror, "make docker (nothing changed)", "docker", *settings),
    ]
    main = next((project / "src").glob("*/__main__.py"))
    main.write_text(main.read_text() + "\n# bench: a change in src/\n")
    rows.append(timed(project, mirror, "make docker (after a src/ change)", "docker", *settings))
    size = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", "localhost/nlp-template-bench:latest"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    rows.append((f"image size: {int(size) / 1e6:.0f} MB", 0.0, 0))
    return rows


def main() -> None:
    mirror = Mirror()
    with MirrorServer(mirror), tempfile.TemporaryDirectory() as work:
        mirror.add_download(build_real_sm())
        project = render(Path(work) / "proj", spacy_models_url=mirror.download_base)
        rows = [
            timed(project, mirror, "make install (cold: download, lock, wheelhouse, sync)", "install"),
            timed(project, mirror, "make install (warm: nothing to do)", "install"),
        ]
        (project / "requirements.in").touch()
        rows.append(timed(project, mirror, "make install (requirements.in touched, same content)", "install"))
        rows += image_rows(project, mirror)
    print(f"\n{'step':58} {'seconds':>8} {'downloaded':>12}")
    for label, seconds, sent in rows:
        print(f"{label:58} {seconds:8.2f} {sent / 1e6:10.1f} MB" if seconds else label)


if __name__ == "__main__":
    main()

"""`make bench`: the main flow's speed and size, measured side by side and printed (never asserted).

Against the local mirror, with the real en_core_web_sm 3.8.0 and a model wheel
padded to a realistic 120 MB. Variants of one measurement run alternately (A B,
then B A, ...) and the median of at least three runs is reported, with ratios.
Writes build/bench/results.md and build/bench/chart.png (`--publish` copies both
into docs/ for the README).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.containers import ensure_base_image, find_engine, remove_image
from tests.support.mirror import Mirror, MirrorServer
from tests.support.project import REPO, make_argv, make_env, render
from tests.support.wheels import CACHE_DIR, TinyModel, build_real_sm, build_tiny

OUT = REPO / "build" / "bench"
Timed = Callable[[], tuple[float, int]]
PADDED = TinyModel("en_core_web_lg", "3.8.0")
PAD_MB = 120


@dataclass
class Measure:
    label: str
    seconds: list[float] = field(default_factory=list)
    downloaded: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def bytes(self) -> int:
        return int(statistics.median(self.downloaded)) if self.downloaded else 0


@dataclass
class Bench:
    mirror: Mirror
    work: Path
    rounds: int
    groups: list[tuple[str, list[Measure]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def run(self, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
        mark = self.mirror.mark()
        started = time.monotonic()
        done = subprocess.run(command, cwd=cwd, env=make_env(env), capture_output=True, text=True, errors="replace")
        seconds = time.monotonic() - started
        if done.returncode:
            raise SystemExit(f"bench: {' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return seconds, sum(r.sent for r in self.mirror.since(mark))

    def side_by_side(
        self, title: str, variants: dict[str, tuple[Callable[[], None], Callable[[], tuple[float, int]]]]
    ) -> None:
        """Each variant: (prepare, measure). Rounds alternate the order; prepare is not timed."""
        measures = {label: Measure(label) for label in variants}
        labels = list(variants)
        for round_number in range(self.rounds):
            for label in labels if round_number % 2 == 0 else reversed(labels):
                prepare, measure = variants[label]
                prepare()
                seconds, sent = measure()
                measures[label].seconds.append(seconds)
                measures[label].downloaded.append(sent)
        self.groups.append((title, list(measures.values())))
        print(f"\n{title}")
        for item in measures.values():
            print(f"  {item.label:55} {item.median:8.3f} s  {item.bytes / 1e6:8.1f} MB")


def padded_wheel() -> Path:
    """A model wheel of realistic size: a tiny pipeline plus PAD_MB of incompressible data."""
    target = CACHE_DIR / "bench" / f"{PADDED.filename}"
    if target.exists():
        return target
    source = build_tiny(PADDED)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as new:
        record_name = next(n for n in old.namelist() if n.endswith(".dist-info/RECORD"))
        for item in old.infolist():
            if item.filename != record_name:
                new.writestr(item, old.read(item.filename))
        padding = f"{PADDED.name}/{PADDED.name}-{PADDED.version}/padding.bin"
        new.writestr(padding, os.urandom(PAD_MB * 1_000_000))
        record = old.read(record_name).decode() + f"{padding},,\n"
        new.writestr(record_name, record)
    partial.rename(target)
    return target


def venv_tools(project: Path) -> dict[str, str]:
    tools = Path(os.environ.get("TOOLS", project / "build" / "tools"))
    return {"python": str(tools / "bin" / "python"), "uv": str(tools / "bin" / "uv")}


def install_benchmarks(bench: Bench, project: Path) -> None:
    tools = venv_tools(project)
    lock, wheels, venv = project / "requirements.txt", project / "build" / "wheels", project / ".venv"
    python = str(venv / "bin" / "python")
    sealed = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", "UV_NO_CONFIG": "1"}
    pip_sync = [tools["python"], "-m", "piptools", "sync", "--python-executable", python, "--no-index",
                "--find-links", str(wheels), "--pip-args", "--quiet", str(lock)]  # fmt: skip
    uv_sync = [tools["uv"], "pip", "sync", "--quiet", "--python", python, "--no-index", "--find-links", str(wheels),
               "--require-hashes", str(lock)]  # fmt: skip
    nothing = lambda: None  # noqa: E731
    bench.side_by_side("warm install (nothing to do)", {
        "make install": (nothing, lambda: bench.run(make_argv(project, "install"), project)),
        "pip-sync (bare)": (nothing, lambda: bench.run(pip_sync, project, sealed)),
        "uv pip sync (bare)": (nothing, lambda: bench.run(uv_sync, project, sealed)),
    })  # fmt: skip

    def fresh_venv(with_uv: bool) -> Callable[[], None]:
        def prepare() -> None:
            shutil.rmtree(venv, ignore_errors=True)
            if with_uv:
                subprocess.run([tools["uv"], "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
            else:
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)

        return prepare

    def remove_venv() -> None:
        shutil.rmtree(venv, ignore_errors=True)

    pip_install = [python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels),
                   "--require-hashes", "--no-deps", "-r", str(lock)]  # fmt: skip
    # The interpreter as the project's Makefile names it (PYTHON := python$(PYTHON_VERSION)), found on PATH as a
    # user's shell finds it (a pyenv shim, say), and by its absolute path: the lookup is part of the time.
    version = re.search(r"^PYTHON_VERSION := (\S+)$", (project / "Makefile").read_text(), re.M)[1]
    uv_venv = [tools["uv"], "venv", "--quiet", "--python", f"python{version}", str(venv)]
    where = [f"python{version}", "-c", "import sys; print(sys.executable)"]
    absolute = subprocess.run(where, capture_output=True, text=True, check=True).stdout.strip()
    uv_venv_absolute = [tools["uv"], "venv", "--quiet", "--python", absolute, str(venv)]
    bench.side_by_side("cold .venv from build/wheels", {
        "make install INSTALLER=pip-tools": (
            remove_venv, lambda: bench.run(make_argv(project, "install", "INSTALLER=pip-tools"), project)),
        "make install INSTALLER=uv": (
            remove_venv, lambda: bench.run(make_argv(project, "install", "INSTALLER=uv"), project)),
        f"uv venv --python python{version} + uv pip sync (bare)": (
            remove_venv, lambda: _timed_pair(bench, project, [uv_venv, uv_sync], sealed)),
        "uv venv --python <absolute path> + uv pip sync (bare)": (
            remove_venv, lambda: _timed_pair(bench, project, [uv_venv_absolute, uv_sync], sealed)),
        "pip install --no-index --require-hashes (bare)": (
            fresh_venv(False), lambda: bench.run(pip_install, project, sealed)),
    })  # fmt: skip


def _timed_pair(bench: Bench, project: Path, commands: list[list[str]], env: dict[str, str]) -> tuple[float, int]:
    total = sent = 0.0
    for command in commands:
        seconds, got = bench.run(command, project, env)
        total, sent = total + seconds, sent + got
    return total, int(sent)


def lock_benchmarks(bench: Bench, project: Path) -> None:
    tools = venv_tools(project)
    lock = project / "requirements.txt"
    caches = bench.work / "caches"

    def cold(installer: str) -> Callable[[], None]:
        def prepare() -> None:
            lock.unlink(missing_ok=True)
            shutil.rmtree(caches / installer, ignore_errors=True)

        return prepare

    def warm() -> None:
        lock.unlink(missing_ok=True)

    def cache_env(installer: str, cold_run: bool) -> dict[str, str]:
        if not cold_run:
            return {}
        root = caches / installer
        return {"XDG_CACHE_HOME": str(root), "UV_CACHE_DIR": str(root / "uv"), "PIP_CACHE_DIR": str(root / "pip")}

    work = project / "build" / "lock"
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    bare_uv = [tools["uv"], "pip", "compile", "--quiet", "--generate-hashes", "--universal", "--python-version", python,
               "--output-file", "bare.txt", "requirements.in"]  # fmt: skip
    bare_pip_compile = [tools["python"], "-m", "piptools", "compile", "--quiet", "--generate-hashes", "--allow-unsafe",
                        "--strip-extras", "--no-emit-index-url", "--no-emit-find-links", "--output-file",
                        "bare-pip-compile.txt", "requirements.in"]  # fmt: skip

    def bare(prepare: Callable[[], None], output: str) -> Callable[[], None]:
        def both() -> None:  # a resolver keeps the pins of an output file it finds: start from none, as make lock does
            prepare()
            (work / output).unlink(missing_ok=True)

        return both

    for temperature in ("cold", "warm"):
        cold_run = temperature == "cold"
        variants = {}
        for installer in ("pip-tools", "uv"):
            prepare = cold(installer) if cold_run else warm
            command = make_argv(project, "lock", f"INSTALLER={installer}")
            env = cache_env(installer, cold_run)
            variants[f"make lock INSTALLER={installer}"] = (prepare, lambda c=command, e=env: bench.run(c, project, e))
        bare_env = cache_env("bare", cold_run)
        variants["uv pip compile --universal (bare, same input)"] = (
            bare(cold("bare") if cold_run else warm, "bare.txt"),
            lambda e=bare_env: bench.run(bare_uv, work, e),
        )
        bare_pip_env = cache_env("bare-pip-compile", cold_run)
        variants["pip-compile --generate-hashes (bare, same input)"] = (
            bare(cold("bare-pip-compile") if cold_run else warm, "bare-pip-compile.txt"),
            lambda e=bare_pip_env: bench.run(bare_pip_compile, work, e),
        )
        bench.side_by_side(f"lock, {temperature} cache", variants)
    subprocess.run(make_argv(project, "lock"), check=True, capture_output=True)


def download_benchmarks(bench: Bench, project: Path, padded_url: str) -> None:
    venv = bench.work / "spacy-download-venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--force-reinstall",
        padded_url,
    ]
    nothing = lambda: None  # noqa: E731
    bench.side_by_side(f"model of {PAD_MB} MB: what `spacy download` does (pip install URL) vs make install", {
        "pip install <model URL> (every run)": (
            nothing, lambda: bench.run(pip, project, {"PIP_CONFIG_FILE": os.devnull})),
        "make install (warm)": (nothing, lambda: bench.run(make_argv(project, "install"), project)),
    })  # fmt: skip


def image_benchmarks(bench: Bench, project: Path) -> None:
    """The image rows on each engine here: podman, and Docker Engine 26 (a daemon of the tests' own, if it runs)."""
    engine = find_engine()
    if engine is None:
        bench.notes.append("no podman or docker here: podman's image figures skipped")
    else:
        engine_rows(bench, project, engine, engine, {})
    try:
        from tests.support.dockerd import import_base_image, start_daemon

        daemon = start_daemon("26.1", "classic")
    except Exception as error:
        bench.notes.append(f"Docker Engine 26 does not run here ({type(error).__name__}): its image figures skipped")
        return
    try:
        import_base_image(daemon)
        engine_rows(bench, project, "docker", "Docker 26 (classic store)", daemon.env())
    finally:
        daemon.stop()


def engine_rows(bench: Bench, project: Path, engine: str, label: str, env: dict[str, str]) -> None:
    """Cold build, no change, a src/ change (and the engine's own build of the same Dockerfile), a dependency bump."""
    image = "localhost/nlp-template-bench:latest"
    base = ensure_base_image(engine) if engine != "docker" else "localhost/nlp-base:bookworm"
    settings = [f"BASE_IMAGE={base}", f"IMAGE={image}", f"CONTAINER_ENGINE={engine}"]
    main = next((project / "src").glob("*/__main__.py"))
    original = main.read_text()
    lock, lock_in = (project / "requirements.txt").read_text(), (project / "requirements.in").read_text()

    def touch_src() -> None:
        main.write_text(original + f"\n# bench {time.time()}\n")

    nothing = lambda: None  # noqa: E731
    build = lambda *extra: lambda: bench.run(make_argv(project, "docker", *settings, *extra), project, env)  # noqa: E731
    bench.side_by_side(f"cold image build (--no-cache), {label}", {
        "uv builder (IMAGE_INSTALLER=uv)": (nothing, build("DOCKER_BUILD_ARGS=--no-cache", "IMAGE_INSTALLER=uv")),
        "pip builder (IMAGE_INSTALLER=pip)": (nothing, build("DOCKER_BUILD_ARGS=--no-cache", "IMAGE_INSTALLER=pip")),
    })  # fmt: skip
    printed = subprocess.run(make_argv(project, "docker", *settings, "DOCKER_BUILD_ARGS=--no-cache"),
                             capture_output=True, text=True, env=make_env(env), check=True).stdout  # fmt: skip
    bare = bare_build(printed, project, engine)
    bench.side_by_side(f"image build, {label}", {
        "make docker, no change": (nothing, build()),
        "make docker, after a src/ change": (touch_src, build()),
        f"{engine} build (the same command), after a src/ change": (touch_src, lambda: bench.run(bare, project, env)),
    })  # fmt: skip
    main.write_text(original)
    build()()
    size, base_size = _image_size(engine, image, env), _image_size(engine, base, env)
    models = sum(p.stat().st_size for p in (project / "build").glob("*.whl"))
    bench.notes.append(
        f"{label}: image size {size / 1e6:.0f} MB = base image {base_size / 1e6:.0f} MB + models, venv and src "
        f"{(size - base_size) / 1e6:.0f} MB (of which model wheels {models / 1e6:.0f} MB, installed unpacked)"
    )
    before, below = _layers(engine, image, env), len(_layers(engine, base, env))
    model_layers = list(before)[below : below + len(list((project / "build").glob("*.whl")))]  # above the base's
    for layer in model_layers:
        bench.notes.append(f"{label}: model layer {layer[7:19]}: {before[layer][1] / 1e6:.1f} MB")
    requirements = project / "requirements.in"
    requirements.write_text(lock_in + "six\n")  # a dependency bump: one more small package
    bumped = bench.run(make_argv(project, "docker", *settings, "INSTALLER=uv"), project, env)
    after = _layers(engine, image, env)
    new = {layer: entry for layer, entry in after.items() if layer not in before}
    models_new = [layer for layer in list(after)[below : below + len(model_layers)] if layer in new]
    bench.notes.append(
        f"{label}: a dependency bump (six added, relocked, rebuilt) took {bumped[0]:.1f} s: "
        f"{sum(entry[1] for entry in new.values()) / 1e6:.1f} MB of new layers ({len(new)} of {len(after)}), model "
        f"layers among them: {len(models_new)}"
    )
    requirements.write_text(lock_in)
    (project / "requirements.txt").write_text(lock)
    subprocess.run([engine, "rmi", "--force", image], capture_output=True, env=make_env(env))
    if engine != "docker":
        remove_image(engine, image)


def bare_build(printed: str, project: Path, engine: str) -> list[str]:
    """The engine's build command make docker printed ("$ podman build …"), its build secret an empty file."""
    line = next(x for x in printed.splitlines() if x.startswith(f"$ {engine} build "))
    secret = project / "build" / "bench-secret"
    secret.write_text("")
    line = line.replace("<build secret>", shlex.quote(str(secret)))  # printed in place of the path, unquoted
    return [part for part in shlex.split(line[2:]) if part != "--no-cache"]


def _layers(engine: str, image: str, env: dict[str, str]) -> dict[str, tuple[str, int]]:
    """Each layer's digest -> (the step that made it, its size in bytes), oldest first."""
    run = lambda *args: subprocess.run([engine, *args], capture_output=True, text=True, check=True,  # noqa: E731
                                       env=make_env(env)).stdout  # fmt: skip
    digests = json.loads(run("image", "inspect", image))[0]["RootFS"]["Layers"]
    if engine == "docker":
        listed = run("history", "--human=false", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image)
        found = [(created, int(size)) for size, _, created in (line.partition("\t") for line in listed.splitlines())
                 if size.isdigit()]  # fmt: skip
    else:  # podman's --format prints sizes as text whatever --human says; its JSON has bytes
        found = [(step["CreatedBy"], int(step["size"])) for step in json.loads(run("history", "--no-trunc", "--format",
                                                                                  "json", image))]  # fmt: skip
    steps = [(created, size) for created, size in found if size > 0]
    return dict(zip(digests, reversed(steps), strict=False))


def _image_size(engine: str, image: str, env: dict[str, str]) -> int:
    result = subprocess.run([engine, "image", "inspect", "--format", "{{.Size}}", image], capture_output=True,
                            text=True, env=make_env(env))  # fmt: skip
    return int(result.stdout.strip() or 0)


def report(bench: Bench) -> str:
    lines = ["| measurement | variant | median s | downloaded | ratio |", "|---|---|---:|---:|---:|"]
    for title, measures in bench.groups:
        base = min(m.median for m in measures) or 1e-9
        for m in measures:
            size = f"{m.bytes / 1e6:.1f} MB" if m.bytes else "0 B"
            lines.append(f"| {title} | {m.label} | {m.median:.3f} | {size} | {m.median / base:.2f}x |")
    lines += ["", f"Medians of {bench.rounds} runs, variants alternating; ratio to the fastest of its group."]
    lines += [f"- {note}" for note in bench.notes]
    return "\n".join(lines) + "\n"


def chart(bench: Bench, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(bench.groups), 1, figsize=(9, 2.1 * len(bench.groups)))
    for axis, (title, measures) in zip(figure.axes if len(bench.groups) > 1 else [axes], bench.groups, strict=True):
        bars = axis.barh([m.label for m in measures], [m.median for m in measures], color="#4c72b0")
        labels = [f" {m.median:.2f} s" + (f", {m.bytes / 1e6:.0f} MB fetched" if m.bytes else "") for m in measures]
        axis.bar_label(bars, labels=labels, fontsize=7)
        axis.margins(x=0.25)
        axis.set_title(title, fontsize=10, loc="left")
        axis.set_xlabel("seconds (median)", fontsize=8)
        axis.tick_params(labelsize=8)
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publish", action="store_true", help="also copy the table and chart into docs/")
    parser.add_argument("--skip", nargs="*", default=[], choices=["install", "lock", "download", "image"])
    args = parser.parse_args()
    mirror = Mirror()
    with MirrorServer(mirror), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["NLP_MODELS_CACHE"] = str(work / "model-cache")
        mirror.add_download(build_real_sm())
        padded_url = mirror.add_download(padded_wheel())
        project = render(work / "proj", spacy_models_url=mirror.download_base)
        urls = project / "requirements-model.in.url"
        urls.write_text(urls.read_text() + padded_url + "\n")
        print("bench: first make install (cold: download, lock, wheelhouse, sync) ...", flush=True)
        bench = Bench(mirror, work, args.rounds)
        seconds, sent = bench.run(make_argv(project, "install"), project)
        bench.notes.append(f"first make install: {seconds:.1f} s, {sent / 1e6:.1f} MB downloaded")
        steps = {"install": install_benchmarks, "lock": lock_benchmarks, "image": image_benchmarks}
        for name, step in steps.items():
            if name not in args.skip:
                step(bench, project)
        if "download" not in args.skip:
            download_benchmarks(bench, project, padded_url)
    OUT.mkdir(parents=True, exist_ok=True)
    table = report(bench)
    (OUT / "results.md").write_text(table)
    chart(bench, OUT / "chart.png")
    (OUT / "results.json").write_text(json.dumps([(t, [vars(m) for m in ms]) for t, ms in bench.groups], indent=1))
    print("\n" + table + f"\nwrote {OUT / 'results.md'} and {OUT / 'chart.png'}")
    if args.publish:
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(OUT / "results.md", docs / "bench.md")
        shutil.copyfile(OUT / "chart.png", docs / "bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

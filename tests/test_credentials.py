"""Private packages and credentials: installed by hash from a basic-auth source, the key never shown."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST
from tests.support.mirror import Mirror
from tests.support.project import make, render, venv_python
from tests.support.wheels import build_plain_wheel

KEY = "FAKE-PRODIGY-KEY-4f1c-9a7e"
TOKEN = "FAKE-INDEX-TOKEN-77d2b0c1"


@pytest.fixture
def private_source(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """The mirror's basic-auth area serves a 'prodigy' and an 'acme-private' wheel for this test."""
    out = tmp_path_factory.mktemp("private")
    wheels = [build_plain_wheel("prodigy", "1.15.5", out), build_plain_wheel("acme_private", "1.0.0", out)]
    mirror.private_files = {wheel.name: wheel for wheel in wheels}
    yield mirror
    mirror.private_files, mirror.private_credentials = {}, ("", "")


def seeded_project(tmp_path: Path, thin: Path, mirror: Mirror, **answers: object) -> Path:
    """A new rendering made thin: its one model and lock are `thin`'s, its requirements.in keeps only what the
    answers add (no spaCy, no pytest), so each test resolves and installs its private package, not spaCy's stack."""
    project = render(tmp_path / "proj", spacy_models_url=mirror.download_base, **answers)
    shutil.copytree(thin / "build", project / "build", ignore=shutil.ignore_patterns("tools", ".lock"),
                    dirs_exist_ok=True)  # fmt: skip
    for name in ("requirements-model.in.url", "requirements-model.in", "requirements.txt"):
        shutil.copyfile(thin / name, project / name)
    requirements = project / "requirements.in"
    kept = [line for line in requirements.read_text().splitlines() if not re.match(r"(spacy|pytest)\b", line)]
    requirements.write_text("\n".join(kept) + "\n")
    os.utime(project / "requirements.txt", (0, 0))  # older than requirements.in, so make compiles it again
    return project


def prodigy_env(mirror: Mirror, key: str) -> str:
    return f"PRODIGY_KEY={key}\nPIP_FIND_LINKS={mirror.private_url('$(PRODIGY_KEY)')}\n"


@pytest.fixture
def prodigy_project(tmp_path: Path, thin: Path, private_source: Mirror) -> Path:
    private_source.private_credentials = (KEY, "")
    return seeded_project(tmp_path, thin, private_source, use_prodigy=True)


class CommandLineWatcher:
    """Reads every process's command line while make runs, looking for a secret."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.seen: list[str] = []
        self.running = True
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        try:
            while self.running:
                self.sweep()
                time.sleep(0.005)  # a sweep every few ms sees pip's and uv's processes; a busy loop starves the suite
        except BaseException as error:  # a watcher that stopped watching must fail the test, not pass it
            self.error = error

    def sweep(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:  # the process may be gone by now (ENOENT, or ESRCH from /proc)
                data = Path("/proc", pid, "cmdline").read_bytes()
            except OSError:
                continue
            if self.secret in data:
                self.seen.append(data.replace(b"\0", b" ").decode(errors="replace"))

    def __enter__(self) -> CommandLineWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()
        if self.error is not None:
            raise RuntimeError("the command-line watcher stopped while make ran") from self.error


def test_prodigy_is_locked_and_installed_and_the_key_never_appears(
    prodigy_project: Path, private_source: Mirror, installer: str
) -> None:
    settings = {"INSTALLER": installer}
    project = prodigy_project
    (project / ".env").write_text(prodigy_env(private_source, KEY))
    assert "prodigy>=1.15,<2" in (project / "requirements.in").read_text()
    mark = private_source.mark()
    with CommandLineWatcher(KEY) as watcher:
        results = [make(project, "install", env=settings)]
    assert watcher.seen == [], "the key showed on a process command line"
    assert venv_python(project, "import prodigy; print(prodigy.__version__)").strip() == "1.15.5"
    private = [r for r in private_source.since(mark) if r.path.startswith("/private/")]
    assert private and all(r.status == 200 for r in private if r.authorization)  # uv may ask once without

    (project / "requirements.in").touch()
    results += [
        make(project, "-n", "install", env=settings),
        make(project, "--debug", "install", env=settings),
        make(project, "check-secrets"),
        make(project, "wheelhouse", env=settings),
    ]
    for result in results:
        assert KEY not in result.output, f"the key leaked into the output of {result.command}"
    lock = (project / "requirements.txt").read_text()
    assert re.search(r"^prodigy==1\.15\.5 \\\n    --hash=sha256:\w+", lock, re.MULTILINE)
    assert "--find-links" not in lock and "127.0.0.1" not in lock and KEY not in lock
    assert KEY not in (project / ".copier-answers.yml").read_text()
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    tracked = subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True).stdout
    assert ".env.example" in tracked and "\n.env\n" not in f"\n{tracked}"
    for name in tracked.split():
        assert KEY.encode() not in (project / name).read_bytes(), f"the key is in the tracked file {name}"


def test_a_missing_env_file_names_the_variable_before_pip_runs(prodigy_project: Path) -> None:
    os.remove(prodigy_project / ".env")
    result = make(prodigy_project, "install", env=FAST, check=False)
    assert result.returncode != 0
    assert ".env is missing, and PRODIGY_KEY must be set" in result.stderr
    assert "cp .env.example .env && chmod 600 .env" in result.stderr
    assert "compile" not in result.output


def test_an_empty_key_names_the_variable(prodigy_project: Path, private_source: Mirror) -> None:
    (prodigy_project / ".env").write_text(prodigy_env(private_source, ""))
    result = make(prodigy_project, "install", env=FAST, check=False)
    assert result.returncode != 0
    assert "PRODIGY_KEY is empty: set it in .env" in result.stderr
    assert "compile" not in result.output


def test_a_wrong_key_is_refused_by_name_without_showing_it(prodigy_project: Path, private_source: Mirror) -> None:
    wrong = "WRONG-KEY-0000-1111"
    (prodigy_project / ".env").write_text(prodigy_env(private_source, wrong))
    result = make(prodigy_project, "install", env=FAST, check=False)
    assert result.returncode != 0
    host = private_source.url.split("//")[1]
    assert (
        f"127.0.0.1 refused the credentials in PIP_FIND_LINKS (HTTP 401 from http://****@{host}/private/links.html): "
        "check PRODIGY_KEY and PIP_FIND_LINKS in .env"
    ) in result.stderr
    assert wrong not in result.output and "compile" not in result.output


def test_a_private_index_with_a_token_works_the_same_way(
    tmp_path: Path, thin: Path, private_source: Mirror, installer: str
) -> None:
    settings = {"INSTALLER": installer}
    private_source.private_credentials = ("ci", TOKEN)
    project = seeded_project(tmp_path, thin, private_source)
    requirements = project / "requirements.in"
    requirements.write_text(requirements.read_text() + "acme-private==1.0.0\n")
    index = private_source.private_url(f"ci:{TOKEN}", "simple")
    (project / ".env").write_text(f"PIP_EXTRA_INDEX_URL={index}\n")
    with CommandLineWatcher(TOKEN) as watcher:
        result = make(project, "install", env=settings)
    assert watcher.seen == []
    assert TOKEN not in result.output
    assert venv_python(project, "import acme_private; print(acme_private.__version__)").strip() == "1.0.0"
    assert TOKEN not in (project / "requirements.txt").read_text()

    (project / ".env").write_text(f"PIP_EXTRA_INDEX_URL={index.replace(TOKEN, 'not-the-token')}\n")
    requirements.write_text(requirements.read_text() + "# changed, so the lock is compiled again\n")
    result = make(project, "lock", env=settings, check=False)
    assert result.returncode != 0
    assert "refused the credentials in PIP_EXTRA_INDEX_URL (HTTP 401" in result.stderr
    assert "check PIP_EXTRA_INDEX_URL in .env" in result.stderr and "not-the-token" not in result.output


def test_check_secrets_finds_a_key_in_a_tracked_file(prodigy_project: Path, private_source: Mirror) -> None:
    (prodigy_project / ".env").write_text(prodigy_env(private_source, KEY))
    readme = prodigy_project / "README.md"
    readme.write_text(readme.read_text() + f"\nOur licence: {KEY}\n")
    subprocess.run(["git", "add", "README.md"], cwd=prodigy_project, check=True)
    result = make(prodigy_project, "check-secrets", check=False)
    assert result.returncode != 0
    line = len(readme.read_text().splitlines())
    assert f"README.md:{line} holds the value of PRODIGY_KEY" in result.stderr
    assert KEY not in result.output


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("PRODIGY_KEY=abc#def-secret-part", "holds a '#' make reads as a comment"),
        ('PRODIGY_KEY="quoted-secret-value"', "is quoted, and make keeps the quotes"),
        ("PRODIGY_KEY=trailing-secret-value  ", "ends with spaces or tabs"),
        ("PRODIGY_KEY=dollar$secret-value", "holds a '$' make would expand"),
        ("all: ; touch hacked", "is not a NAME=value line"),
    ],
    ids=["hash", "quotes", "trailing-space", "dollar", "not-an-assignment"],
)
def test_an_env_line_make_would_misread_is_refused_by_name(project: Path, line: str, problem: str) -> None:
    (project / ".env").write_text(f"# settings\n{line}\n")
    result = make(project, "models", env=FAST, check=False)
    assert result.returncode != 0
    assert ".env:2" in result.stderr and problem in result.stderr
    if line.startswith("PRODIGY_KEY"):
        assert "the value of PRODIGY_KEY" in result.stderr
    for secret in ("def-secret-part", "quoted-secret-value", "trailing-secret-value", "secret-value"):
        assert secret not in result.output
    assert "Traceback" not in result.output and not (project / "hacked").exists()


def test_an_escaped_hash_and_dollar_reach_the_helpers_whole(project: Path) -> None:
    (project / ".env").write_text("API_TOKEN=abc\\#def$$ghi-0123\n")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nabc#def$ghi-0123\n")
    subprocess.run(["git", "add", "README.md"], cwd=project, check=True)
    result = make(project, "check-secrets", env=FAST, check=False)
    assert result.returncode != 0
    assert "README.md" in result.stderr and "holds the value of API_TOKEN" in result.stderr
    assert "abc#def$ghi-0123" not in result.output

"""models/wheels.py: what a wheel is (its own METADATA), whether a model fits spaCy, and building one reproducibly."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.tools import Tools
from nlp_modeltools.models.wheels import (
    archive_name,
    backend_error,
    build_wheel,
    check_fits_python,
    check_identity,
    expected_identity,
    read_metadata,
    read_model_wheel,
    spacy_fits,
    wheel_filename,
)

FIX = "check the sdist"


def test_archive_names_are_wheels_and_sdists_read_by_packaging() -> None:
    name, version, tags = archive_name("en_core_web_sm-3.8.0-py3-none-any.whl")  # type: ignore[misc]
    assert (name, version, {str(t) for t in tags}) == ("en-core-web-sm", Version("3.8.0"), {"py3-none-any"})
    assert archive_name("en_acme_ner-1.0.0.tar.gz") == ("en-acme-ner", Version("1.0.0"), frozenset())
    assert archive_name("notes.txt") is None and archive_name("x-1.0-py3-none-any.zip") is None


def test_hub_wheel_names_promise_the_project_only() -> None:
    assert expected_identity("en_acme_ner-any-py3-none-any.whl", "x") == ("en-acme-ner", None)
    assert expected_identity("en_acme_ner-1.0.0rc1-py3-none-any.whl", "x") == ("en-acme-ner", Version("1.0.0rc1"))
    assert expected_identity("en_acme_ner-1.0.0.tar.gz", "x") == ("en-acme-ner", Version("1.0.0"))


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("../m-1.0-py3-none-any.whl", "l:1: '../m-1.0-py3-none-any.whl' is not a plain file name (no /, \\, .. or "
                                      "control characters)"),
        (".hidden-1.0-py3-none-any.whl", "l:1: '.hidden-1.0-py3-none-any.whl' is not a plain file name (no /, \\, .. "
                                         "or control characters)"),
        ("m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "l:1: m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl is built for "
                                                        "one platform; model wheels are pure Python (…-none-any.whl)"),
        ("m.zip", "l:1: 'm.zip' is neither a wheel (name-version-py3-none-any.whl) nor an sdist (name-version.tar.gz): "
                  "link to the model's wheel or source archive"),
    ],
)  # fmt: skip
def test_a_file_name_that_is_no_model_archive_is_refused(filename: str, message: str) -> None:
    with pytest.raises(UserError) as refused:
        expected_identity(filename, "l:1")
    assert str(refused.value) == message


def test_a_model_wheel_is_what_its_own_metadata_says(tmp_path: Path, make_wheel) -> None:
    path = make_wheel(tmp_path, "en_acme_ner", "1.2.0", metadata_name="en-acme.NER", requires_python=">=3.9",
                      requires=("spacy<3.9.0,>=3.8.0", "spacy-lookups-data; extra == 'lookups'", "rich"))  # fmt: skip
    wheel = read_model_wheel(path)
    assert (wheel.name, wheel.display_name, wheel.version) == ("en-acme-ner", "en-acme.NER", Version("1.2.0"))
    assert (wheel.pin, wheel.filename) == ("en-acme.NER==1.2.0", "en_acme_NER-1.2.0-py3-none-any.whl")
    assert str(wheel.requirement_on("SpaCy")) == "spacy<3.9.0,>=3.8.0" and wheel.requirement_on("numpy") is None
    assert str(wheel.requires_python) == ">=3.9"
    assert wheel_filename("en.acme-ner", Version("1.0")) == "en_acme_ner-1.0-py3-none-any.whl"


def test_wheel_metadata_refuses_what_is_not_a_wheel(tmp_path: Path) -> None:
    not_zip = tmp_path / "x-1.0-py3-none-any.whl"
    not_zip.write_text("<html></html>")
    with pytest.raises(UserError, match=r"^x-1.0-py3-none-any.whl is not a wheel \(File is not a zip file\): check"):
        read_metadata(not_zip)
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as archive:
        archive.writestr("x/__init__.py", "")
    with pytest.raises(UserError, match=r"^empty.whl is not a wheel: it holds 0 \*.dist-info/METADATA files, not one"):
        read_metadata(tmp_path / "empty.whl")
    with zipfile.ZipFile(tmp_path / "two.whl", "w") as archive:
        archive.writestr("a-1.dist-info/METADATA", "Name: a\nVersion: 1\n")
        archive.writestr("b-1.dist-info/METADATA", "Name: b\nVersion: 1\n")
    with pytest.raises(UserError, match=r"holds 2 \*.dist-info/METADATA files"):
        read_metadata(tmp_path / "two.whl")


def test_a_version_packaging_cannot_read_makes_an_unusable_wheel(tmp_path: Path, make_wheel) -> None:
    path = make_wheel(tmp_path, "en_bad", "1.0.0")
    broken = tmp_path / "broken.whl"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data.replace(b"Version: 1.0.0", b"Version: not a version") if "METADATA" in
                            item.filename else data)  # fmt: skip
    with pytest.raises(UserError, match=r"^broken.whl: its METADATA cannot be read \(.*\); it is not a usable wheel$"):
        read_model_wheel(broken)


def test_a_wheel_that_is_another_model_than_its_url_names_is_refused(tmp_path: Path, make_wheel) -> None:
    wheel = read_model_wheel(make_wheel(tmp_path, "en_other", "2.0.0"))
    with pytest.raises(UserError) as refused:
        check_identity(wheel, "en-acme-ner", Version("1.0.0"), "requirements-model.in.url:3")  # type: ignore[arg-type]
    assert str(refused.value) == (
        "requirements-model.in.url:3: the file is en_other 2.0.0, not en-acme-ner 1.0.0; nothing was kept"
    )
    check_identity(wheel, "en-other", None, "x")  # type: ignore[arg-type]  # a Hub name promises no version


def test_a_model_for_another_python_names_the_setting(tmp_path: Path, make_wheel) -> None:
    wheel = read_model_wheel(make_wheel(tmp_path, "en_future", "1.0.0", requires_python=">=4"))
    running = ".".join(map(str, sys.version_info[:3]))
    with pytest.raises(UserError) as refused:
        check_fits_python(wheel, "requirements-model.in.url:1")
    assert str(refused.value) == (
        f"en_future==1.0.0 (requirements-model.in.url:1) needs Python >=4, but make runs {running}: set PYTHON (in "
        ".env) to an interpreter that fits"
    )


@pytest.mark.parametrize(
    ("model", "project", "locked", "fits"),
    [
        (">=3.8.0,<3.9.0", ">=3.8,<3.9", None, True),
        (">=3.7.0,<3.8.0", ">=3.8,<3.9", None, False),
        (">3.8,<3.9", ">3.8.1,<3.8.5", None, True),
        ("<3.9.0,>=3.7.5", ">=3.8,<3.9", "3.8.7", True),
        (">=3.8.0,<3.8.5", ">=3.8,<3.9", "3.8.7", False),
        (">=3.8.0rc1,<3.9", ">=3.8,<3.9", None, True),
        ("~=3.7.0", ">=3.8,<3.9", None, False),
        # PEP 440 edges: <V excludes V's pre-releases, >V excludes V's post-releases, == with a wildcard
        (">=3.8.0,<3.9.0", ">=3.8", "3.9.0rc1", False),
        (">=3.8.0,<3.9.0rc2", ">=3.8", "3.9.0rc1", True),
        (">3.8.0", ">=3.8", "3.8.0.post1", False),
        (">=3.8.0", ">=3.8", "3.8.0.post1", True),
        ("==3.8.*", ">=3.8.2,<3.9", None, True),
        ("==3.8.*", ">=3.9", None, False),
        ("!=3.8.5", "==3.8.5", None, False),
        (">=3.8.0,<3.9.0", ">=3.8,<3.9", "3.8.7+cpu", True),
        # a lock outside the project's range (an old lock) says nothing: the ranges decide
        (">=3.8.0,<3.9.0", ">=3.8,<3.9", "3.7.5", True),
    ],
)
def test_a_model_fits_when_its_spacy_range_admits_the_projects(
    model: str, project: str, locked: str | None, fits: bool
) -> None:
    assert spacy_fits(SpecifierSet(model), SpecifierSet(project), Version(locked) if locked else None) is fits


# ---- building a wheel


SETUP_PY = """\
from setuptools import setup

setup(name="xx_tiny_model", version="1.0.0", packages=["xx_tiny_model"], package_data={"xx_tiny_model": ["*.cfg"]},
      install_requires=["spacy>=3.8.0,<3.9.0"])
"""
PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "xx_tiny_model"
version = "1.0.0"
dependencies = ["spacy>=3.8.0,<3.9.0"]

[tool.setuptools.package-data]
xx_tiny_model = ["*.cfg"]
"""


def write_source(directory: Path, kind: str) -> Path:
    """A model's source tree, as spacy package writes one: a setup.py or a pyproject.toml, a package, data."""
    (directory / "xx_tiny_model").mkdir(parents=True)
    (directory / "xx_tiny_model" / "__init__.py").write_text("__version__ = '1.0.0'\n")
    (directory / "xx_tiny_model" / "config.cfg").write_text("[nlp]\nlang = xx\n")
    (directory / ("setup.py" if kind == "setup.py" else "pyproject.toml")).write_text(
        SETUP_PY if kind == "setup.py" else PYPROJECT
    )
    return directory


@pytest.mark.parametrize("kind", ["setup.py", "pyproject.toml"])
def test_a_built_wheel_has_the_same_bytes_under_any_umask(kind: str, tmp_path: Path, tool_environ: dict) -> None:
    built = {}
    for umask in (0o022, 0o077, 0o002):
        before = os.umask(umask)
        try:
            source = write_source(tmp_path / f"src-{umask:o}" / "xx_tiny_model-1.0.0", kind)
            wheel = build_wheel(Tools(tool_environ), source, tmp_path / f"out-{umask:o}", "building", FIX)
            assert os.umask(umask) == umask, "the umask is given back"
        finally:
            os.umask(before)
        assert (wheel.pin, str(wheel.requirement_on("spacy"))) == ("xx_tiny_model==1.0.0", "spacy<3.9.0,>=3.8.0")
        built[umask] = wheel.path.read_bytes()
    assert built[0o022] == built[0o077] == built[0o002]
    with zipfile.ZipFile(wheel.path) as archive:
        modes = {info.filename: info.external_attr >> 16 & 0o777 for info in archive.infolist()}
        record = modes.pop("xx_tiny_model-1.0.0.dist-info/RECORD")  # written by the wheel library itself
        assert (set(modes.values()), record) == ({0o644}, 0o664) and "xx_tiny_model/config.cfg" in modes
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


GENERATING_SETUP_PY = """\
import os
from setuptools import setup
from setuptools.command.build_py import build_py


class with_generated(build_py):
    def run(self):
        super().run()
        with open(os.path.join(self.build_lib, "xx_tiny_model", "_generated.py"), "w") as module:
            module.write("MESSAGE = 'written by the build'\\n")


setup(name="xx_tiny_model", version="1.0.0", packages=["xx_tiny_model"], cmdclass={"build_py": with_generated})
"""


def test_a_file_the_build_writes_itself_is_0644_and_the_same_under_any_umask(
    tmp_path: Path, tool_environ: dict, sha256
) -> None:
    """A module the setup.py writes while it builds is created under the process's umask: under 077 it would be
    0600 in the wheel, and the wheel another file, but for the umask 022 the build runs under."""
    digests = set()
    for umask in (0o022, 0o077, 0o002):
        before = os.umask(umask)
        try:
            source = write_source(tmp_path / f"src-{umask:o}" / "xx_tiny_model-1.0.0", "setup.py")
            (source / "setup.py").write_text(GENERATING_SETUP_PY)
            wheel = build_wheel(Tools(tool_environ), source, tmp_path / f"out-{umask:o}", "building", FIX)
        finally:
            os.umask(before)
        with zipfile.ZipFile(wheel.path) as archive:
            generated = archive.getinfo("xx_tiny_model/_generated.py")
            assert archive.read(generated) == b"MESSAGE = 'written by the build'\n"
            assert generated.external_attr >> 16 == 0o100644, f"{generated.external_attr >> 16:o} under {umask:o}"
        digests.add(sha256(wheel.path))
    assert len(digests) == 1


def test_a_failed_build_is_one_line_with_the_backend_s_own_reason(tmp_path: Path, tool_environ: dict) -> None:
    source = tmp_path / "xx_broken-1.0.0"
    source.mkdir()
    (source / "setup.py").write_text("raise RuntimeError('this model needs a newer spacy package')\n")
    with pytest.raises(UserError) as failed:
        build_wheel(Tools(tool_environ), source, tmp_path / "out", "requirements-model.in.url:2: building xx", FIX)
    assert str(failed.value) == (
        "requirements-model.in.url:2: building xx failed: RuntimeError: this model needs a newer spacy package. "
        f"{FIX} (VERBOSE=1 shows its whole output)"
    )
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").glob("*.whl")) == []


def test_a_source_that_builds_two_wheels_is_refused(tmp_path: Path, tool_environ: dict, make_wheel) -> None:
    source = write_source(tmp_path / "xx_tiny_model-1.0.0", "pyproject.toml")
    out = tmp_path / "out"
    make_wheel(out, "xx_left_over", "0.1.0")
    with pytest.raises(UserError) as refused:
        build_wheel(Tools(tool_environ), source, out, "building xx", FIX)
    assert str(refused.value) == (
        f"building xx gave ['xx_left_over-0.1.0-py3-none-any.whl', 'xx_tiny_model-1.0.0-py3-none-any.whl'], not one "
        f"wheel. {FIX}"
    )


def test_the_backend_s_reason_is_its_last_error_line_not_build_s_summary() -> None:
    output = (
        "* Getting build dependencies for wheel...\n"
        "Traceback (most recent call last):\n"
        '  File "setup.py", line 1\n'
        "ValueError: the version in meta.json is not a version\n"
        "\n"
        "ERROR Backend subprocess exited when trying to invoke get_requires_for_build_wheel\n"
    )
    assert backend_error(output) == "ValueError: the version in meta.json is not a version"
    assert backend_error("error: invalid command 'bdist_wheel'\nTIP error: something else\n") == (
        "error: invalid command 'bdist_wheel'"
    )
    assert backend_error("all fine\n") is None

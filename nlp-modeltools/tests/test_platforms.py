"""core/platforms.py: an image's platform, Python and glibc, the wheel tags that fit it, and its markers."""

from __future__ import annotations

import sys

import pytest
from packaging.markers import Marker

from nlp_modeltools.core.errors import UserError
from nlp_modeltools.core.platforms import ImageTarget, image_target, is_host, manylinux_tags, native_platform


@pytest.mark.parametrize(
    ("platform", "python", "glibc", "message"),
    [
        ("linux/386", "3.11", "", "PLATFORM=linux/386 is not supported: use linux/amd64 or linux/arm64"),
        ("darwin/arm64", "3.11", "", "PLATFORM=darwin/arm64 is not supported: use linux/amd64 or linux/arm64"),
        ("linux/amd64", "3", "", "IMAGE_PYTHON=3 is not major.minor: write it like 3.11 (IMAGE_PYTHON) or 2.28 "
                                 "(IMAGE_GLIBC)"),
        ("linux/amd64", "", "", "IMAGE_PYTHON= is not major.minor: write it like 3.11 (IMAGE_PYTHON) or 2.28 "
                                "(IMAGE_GLIBC)"),
        ("linux/amd64", "3.11", "2.28.1", "IMAGE_GLIBC=2.28.1 is not major.minor: write it like 3.11 (IMAGE_PYTHON) "
                                          "or 2.28 (IMAGE_GLIBC)"),
    ],
)  # fmt: skip
def test_an_image_target_names_the_variable_to_fix(platform: str, python: str, glibc: str, message: str) -> None:
    with pytest.raises(UserError) as refused:
        image_target(platform, python, glibc)
    assert str(refused.value) == message


def test_an_image_target_defaults_to_this_machine_and_glibc_2_28() -> None:
    target = image_target("", "3.12", "")
    assert target == ImageTarget(native_platform(), "3.12", "2.28", glibc_given=False)
    arm = image_target("linux/arm64", "3.12", "2.31")
    assert (arm.arch, arm.key, arm.uv_platform, arm.glibc_given) == (
        "aarch64",
        "linux-arm64-py3.12",
        "aarch64-manylinux_2_31",
        True,
    )


def test_manylinux_tags_name_every_older_glibc() -> None:
    tags = manylinux_tags("2.28", "aarch64")
    assert tags[0] == "manylinux_2_28_aarch64" and "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert "manylinux1_aarch64" not in tags and "manylinux1_x86_64" in manylinux_tags("2.28", "x86_64")


def test_manylinux_tags_of_glibc_2_17_are_every_pep_in_order() -> None:
    assert manylinux_tags("2.17", "x86_64") == (
        *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 4, -1)),
        "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64",
    )  # fmt: skip
    assert manylinux_tags("2.12", "aarch64")[-1] == "linux_aarch64"
    assert "manylinux2014_aarch64" not in manylinux_tags("2.12", "aarch64"), "glibc 2.12 is older than 2014's 2.17"


def test_pip_is_told_the_image_s_python_abi_and_every_platform_tag() -> None:
    options = ImageTarget("linux/arm64", "3.12", "2.17").pip_options()
    assert options[:11] == ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                            "--abi", "cp312", "--abi", "abi3", "--abi", "none"]  # fmt: skip
    platforms = options[12::2]
    assert options[11::2] == ["--platform"] * len(platforms) and platforms == list(manylinux_tags("2.17", "aarch64"))


def test_a_lock_marker_is_judged_as_the_image_sees_it() -> None:
    image = ImageTarget("linux/arm64", "3.12", "2.28").marker_environment()
    assert Marker("sys_platform == 'linux' and platform_machine == 'aarch64'").evaluate(image)
    assert not Marker("sys_platform == 'darwin'").evaluate(image)
    assert Marker("python_version >= '3.12' and python_full_version < '3.13'").evaluate(image)
    assert not Marker("platform_machine == 'x86_64'").evaluate(image)
    assert Marker("implementation_name == 'cpython' and os_name == 'posix'").evaluate(image)


def test_a_target_of_another_python_or_platform_is_not_this_machine() -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert not is_host(ImageTarget(native_platform(), "2.7", "2.28"), here)
    other = "linux/arm64" if native_platform() == "linux/amd64" else "linux/amd64"
    assert not is_host(ImageTarget(other, here, "2.28"), here)
    if sys.platform == "linux":
        assert is_host(ImageTarget(native_platform(), here, "2.28"), here), "no IMAGE_GLIBC: this machine's wheels fit"
        assert not is_host(ImageTarget(native_platform(), here, "2.0", glibc_given=True), here)

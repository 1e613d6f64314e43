#!/bin/sh
# Install this kit into a new virtual environment, with no network: sh install.sh [VENV] (default ./.venv).
# Every file is checked against SHA256SUMS first. Then, with uv on PATH: uv pip sync pylock.toml;
# with pip 26.1 or newer in the venv: pip install -r pylock.toml; else pip from requirements.txt,
# --no-index --require-hashes. The venv's Python is PYTHON (default python3): the target's own.
set -eu
kit=$(cd "$(dirname "$0")" && pwd)
venv=${1:-./.venv}
case $venv in /*) ;; *) venv=$(pwd)/$venv ;; esac
cd "$kit"
if command -v sha256sum >/dev/null 2>&1; then
  sha256sum --quiet -c SHA256SUMS
else
  shasum -a 256 --quiet -c SHA256SUMS
fi
"${PYTHON:-python3}" -m venv "$venv"
if command -v uv >/dev/null 2>&1; then
  uv pip sync --quiet --offline --python "$venv/bin/python" pylock.toml
elif "$venv/bin/python" -c 'import sys, pip; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (26, 1))'; then
  "$venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check -r pylock.toml
else
  "$venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check --no-deps --require-hashes \
    --find-links wheels -r requirements.txt
fi
echo "install.sh: $venv holds the packages of this kit"

#!/bin/sh
# Installs requirements.txt into /app/.venv during the image build, then moves the venv to
# /out/app/.venv with every file time set to SOURCE_DATE_EPOCH (the final stage copies /out/ to /).
# The Dockerfile's build stage runs it bind-mounted (it adds no layer), with the project's build/ at
# /ctx/build and the lock at /ctx/requirements.txt. Its settings are the Dockerfile's build arguments:
#   WHEELHOUSE    a wheelhouse under build/ (default build/wheels); used when its .complete stamp is there
#   MODEL_LAYERS  1 (make docker): the models are in layers of their own under /opt/spacy-models, so
#                 the venv gets every other package and a .pth naming those directories
#   UV_WHEEL, UV_SHA256  uv's wheel (under build/) and its sha256 (scripts/tools.txt); empty: pip installs
# With no complete wheelhouse (a plain `docker build .`), the models come from build/ with no index and
# the rest from the package index, its address and credentials read from the build secret pip_env.
set -eu
ctx=/ctx
house=${WHEELHOUSE:-build/wheels}
lock=$ctx/requirements.txt
models=/tmp/models.txt
packages=/tmp/packages.txt
# The lock's models are the lines after its "# Models:" header (make lock writes them there).
sed -n '/^# Models:/,$p' "$lock" > "$models"
sed '/^# Models:/,$d' "$lock" > "$packages"

fail() {
  echo "image: $*" >&2
  exit 1
}

# The wheel of each locked model must be in build/ (a wheel's name has _ for - and .).
missing=
for pin in $(sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*\)==\([^ ;\\]*\).*/\1==\2/p' "$models"); do
  name=$(echo "${pin%%==*}" | tr '.-' '__')
  version=${pin#*==}
  if [ -z "$(find "$ctx/build" -maxdepth 1 -iname "$name-$version-*.whl" 2>/dev/null | head -n 1)" ] &&
     [ -z "$(find "$ctx/$house" -maxdepth 1 -iname "$name-$version-*.whl" 2>/dev/null | head -n 1)" ]; then
    missing="$missing $pin"
  fi
done
[ -z "$missing" ] || fail "no wheel in build/ for$missing: run make models (or make wheelhouse), then build again"

if [ "${MODEL_LAYERS:-}" = 1 ]; then
  wanted=$packages
else
  wanted=$lock
fi
mkdir -p /app
if [ -f "$ctx/$house/.complete" ]; then
  if [ -n "${UV_WHEEL:-}" ]; then
    echo "image: installing $(basename "$lock") from $house with uv, with no index"
    printf '%s  %s\n' "$UV_SHA256" "$ctx/$UV_WHEEL" | sha256sum --check --quiet -
    python3 -m zipfile -e "$ctx/$UV_WHEEL" /tmp/uv
    uv=$(find /tmp/uv -path '*.data/scripts/uv' | head -n 1)
    chmod +x "$uv"
    # uv 0.13 crashed here once (SIGSEGV) in some thirty builds: it gets a second try.
    for try in 1 2; do
      rm -rf /app/.venv
      if "$uv" venv --quiet --python python3 /app/.venv &&
         "$uv" pip sync --quiet --python /app/.venv/bin/python --no-index --find-links "$ctx/$house" \
           --require-hashes --compile-bytecode "$wanted"; then
        break
      fi
      [ "$try" = 2 ] && fail "uv could not install the wheelhouse (see above)"
      echo "image: uv failed (see above); a second try"
    done
    rm -rf /tmp/uv
    # uv records each wheel file's ctime here, another on every machine. (A lock of models only installs nothing.)
    find /app/.venv -name uv_cache.json -delete
    for record in /app/.venv/lib/python3*/site-packages/*.dist-info/RECORD; do
      if [ -f "$record" ]; then sed -i '/uv_cache\.json,/d' "$record"; fi
    done
  else
    echo "image: installing $(basename "$lock") from $house with pip, with no index"
    python3 -m venv /app/.venv
    /app/.venv/bin/pip install --quiet --no-index --find-links "$ctx/$house" --require-hashes --no-deps \
      --requirement "$wanted"
  fi
else
  [ "${MODEL_LAYERS:-}" != 1 ] || fail "$house/.complete is missing: run make docker, which makes the wheelhouse"
  echo "image: no complete wheelhouse in build/: models from build/ with no index, the other packages from the index"
  python3 -m venv /app/.venv
  /app/.venv/bin/pip install --quiet --no-index --find-links "$ctx/build" --require-hashes --no-deps \
    --requirement "$models"
  if [ -f /run/secrets/pip_env ]; then
    # Read, never evaluated: only pip's package sources are taken from the secret.
    while IFS='=' read -r name value || [ -n "$name" ]; do
      case "$name" in PIP_INDEX_URL | PIP_EXTRA_INDEX_URL | PIP_FIND_LINKS) export "$name=$value" ;; esac
    done < /run/secrets/pip_env
  fi
  /app/.venv/bin/pip install --quiet --require-hashes --no-deps --requirement "$packages"
fi
if [ "${MODEL_LAYERS:-}" = 1 ]; then
  for site in /app/.venv/lib/python3*/site-packages; do
    LC_ALL=C ls -d /opt/spacy-models/*/ > "$site/spacy_models.pth"
  done
fi

# Every locked model is there at its version, and each spaCy pipeline loads: a broken or missing model fails the
# build. spaCy is imported only when there is a pipeline to load (a model list may name any package).
/app/.venv/bin/python - "$models" <<'EOF'
import importlib.metadata as m, re, sys
pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", open(sys.argv[1]).read(), re.M)
bad = [f"{n}=={v}" for n, v in pins if {d.version for d in m.distributions(name=n)} != {v}]
if bad:
    sys.exit(f"image: models missing from the venv: {', '.join(bad)}")
pipelines = m.entry_points(group="spacy_models")
if pipelines:
    import spacy
for entry in pipelines:
    print("image: loaded", spacy.load(entry.name).meta["name"])
EOF

# The venv moves to /out/app/.venv (the final stage copies /out/ to /), every time set to
# SOURCE_DATE_EPOCH: the same bytes from any build, clone or machine.
# The venv also records that time as its content: an engine's cache matches a COPY by content (BuildKit
# ignores file times), so a layer cached for another commit's time is never taken for this one's.
mkdir -p /out/app
mv /app/.venv /out/app/.venv
echo "${SOURCE_DATE_EPOCH:-315532800}" > /out/app/.venv/SOURCE_DATE_EPOCH
find /out -exec touch -h -d "@${SOURCE_DATE_EPOCH:-315532800}" {} +

"""nlp-modeltools: spaCy models known by their source, fetched once, locked by hash, baked into images.

The engine behind nlp-template's generated Makefile; `nlp-models` (cli.py, its VERBS table) is its
command line, and a project not made from the template uses it on the same files.

The verbs, each a function of a module named for its subject:
collect      make models, prune, links, check-models: the listed sources -> build/ -> requirements-model.in
locking      make lock, upgrade: requirements.txt, by hash
dockerbuild  make wheelhouse, docker, docker-verify: a target platform's wheelhouse and its image
bundle       make bundle: an offline install kit
pipelines    make package: your own pipelines as model wheels
publish      make publish: model wheels to the team index (twine)
sbom, push   make sbom (cyclonedx-py), make push (the engine's login and push)
cache        make cache-info, cache-prune
secrets      make check-secrets, check-env; required variables, private sources, leak checks
venv         the install's failure path: the wheelhouse file to blame

What they are made of, lowest first:
errors       one-line errors, what may be printed, the one way to run a tool
files        atomic writes, link-or-copy, sha256 and its cache, the project lock (filelock)
envfile      the one reader of .env, with make's meaning of each line
settings     where files are, the settings make exports, an HTTP session per credential scope
http         requests sessions as pip has them (netrc, proxies, CA bundles, retries), credentials by origin
store        the machine-wide model cache: downloads (resumed), entries by sha256
inputs       the project's lists of models (.url, .range) and requirements.in's checks
wheels       what a wheel or sdist is (packaging), whether it fits spaCy and Python, building one
fetch        one model source's wheel into build/, checked, through the store
releases     the links page, from GitHub's releases API or a team index
ranges       the release a ranged model gets
resolve      pip-compile or uv pip compile, every model as its build/ file
lockfile     requirements.txt: read, finish, check, compare
wheelhouse   build/wheels (or an image's): every locked file, by hash
envs         the tools' own venvs (spaCy for make package, cyclonedx, twine)
image        engine, platform, model layers and the image build
"""

__version__ = "0.4.0"

"""nlp-modeltools: spaCy models known by their source, fetched once, locked by hash, baked into images.

The engine behind nlp-template's generated Makefile; `nlp-models` (cli.py, its VERBS table) is its
command line, and a project not made from the template uses it on the same files. The flow is
one-way: make models writes build/models.json (the manifest), every later verb reads it and the lock.

Layers, lowest first (a module imports only from its own layer or below; verbs never import verbs;
the one back edge, models/collect.py reading the previous lock, is stated there):

core      errors (one-line failures, redaction, running a tool), files (atomic writes, sha256 and its cache,
          locks), envfile (.env as make reads it), http (requests sessions as pip has them), paths, platforms
          (an image's platform, Python and glibc), secrets (required variables, private sources, leaks), tools
models    wheels, inputs (.url and .range lines), store (the machine-wide cache), fetch, releases (the links
          page), ranges, pipelines, manifest (build/models.json), collect (make models' flow)
lock      lockfile (requirements.txt: read, finish, check, compare), resolve (pip-compile or uv, models as files)
ship      wheelhouse, targets (a target's lock and wheelhouse), engine (podman or docker, BuildKit checked),
          image (model layers and the build), imagediff (where two builds differ), envs (the verbs' own venvs),
          sbom (CycloneDX)
config    the settings make exports, read once, and the values made of them for the layers below
verbs     collect (models, links, check-models, prune), locking (lock, upgrade), dockerbuild (wheelhouse, docker,
          docker-verify), bundle, package, publish, push, sbom, cache, secrets, install (the install's failure path)
cli       nlp-models VERB
"""

__version__ = "0.4.0"

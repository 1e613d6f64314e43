"""The steps behind the generated Makefile; scripts/models.py is their command line.

settings    where files are, the settings make exports, credentials by origin
envfile     the one reader of .env, with make's meaning of each line
inputs      the project's lists of models (.url, .range) and requirements.in's check
wheels      what a wheel is (its METADATA, via packaging) and whether it fits spaCy
fetch       model wheels into build/, through the machine's store (src/<pkg>/modelstore.py)
releases    the links page, from GitHub's releases API or a team index
ranges      the release a ranged model gets
resolve     pip-compile or uv pip compile, every model as its build/ file
lockfile    requirements.txt: read, finish, check, compare
wheelhouse  build/wheels (or an image's): every locked file, by hash
venv        .venv, synced with no index
secrets     required variables, private sources, leak checks
image       engine, platform and the image build
pipelines   make package: your own pipelines as model wheels
steps       one function a Makefile verb
files       atomic writes, the hash cache, the project lock
errors      one-line errors and the one way to run a tool
"""

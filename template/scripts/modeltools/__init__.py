"""The logic behind the Makefile's targets, standard library only (it runs before any venv).

scripts/models.py is the command line; these modules are its parts:

    common       errors, atomic writes, hashing, URL redaction
    versions     PEP 440 specifiers for the plain X.Y.Z versions spaCy uses
    wheels       wheel metadata and the spaCy/Python compatibility checks
    net          downloads with progress, retries and no partial files
    github       the releases API and the find-links page built from it
    project      the project's files: model URLs, pins, requirements, ranges
    lockfile     reading and rewriting pip-compile's output
    credentials  .env secrets: required variables, private sources, leak checks
"""

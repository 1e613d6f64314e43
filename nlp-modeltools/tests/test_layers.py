"""The engine's layers, read from its source (ast): who may import whom.

core <- models <- lock <- ship <- config <- verbs <- cli. config sits below the verbs
because each verb takes a Settings; nothing below config reads it. Imports inside
functions and under TYPE_CHECKING count: a layer is a rule of the design, not of
import time. The one edge upwards is models/collect.py -> lock/lockfile.py (a
relock keeps the ranged versions of the previous lock).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import nlp_modeltools
from nlp_modeltools import cli

PACKAGE = Path(nlp_modeltools.__file__).resolve().parent
LAYERS = {"core": 0, "models": 1, "lock": 2, "ship": 3, "config": 4, "verbs": 5, "cli": 6}
ALLOWED_UPWARDS = {("nlp_modeltools.models.collect", "nlp_modeltools.lock.lockfile")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The engine module an imported name is (a submodule when it is one, else its package), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every engine module `module` imports, anywhere in its file."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {resolve(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # relative imports: see their own test
            base = node.module or ""
            found |= {resolve(f"{base}.{alias.name}") for alias in node.names}
    return {name for name in found if name and name.startswith("nlp_modeltools") and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def layer(module: str) -> int | None:
    """The layer of a module (a subpackage's, for its empty __init__); None for the package's own __init__."""
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_belongs_to_a_layer() -> None:
    strays = [m for m in MODULES if m != "nlp_modeltools" and m.split(".")[1] not in LAYERS]
    assert strays == [], f"give these a layer in LAYERS (and the design): {strays}"


def test_imports_are_absolute() -> None:
    """A relative import would hide an edge from these rules (and from a reader)."""
    relative = [
        f"{module}: from {'.' * node.level}{node.module or ''} import …"
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert relative == []


def test_there_is_no_import_cycle() -> None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(GRAPH[module]):
            if state.get(imported) == "open":
                cycle = [*path[path.index(imported) :], imported]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{module} -> {imported}"
        for module, imported_set in GRAPH.items()
        for imported in sorted(imported_set)
        if layer(module) is not None
        and layer(imported) is not None
        and layer(imported) > layer(module)  # type: ignore[operator]
        and (module, imported) not in ALLOWED_UPWARDS
    ]
    assert upward == []


def test_the_one_allowed_upward_edge_is_still_needed_and_stated() -> None:
    """An exception nobody uses any more is removed from ALLOWED_UPWARDS; the one used is documented."""
    for module, imported in ALLOWED_UPWARDS:
        assert imported in GRAPH[module]
    from nlp_modeltools.models.collect import collect_models

    assert "previous requirements.txt is read" in (collect_models.__doc__ or "")


def test_verbs_never_import_verbs() -> None:
    crossing = [
        f"{module} -> {imported}"
        for module, imported_set in GRAPH.items()
        if module.startswith("nlp_modeltools.verbs.")
        for imported in imported_set
        if imported.startswith("nlp_modeltools.verbs.")
    ]
    assert crossing == []


def test_nothing_below_config_imports_config() -> None:
    below = [m for m in GRAPH if layer(m) is not None and layer(m) < LAYERS["config"]]  # type: ignore[operator]
    assert [m for m in below if "nlp_modeltools.config" in GRAPH[m] or "nlp_modeltools.cli" in GRAPH[m]] == []


def test_the_layer_rules_see_real_imports() -> None:
    """The parser is not blind: known edges of each kind are found."""
    assert "nlp_modeltools.lock.lockfile" in GRAPH["nlp_modeltools.models.collect"]  # from … import lockfile
    assert "nlp_modeltools.models.manifest" in GRAPH["nlp_modeltools.config"]  # from package import module
    assert "nlp_modeltools.core.http" in GRAPH["nlp_modeltools.config"]  # inside a function, TYPE_CHECKING
    assert "nlp_modeltools.config" in GRAPH["nlp_modeltools.verbs.collect"]


def test_every_module_imports() -> None:
    names = [info.name for info in pkgutil.walk_packages(nlp_modeltools.__path__, "nlp_modeltools.")]
    assert set(names) | {"nlp_modeltools"} == set(MODULES)
    for name in names:
        importlib.import_module(name)


@pytest.mark.parametrize("verb", sorted(cli.VERBS))
def test_each_verb_of_the_command_line_is_a_function_of_a_verbs_module(verb: str) -> None:
    module, function, help_text = cli.VERBS[verb]
    assert f"nlp_modeltools.verbs.{module}" in MODULES
    assert callable(getattr(importlib.import_module(f"nlp_modeltools.verbs.{module}"), function))
    assert help_text and len(help_text) <= 120

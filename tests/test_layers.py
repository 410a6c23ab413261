"""The layers of the code (docs/architecture.md): a lower layer never imports a higher one, and no
two modules import each other, directly or round a circle.

Read from the source with `ast`, so every import counts: at module level, inside functions (the CLI
imports lazily), under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import networkx as nx
import pytest

pytestmark = pytest.mark.nodb

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own layer and the ones before it.
LAYERS = ("core", "db", "accounts", "network_analysis", "spatial", "ingest", "telemetry", "demo", "emergency", "app")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Project modules that `source` (the text of `module`) imports, relative imports resolved.

    `from pkg import name` counts as importing pkg, and pkg.name too when that is a module.
    """
    known = set(project_modules())
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from pkg import module` imports the module too
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return {name for name in found if name.split(".")[0] in LAYERS}


def layer_violations(module: str, imports: set[str]) -> list[str]:
    """`module imports x`, for each import of a higher layer than the module's own."""
    own = LAYERS.index(module.split(".")[0])
    return sorted(f"{module} imports {name}" for name in imports if LAYERS.index(name.split(".")[0]) > own)


@functools.cache
def project_modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for top in LAYERS:
        for path in sorted((ROOT / top).rglob("*.py")) if (ROOT / top).is_dir() else []:
            modules[module_name(path)] = (path, path.name == "__init__.py")
    return modules


def import_graph() -> nx.DiGraph:
    modules = project_modules()
    graph = nx.DiGraph()
    for name, (path, is_package) in modules.items():
        graph.add_node(name)
        for target in imported_modules(path.read_text(encoding="utf-8"), name, is_package):
            if target in modules and target != name:
                graph.add_edge(name, target)
    return graph


def test_every_top_level_folder_of_code_is_a_declared_layer() -> None:
    code_folders = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert code_folders - {"tests", "migrations", "bench"} <= set(LAYERS)


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for name, (path, is_package) in project_modules().items():
        violations += layer_violations(name, imported_modules(path.read_text(encoding="utf-8"), name, is_package))
    assert violations == []


def test_no_import_circles() -> None:
    # A package's __init__ importing its own submodules is not a circle worth reporting; none do today.
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == []


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("network_analysis.burst", "from app.errors import QiwangError", ["network_analysis.burst imports app.errors"]),
    ("core.crs", "def f():\n    import db.engine\n", ["core.crs imports db.engine"]),
    ("spatial.features", "from app import web", ["spatial.features imports app", "spatial.features imports app.web"]),
    ("telemetry.store", "from . import payload\nfrom db.engine import get_engine", []),
    ("app.web", "from telemetry import health", []),
])
def test_the_check_itself_catches_a_lower_layer_importing_a_higher(module: str, source: str,
                                                                   expected: list[str]) -> None:
    assert layer_violations(module, imported_modules(source, module)) == expected

"""The house: imports run only downward through the floors, no cycles, no product import of the sandbox,
no module over 400 lines. The floors are written down here, once."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower floors never import higher ones; packages on one floor never import each other.
FLOORS: dict[str, int] = {
    "core": 1,  # the ground: domain types, settings, config models, storage, codec, metrics, logs
    "connectors": 2,  # talks to providers
    "rules": 2,  # the routing language (parses nothing)
    "delivery": 2,  # hands over: recipients, approval, channels, outbox worker
    "collector": 3,  # persists what connectors list
    "router": 3,  # decides, using rules/
    "postbud": 4,  # the application: daemon, runtime, CLI, API, back office
}
SANDBOX = "sandbox"  # beside the house: may import anything, imported by no product module
MAX_LINES = 400
# Schema migrations are generated history, not hand-written modules.
EXCLUDED_PARTS = {"migrations"}


def _modules(packages: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if EXCLUDED_PARTS & set(path.relative_to(ROOT).parts):
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


PRODUCT = _modules(list(FLOORS))
EVERYTHING = {**PRODUCT, **_modules([SANDBOX])}


def _imports(module: str, path: Path, known: Collection[str] = EVERYTHING.keys()) -> Iterator[tuple[str, int]]:
    """Every module among `known` that `module` imports, anywhere in the file (functions included)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` imports module a.b when there is one, else a name from a
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name, node.lineno


def _top(module: str) -> str:
    return module.partition(".")[0]


GRAPH: dict[str, set[str]] = {m: {t for t, _ in _imports(m, p)} for m, p in PRODUCT.items()}


def test_the_floors_cover_every_package() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "deploy"}
    assert packages == set(FLOORS) | {SANDBOX}, "a new top-level package needs its floor in FLOORS"


def test_imports_only_run_downward() -> None:
    wrong = []
    for module, path in PRODUCT.items():
        here = _top(module)
        for target, line in _imports(module, path):
            there = _top(target)
            if there == SANDBOX:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} imports the sandbox ({target})")
            elif there != here and FLOORS[there] >= FLOORS[here]:
                how = "a higher floor" if FLOORS[there] > FLOORS[here] else "its own floor"
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}, on {how}")
    assert wrong == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in PRODUCT:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(PRODUCT):
        if module not in index:
            visit(module)
    return sorted(found)


def test_no_import_cycles() -> None:
    assert _cycles() == []


@pytest.mark.parametrize("folder", [*FLOORS, SANDBOX])
def test_no_module_over_400_lines(folder: str) -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in EVERYTHING.items()
             if _top(name) == folder}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_checker_sees_imports_in_functions_relative_ones_and_submodules(tmp_path: Path) -> None:
    # GIVEN a module that imports lazily, relatively and a submodule by `from package import name`
    source = tmp_path / "mod.py"
    source.write_text(
        "import core.config\n"
        "from . import sibling\n"
        "from ..up import thing\n"
        "from a import b, c\n"
        "def later() -> None:\n"
        "    from deep.er import x\n",
        encoding="utf-8",
    )
    known = {"core.config", "pkg.sub.sibling", "pkg.up", "a", "a.b", "deep.er"}
    # THEN each resolves to the module it loads, the one in the function body included
    found = sorted(t for t, _ in _imports("pkg.sub.mod", source, known))
    assert found == ["a", "a.b", "core.config", "deep.er", "pkg.sub.sibling", "pkg.up"]

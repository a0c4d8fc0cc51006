"""The house: imports between the modules of ``conformance/`` follow the floors of
docs/architecture.md.

The imports are read from the sources (``ast``), so that no module is imported and nothing runs:
every ``import`` counts, those inside a function or under ``TYPE_CHECKING`` included, since each is
a dependency a reader has to follow. The floors and the place of every module are data below; a
module added to ``conformance/`` that no entry of ``PLACES`` covers fails the first test, which
names the file to classify.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "conformance"

# The floors, top to bottom (docs/architecture.md): an import may stay on its floor or go down,
# never up.
FLOORS: dict[str, int] = {
    "cli": 4,
    "plugin / runner": 3,
    "checks": 2,
    "client · neighbours · load · reference · report writers": 1,
    "ground": 0,
}

# Where each module lives: ``conformance.x`` is that module alone, ``conformance.x.*`` the
# package ``x`` and every module in it; the longest entry covering a module decides. A new module
# is classified by adding its name (or its package's) here.
PLACES: dict[str, str] = {
    "conformance.cli": "cli",
    "conformance.plugin": "plugin / runner",
    "conformance.runner": "plugin / runner",
    "conformance.run_plan": "plugin / runner",
    "conformance.allure_report": "plugin / runner",
    "conformance.checks.*": "checks",
    "conformance.figures": "checks",
    "conformance.preflight": "checks",
    "conformance.client.*": "client · neighbours · load · reference · report writers",
    "conformance.neighbours": "client · neighbours · load · reference · report writers",
    "conformance.load.*": "client · neighbours · load · reference · report writers",
    "conformance.reference.*": "client · neighbours · load · reference · report writers",
    "conformance.report.*": "client · neighbours · load · reference · report writers",
    "conformance.authority.*": "client · neighbours · load · reference · report writers",
    "conformance.report.model": "ground",
    "conformance": "ground",
    "conformance.signing": "ground",
    "conformance.codes": "ground",
    "conformance.profile": "ground",
    "conformance.schemas": "ground",
    "conformance.data": "ground",
    "conformance.target": "ground",
    "conformance.tls": "ground",
    "conformance.ats": "ground",
    "conformance.masking": "ground",
    "conformance.compare": "ground",
    "conformance.envvars": "ground",
    "conformance.outcomes": "ground",
    "conformance.options": "ground",
    "conformance.topology": "ground",
    "conformance.openapi": "ground",
    "conformance.schemathesis_hooks": "ground",
}

# The reference node is a server of the standard, the harness its client: they share the ground
# floor only. The command line alone starts a reference node in process (``conformance serve``).
REFERENCE = "conformance.reference"
REFERENCE_IMPORTERS = frozenset({"conformance.cli"})


@dataclass(frozen=True)
class Import:
    """One import of one module of ``conformance`` by another: where it is and what it names."""

    importer: str
    imported: str
    path: Path
    line: int

    @property
    def where(self) -> str:
        """``conformance/x.py:12``."""
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _module_of(name: str) -> str | None:
    """The module ``name`` is or lives in (``conformance.x.y`` of a function ``y`` → ``x``)."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    for alias in node.names:
        # ``from conformance.checks import node`` imports a module; ``… import check`` a name.
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in modules() else base


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a module of ``conformance`` by another module of it."""
    found: list[Import] = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported_names(module, path, node):
                target = _module_of(name) if name.split(".")[0] == "conformance" else None
                if target is not None and target != module:
                    found.append(Import(module, target, path, node.lineno))
    return tuple(found)


def floor_of(module: str) -> str | None:
    """The floor of ``module``: that of the longest entry of ``PLACES`` covering it."""
    if module in PLACES:
        return PLACES[module]
    package = module.rpartition(".")[0]
    while package:
        if f"{package}.*" in PLACES:
            return PLACES[f"{package}.*"]
        package = package.rpartition(".")[0]
    return PLACES.get(f"{module}.*")


def _cycle() -> list[Import] | None:
    """One import cycle among the modules, as the imports that close it, or None."""
    edges: dict[str, list[Import]] = {}
    for imp in imports():
        edges.setdefault(imp.importer, []).append(imp)
    done: set[str] = set()
    for start in sorted(modules()):
        if start in done:
            continue
        # Depth-first with an explicit stack: the path from ``start`` is the stack of imports.
        path: list[Import] = []
        on_path = {start}
        stack: list[Iterator[Import]] = [iter(edges.get(start, ()))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                left = path.pop().imported if path else start
                on_path.discard(left)
                done.add(left)
                continue
            if step.imported in on_path:
                closes = (i for i, imp in enumerate(path) if imp.importer == step.imported)
                return [*path[next(closes, len(path)) :], step]
            if step.imported in done:
                continue
            path.append(step)
            on_path.add(step.imported)
            stack.append(iter(edges.get(step.imported, ())))
    return None


def test_the_reading_sees_the_imports() -> None:
    """The parser finds imports of every kind (an empty reading would pass every test below)."""
    seen = {(imp.importer, imp.imported) for imp in imports()}
    assert ("conformance.plugin", "conformance.checks") in seen  # from x import name
    assert (
        "conformance.reference.app",
        "conformance.reference.audit",
    ) in seen  # from pkg import module
    assert ("conformance.reference.runtime", "conformance.reference.store") in seen  # TYPE_CHECKING
    assert ("conformance.reference.launcher", "conformance.reference.__main__") in seen  # in a def


def test_every_module_is_classified() -> None:
    unplaced = [
        f"classify {path.relative_to(ROOT).as_posix()} in tests/test_architecture.py (PLACES)"
        for module, path in modules().items()
        if floor_of(module) is None
    ]
    if unplaced:
        pytest.fail("\n".join(unplaced))
    assert set(PLACES.values()) <= set(FLOORS), set(PLACES.values()) - set(FLOORS)


def test_no_import_runs_up_a_floor() -> None:
    upward = []
    for imp in imports():
        low, high = floor_of(imp.importer), floor_of(imp.imported)
        if low is None or high is None or FLOORS[high] <= FLOORS[low]:
            continue
        upward.append(
            f"{imp.where}: {imp.importer} imports {imp.imported}, "
            f"from floor {low!r} up to floor {high!r}"
        )
    if upward:
        pytest.fail("\n".join(upward))


def test_no_import_cycle() -> None:
    cycle = _cycle()
    if cycle is not None:
        pytest.fail(
            "import cycle:\n"
            + "\n".join(f"{imp.where}: {imp.importer} imports {imp.imported}" for imp in cycle)
        )


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_reference_node_imports_only_itself_and_the_ground_floor() -> None:
    strays = [
        f"{imp.where}: {imp.importer} imports {imp.imported} (floor {floor_of(imp.imported)!r})"
        for imp in imports()
        if _inside(imp.importer, REFERENCE)
        and not _inside(imp.imported, REFERENCE)
        and floor_of(imp.imported) != "ground"
    ]
    if strays:
        pytest.fail("\n".join(strays))


def test_the_harness_does_not_import_the_reference_node() -> None:
    strays = [
        f"{imp.where}: {imp.importer} imports {imp.imported}"
        for imp in imports()
        if _inside(imp.imported, REFERENCE)
        and not _inside(imp.importer, REFERENCE)
        and imp.importer not in REFERENCE_IMPORTERS
    ]
    if strays:
        pytest.fail("\n".join(strays))


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        (
            {"a": "import conformance.b\n", "b": "from conformance.a import x\n"},
            ["conformance.a imports conformance.b", "conformance.b imports conformance.a"],
        ),
        ({"a": "import conformance.b\n", "b": "from conformance import c\n", "c": ""}, []),
    ],
)
def test_the_cycle_search_finds_a_cycle_and_only_a_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: dict[str, str], expected: list[str]
) -> None:
    package = tmp_path / "conformance"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in sources.items():
        (package / f"{name}.py").write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    modules.cache_clear()
    imports.cache_clear()
    try:
        found = [f"{imp.importer} imports {imp.imported}" for imp in _cycle() or []]
    finally:
        modules.cache_clear()
        imports.cache_clear()
    assert found == expected

"""DESIGN.md's layers, checked on the source.

Arrows point down only: ``switchboard -> api -> agents -> tools -> runtime -> engine, store`` (api
also calls runtime and store directly). ``ALLOWED`` is the whole table of package edges; any other
import between the project's packages fails, and so does a cycle. ``store/`` is Postgres only: it
speaks no HTTP.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import store
from engine.auth import TOKEN_FIELDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("switchboard", "api", "agents", "tools", "runtime", "engine", "store")

# package -> the project packages it may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "switchboard": frozenset({"api", "agents", "tools", "runtime", "engine", "store"}),
    "api": frozenset({"agents", "tools", "runtime", "engine", "store"}),
    "agents": frozenset({"tools", "runtime", "engine", "store"}),
    "tools": frozenset({"runtime", "engine", "store"}),
    "runtime": frozenset({"engine", "store"}),
    "engine": frozenset(),
    "store": frozenset(),
}
HTTP_LIBRARIES = ("httpx", "requests", "urllib.request", "http.client", "aiohttp")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute), anywhere in it, with the line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _package(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in PACKAGES else None


def _matches(module: str, names: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in names)


def violations(root: Path) -> list[str]:
    """``path:line: importer -> imported`` for every import between packages that ``ALLOWED`` does
    not list, and every HTTP library imported by ``store/``."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for line, module in _imports(path):
                target = _package(module)
                where = f"{path.relative_to(root)}:{line}"
                if target is not None and target != package and target not in ALLOWED[package]:
                    found.append(f"{where}: {package} -> {target} ({module})")
                if package == "store" and _matches(module, HTTP_LIBRARIES):
                    found.append(f"{where}: store speaks no HTTP ({module})")
    return found


def edges(root: Path) -> set[tuple[str, str]]:
    """The package edges the source has."""
    return {
        (package, target)
        for package in PACKAGES
        for path in (root / package).rglob("*.py")
        for _, module in _imports(path)
        if (target := _package(module)) is not None and target != package
    }


def _cycle(graph: set[tuple[str, str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path of packages, or None."""
    successors: dict[str, set[str]] = {}
    for a, b in graph:
        successors.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(successors.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(successors):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_the_check_sees_imports_wherever_they_are(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nfrom engine.auth import TokenSet\n\ndef f():\n    import httpx\n"
        "    from . import sibling\n    return importlib.import_module('api._app')\n"
    )
    assert [m for _, m in _imports(sample)] == ["os", "engine.auth", "httpx", "api._app"]


def test_a_forbidden_import_is_reported(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "runtime" / "_bad.py").write_text("import store\nfrom api._auth import Principal\n")
    (tmp_path / "engine" / "_bad.py").write_text("def f():\n    import runtime\n")
    (tmp_path / "store" / "_bad.py").write_text("import httpx\n")
    (tmp_path / "api" / "_ok.py").write_text("import runtime, engine, store\n")
    assert violations(tmp_path) == [
        "runtime/_bad.py:2: runtime -> api (api._auth)",
        "engine/_bad.py:2: engine -> runtime (runtime)",
        "store/_bad.py:1: store speaks no HTTP (httpx)",
    ]


def test_the_cycle_check_finds_cycles() -> None:
    assert _cycle({("a", "b"), ("b", "c"), ("c", "a")}) == ["a", "b", "c", "a"]
    assert _cycle({("a", "b"), ("a", "c"), ("b", "c")}) is None


def test_the_table_has_no_cycle() -> None:
    assert _cycle({(a, b) for a, targets in ALLOWED.items() for b in targets}) is None


def test_every_import_between_packages_is_allowed() -> None:
    assert violations(ROOT) == []


def test_the_packages_import_graph_has_no_cycle() -> None:
    assert _cycle(edges(ROOT)) is None


@pytest.mark.parametrize("package", ["api", "runtime", "engine", "store"])
def test_no_package_reaches_up_to_the_shell(package: str) -> None:
    assert not any(target == "switchboard" for source, target in edges(ROOT) if source == package)


def test_the_token_fields_a_connection_keeps_are_the_engines() -> None:
    # store/ repeats engine.auth.TOKEN_FIELDS because it may not import it; the two must agree.
    assert store.OAUTH_TOKEN_FIELDS == TOKEN_FIELDS

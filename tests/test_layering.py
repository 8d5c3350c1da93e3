"""DESIGN.md's layers, checked on the source: ``store/`` is Postgres only. It imports nothing of
the packages above it nor of the engine, and speaks no HTTP. (That ``engine/`` imports nothing
of the others is tests/test_public_surface.py's.)"""

from __future__ import annotations

import ast
from pathlib import Path

import store
from engine.auth import TOKEN_FIELDS

STORE = Path(store.__file__).parent
NOT_IN_STORE = ("engine", "api", "switchboard", "agents", "tools", "httpx", "requests", "urllib.request", "http.client", "aiohttp")


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


def _refused(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in NOT_IN_STORE)


def test_the_check_sees_imports_wherever_they_are(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nfrom engine.auth import TokenSet\n\ndef f():\n    import httpx\n"
        "    from . import sibling\n    return importlib.import_module('api._app')\n"
    )
    assert [m for _, m in _imports(sample) if _refused(m)] == ["engine.auth", "httpx", "api._app"]
    assert not _refused("enginex") and not _refused("store._db") and _refused("urllib.request")


def test_store_imports_neither_the_engine_nor_anything_above_it_nor_http() -> None:
    offenders = [
        f"{path.relative_to(STORE.parent)}:{line}: {module}"
        for path in sorted(STORE.rglob("*.py"))
        for line, module in _imports(path)
        if _refused(module)
    ]
    assert offenders == []


def test_the_token_fields_a_connection_keeps_are_the_engines() -> None:
    # store/ repeats engine.auth.TOKEN_FIELDS because it may not import it; the two must agree.
    assert store.OAUTH_TOKEN_FIELDS == TOKEN_FIELDS

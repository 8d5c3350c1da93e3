"""The catalog's labelled set: the connectors built from the repository's documents
(``tests/data/catalog/connectors.yaml``) and the queries with the entry each should find
(``tests/data/catalog/queries.yaml``). Used by the catalog tests and by ``bench/catalog.py``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "catalog"


@dataclass(frozen=True)
class Source:
    """One connector of the set: ``spec`` (a connector spec file) or ``openapi`` (a document to import)."""

    key: str
    path: Path
    openapi: bool


@dataclass(frozen=True)
class Labelled:
    query: str
    expect: str


def sources() -> list[Source]:
    rows = yaml.safe_load((DATA / "connectors.yaml").read_text())
    return [Source(r["key"], ROOT / (r.get("openapi") or r["spec"]), "openapi" in r) for r in rows]


def queries() -> list[Labelled]:
    return [Labelled(r["q"], r["expect"]) for r in yaml.safe_load((DATA / "queries.yaml").read_text())]


def connector_spec(source: Source) -> dict[str, Any]:
    """The stored form of ``source``'s connector (as the API would store it), keyed ``source.key``."""
    from engine.openapi import import_connector, load_openapi
    from engine.specs import ConnectorSpec
    from runtime import stored, validated

    if source.openapi:
        return stored(import_connector(load_openapi(source.path, keep_refs=True), connector_id=source.key).connector)
    data = yaml.safe_load(source.path.read_text())
    data["id"] = source.key
    return stored(validated(ConnectorSpec, data, "connector"))


def recall_at(results: Iterable[tuple[Labelled, Sequence[str]]], k: int = 5) -> tuple[float, list[str]]:
    """The share of queries whose expected ref is among their first ``k`` results, and a line per miss."""
    total, found, misses = 0, 0, []
    for labelled, refs in results:
        total += 1
        if labelled.expect in list(refs)[:k]:
            found += 1
        else:
            misses.append(f"{labelled.query!r}: expected {labelled.expect}, got {list(refs)[:k]}")
    return (found / total if total else 0.0), misses

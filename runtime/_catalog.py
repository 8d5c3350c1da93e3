"""The connector catalog: what connectors and actions exist, found by meaning and by words.

Every connector an organization saves is indexed with it: one entry for the connector and one per
action (its name, summary, description, method and path, and the connector's name), each with an
embedding and a full-text document (``store.CatalogIndex``). A search embeds the query, asks the
store for the nearest entries and for those sharing a word with it, and ranks the union by

    score = SEMANTIC_WEIGHT * cosine similarity + KEYWORD_WEIGHT * keyword rank (+ OWN_BOOST if own)

so that a query naming an app's words ("Cin7", "SMS") and one that paraphrases ("add a client")
both land. The organization's own connectors come first: an own entry gets ``OWN_BOOST``, and a
built-in connector the organization has a connector of the same key for is not shown at all.

Saving and indexing happen in one transaction (the caller's), with the embeddings computed
before it opens: :meth:`Catalog.prepare` (async, may call an embedding server) then
:meth:`Catalog.save` (blocking, in the transaction).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import store
from runtime._embeddings import Embedder

# Bounds of a query's text (characters) and of the results a search returns (as a list's page).
MAX_QUERY_LENGTH = 500
MAX_RESULTS = 200
DEFAULT_RESULTS = 10
# Entries the store returns from each side (vector, keyword) before ranking, at least (a larger
# limit asks for as many).
CANDIDATES = 60
# Ranking (see the module docstring). The keyword rank is ts_rank_cd normalised to 0..1.
SEMANTIC_WEIGHT = 1.0
KEYWORD_WEIGHT = 0.6
OWN_BOOST = 0.05
# Text embedded per entry: descriptions are cut here (a static model averages tokens, and a long
# description drowns the action's name in generic words).
DESCRIPTION_CHARS = 300


@dataclass(frozen=True)
class CatalogHit:
    """One search result: ``ref`` is ``<connector>`` or ``<connector>.<action>``; ``own`` says it
    is the organization's connector (else a built-in one)."""

    ref: str
    connector: str
    action: str | None
    name: str
    summary: str
    own: bool
    connector_id: str | None
    connector_version: int | None
    score: float
    similarity: float
    keyword: float

    def as_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready data."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class PreparedIndex:
    """A connector's catalog entries with their embeddings, ready to save."""

    connector_key: str
    embedder: str
    entries: tuple[store.CatalogEntry, ...]


def _words(identifier: str) -> str:
    """``create_customer`` / ``getItemUsages`` / ``google-tasks`` as words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", identifier)
    return re.sub(r"[_\-./{}]+", " ", spaced).strip().lower()


def _prose(text: str | None) -> bool:
    # An operationId copied into a title ("post-/crm/v3/objects/contacts", "tasks.tasks.list") is
    # not a summary: a summary has spaces between words.
    return bool(text) and " " in text.strip()


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    line = text.strip().split("\n", 1)[0].strip()
    return line[:200]


def _path_words(path: str) -> str:
    return " ".join(_words(part) for part in path.split("/") if part and not part.startswith("{"))


def entry_texts(spec: Mapping[str, Any]) -> list[tuple[str | None, str, str, str, str]]:
    """``(action, name, summary, title, text)`` for the connector (action None) and each action of
    ``spec`` (a stored connector spec): ``title`` weighs more than ``text`` in the keyword match."""
    key = str(spec["id"])
    connector_name = str(spec.get("name") or key)
    connector_words = f"{connector_name} {_words(key)}"
    actions: Mapping[str, Any] = spec.get("actions") or {}
    description = (spec.get("description") or "")[:DESCRIPTION_CHARS]
    rows: list[tuple[str | None, str, str, str, str]] = [
        (
            None, connector_name, _first_line(spec.get("description")), connector_words,
            f"{description} {' '.join(_words(name) for name in actions)}".strip(),
        )
    ]
    for name, action in actions.items():
        title = action.get("title")
        summary = title.strip() if _prose(title) else _first_line(action.get("description"))
        details = (action.get("description") or "")[:DESCRIPTION_CHARS]
        rows.append(
            (
                name, _words(name), summary, f"{_words(name)} {connector_words}",
                f"{summary} {details} {action.get('method', '')} {_path_words(str(action.get('path', '')))}".strip(),
            )
        )
    return rows


def _embedded_text(connector_words: str, name: str, summary: str) -> str:
    # What the vector stands for: the action in words, its summary and the app it belongs to.
    return f"{name}. {summary}. {connector_words}" if summary else f"{name}. {connector_words}"


class Catalog:
    """Indexes saved connectors and searches them (the service every caller shares)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    async def prepare(self, spec: Mapping[str, Any]) -> PreparedIndex:
        """The entries of connector ``spec`` (as stored) with their embeddings."""
        key = str(spec["id"])
        connector_words = f"{spec.get('name') or key} ({_words(key)})"
        rows = entry_texts(spec)
        vectors = await self.embedder.embed([_embedded_text(connector_words, r[1], r[2]) for r in rows])
        entries = tuple(
            store.CatalogEntry(key, action, name, summary, title, text, vector)
            for (action, name, summary, title, text), vector in zip(rows, vectors, strict=True)
        )
        return PreparedIndex(key, self.embedder.name, entries)

    def save(self, tx: store.Tx, org_id: str, connector: Mapping[str, Any], prepared: PreparedIndex,
             version: int | None = None) -> int:
        """Replace the catalog entries of ``connector`` (a store row: ``id``, ``key``) in ``tx``."""
        return store.CatalogIndex(tx).replace(
            org_id, connector["key"], prepared.entries, embedder=prepared.embedder, connector_id=connector["id"],
            connector_version=version if version is not None else connector.get("latest_version"),
        )

    def remove(self, tx: store.Tx, org_id: str, connector_key: str) -> int:
        """Drop the catalog entries of connector ``connector_key`` (deleted or archived) in ``tx``."""
        return store.CatalogIndex(tx).remove(org_id, connector_key)

    async def query_vector(self, text: str) -> list[float]:
        """The embedding of a search text (validated: 1 to MAX_QUERY_LENGTH characters)."""
        text = check_query(text)
        return (await self.embedder.embed([text]))[0]

    def search(self, tx: store.Tx, org_id: str, text: str, vector: Sequence[float], *,
               limit: int = DEFAULT_RESULTS) -> list[CatalogHit]:
        """The best ``limit`` entries for ``text`` (embedded as ``vector``) that ``org_id`` sees, best first."""
        text = check_query(text)
        if not 1 <= limit <= MAX_RESULTS:
            raise store.InvalidInput("catalog_search", "limit", f"must be 1 to {MAX_RESULTS}")
        rows = store.CatalogIndex(tx).candidates(
            org_id, text, vector, embedder=self.embedder.name, limit=max(CANDIDATES, limit)
        )
        hits = [self._hit(row) for row in rows]
        hits.sort(key=lambda hit: (-hit.score, not hit.own, hit.ref))
        return hits[:limit]

    @staticmethod
    def _hit(row: Mapping[str, Any]) -> CatalogHit:
        similarity = float(row["similarity"]) if row["similarity"] is not None else 0.0
        if math.isnan(similarity):  # a query with no known token embeds to zeros: no direction to compare
            similarity = 0.0
        keyword = float(row["keyword"] or 0.0)
        own = bool(row["own"])
        score = SEMANTIC_WEIGHT * similarity + KEYWORD_WEIGHT * keyword + (OWN_BOOST if own else 0.0)
        key, action = row["connector_key"], row["action"]
        return CatalogHit(
            ref=f"{key}.{action}" if action else key, connector=key, action=action, name=row["name"],
            summary=row["summary"], own=own, connector_id=row["connector_id"],
            connector_version=row["connector_version"], score=round(score, 6), similarity=round(similarity, 6),
            keyword=round(keyword, 6),
        )


def check_query(text: str) -> str:
    """``text`` stripped; ``InvalidInput`` (field ``q``) when empty or longer than MAX_QUERY_LENGTH."""
    stripped = text.strip() if isinstance(text, str) else ""
    if not stripped:
        raise store.InvalidInput("catalog_search", "q", "must contain a word to search for")
    if len(stripped) > MAX_QUERY_LENGTH:
        raise store.InvalidInput("catalog_search", "q", f"must be at most {MAX_QUERY_LENGTH} characters")
    return stripped

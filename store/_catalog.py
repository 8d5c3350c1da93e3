"""The connector catalog's index: one row per connector and per action, with an embedding (pgvector)
and a full-text document (Postgres ``tsvector``), searched by both at once.

Rows with ``org_id`` NULL are built-in entries every organization reads (as the system roles are);
only the owner writes them. An organization's own rows are written with its connector, in the
same transaction, so the index never disagrees with what was saved.

Embeddings from different models are not comparable, so each row records the ``embedder`` that
made it and its ``dimensions``; a search compares the query only with rows of the same embedder.
The column is an unsized ``vector`` so that any embedder fits; the HNSW index is a partial
expression index per dimension (``embedding::vector(N) ... WHERE dimensions = N``), created for
the offline embedder's 256 by the migration and for another size by :func:`ensure_catalog_index`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from store._db import connect
from store._ids import new_id
from store._schema import APP_ROLE
from store.errors import InvalidInput

if TYPE_CHECKING:
    from store._database import Tx

# The offline embedder's size; the migration indexes it (another size: ensure_catalog_index).
INDEXED_DIMENSIONS = 256
# Bounds of a stored embedding: pgvector's limit for an HNSW index is 2000 dimensions.
MAX_DIMENSIONS = 2000
# Text config of the keyword side: English stemming ("customers" finds "customer").
TEXT_CONFIG = "english"

_ORG = "current_setting('app.org_id', true)"

# Migration m006 (named for its place after the other branch's m004/m005 at merge).
CATALOG_SCHEMA = f"""
CREATE TABLE catalog_entries (
    id                text PRIMARY KEY,
    -- NULL: a built-in entry every organization reads; only the owner writes those.
    org_id            text REFERENCES organizations(id) ON DELETE CASCADE,
    connector_id      text,
    connector_key     text NOT NULL,
    connector_version integer,
    -- NULL: the entry for the connector itself.
    action            text,
    name              text NOT NULL,
    summary           text NOT NULL DEFAULT '',
    document          tsvector NOT NULL,
    embedder          text NOT NULL,
    dimensions        integer NOT NULL CHECK (dimensions BETWEEN 1 AND {MAX_DIMENSIONS}),
    embedding         vector NOT NULL CHECK (vector_dims(embedding) = dimensions),
    created_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, connector_id) REFERENCES connectors(org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX catalog_entries_ref ON catalog_entries (coalesce(org_id, ''), connector_key, coalesce(action, ''));
CREATE INDEX catalog_entries_connector ON catalog_entries (org_id, connector_id);
CREATE INDEX catalog_entries_document ON catalog_entries USING gin (document);
CREATE INDEX catalog_entries_embedding_{INDEXED_DIMENSIONS} ON catalog_entries
    USING hnsw ((embedding::vector({INDEXED_DIMENSIONS})) vector_cosine_ops) WHERE dimensions = {INDEXED_DIMENSIONS};
ALTER TABLE catalog_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON catalog_entries FOR SELECT USING (org_id IS NULL OR org_id = {_ORG});
CREATE POLICY tenant_insert ON catalog_entries FOR INSERT WITH CHECK (org_id = {_ORG});
CREATE POLICY tenant_update ON catalog_entries FOR UPDATE USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
CREATE POLICY tenant_delete ON catalog_entries FOR DELETE USING (org_id = {_ORG});
GRANT SELECT, INSERT, UPDATE, DELETE ON catalog_entries TO {APP_ROLE};
"""


@dataclass(frozen=True)
class CatalogEntry:
    """One thing a search can find: a connector (``action`` None) or one of its actions.

    ``title`` is weighted above ``text`` in the keyword match (names against descriptions);
    ``embedding`` is the embedder's vector of the entry's text.
    """

    connector_key: str
    action: str | None
    name: str
    summary: str
    title: str
    text: str
    embedding: Sequence[float]


# The rows a search of organization %(org)s considers: its own and the built-in ones, except a
# built-in connector the organization has one of the same key of (its own stands for it).
_VISIBLE = sql.SQL(
    "(e.org_id = %(org)s OR (e.org_id IS NULL AND NOT EXISTS ("
    "SELECT 1 FROM catalog_entries o WHERE o.org_id = %(org)s AND o.connector_key = e.connector_key)))"
)


def _vector(values: Sequence[float]) -> str:
    # pgvector's text form; repr keeps every digit of a float.
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


class CatalogIndex:
    """The catalog rows an organization reads (its own and the built-in ones) and writes (its own)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def replace(
        self, org_id: str | None, connector_key: str, entries: Sequence[CatalogEntry], *, embedder: str,
        connector_id: str | None = None, connector_version: int | None = None,
    ) -> int:
        """Make ``entries`` the index of connector ``connector_key`` of ``org_id`` (None: built-in,
        owner only), dropping what it had. Returns the number of rows written."""
        self.remove(org_id, connector_key)
        for entry in entries:
            if entry.connector_key != connector_key:
                raise InvalidInput("catalog_entry", "connector_key", f"must be {connector_key!r}, not {entry.connector_key!r}")
            dimensions = len(entry.embedding)
            if not 1 <= dimensions <= MAX_DIMENSIONS:
                raise InvalidInput("catalog_entry", "embedding", f"has {dimensions} dimensions; 1 to {MAX_DIMENSIONS} fit")
            self.tx.execute(
                "INSERT INTO catalog_entries (id, org_id, connector_id, connector_key, connector_version, action, name,"
                " summary, document, embedder, dimensions, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
                " setweight(to_tsvector(%s::regconfig, %s), 'A') || setweight(to_tsvector(%s::regconfig, %s), 'B'),"
                " %s, %s, %s::vector)",
                (
                    new_id("cat"), org_id, connector_id, connector_key, connector_version, entry.action, entry.name,
                    entry.summary, TEXT_CONFIG, entry.title, TEXT_CONFIG, entry.text, embedder, dimensions,
                    _vector(entry.embedding),
                ),
            )
        return len(entries)

    def remove(self, org_id: str | None, connector_key: str) -> int:
        """Drop the entries of connector ``connector_key`` of ``org_id`` (None: built-in); returns how many."""
        if org_id is None:
            cursor = self.tx.execute(
                "DELETE FROM catalog_entries WHERE org_id IS NULL AND connector_key = %s", (connector_key,)
            )
        else:
            cursor = self.tx.execute(
                "DELETE FROM catalog_entries WHERE org_id = %s AND connector_key = %s", (org_id, connector_key)
            )
        return cursor.rowcount

    def entries(self, org_id: str, connector_key: str | None = None) -> list[dict[str, Any]]:
        """The organization's own entries (of one connector), without embeddings, by key and action."""
        condition, params = "org_id = %s", [org_id]
        if connector_key is not None:
            condition += " AND connector_key = %s"
            params.append(connector_key)
        return self.tx.execute(
            "SELECT id, org_id, connector_id, connector_key, connector_version, action, name, summary, embedder,"
            f" dimensions FROM catalog_entries WHERE {condition} ORDER BY connector_key, action NULLS FIRST",
            params,
        ).fetchall()

    def candidates(
        self, org_id: str, text: str, embedding: Sequence[float], *, embedder: str, limit: int,
    ) -> list[dict[str, Any]]:
        """The entries nearest ``embedding`` (cosine, same embedder) and those matching a word of
        ``text`` (full text, any word), at most ``limit`` of each, with ``similarity`` (cosine,
        -1..1; None for a row of another embedder) and ``keyword`` (0..1) and ``own`` (the
        organization's, not built-in). A built-in entry is left out when the organization has a
        connector of the same key: its own one stands for it."""
        dimensions = len(embedding)
        if not 1 <= dimensions <= MAX_DIMENSIONS:
            raise InvalidInput("catalog_search", "embedding", f"has {dimensions} dimensions; 1 to {MAX_DIMENSIONS} fit")
        # HNSW returns ef_search neighbours before the organization's filter applies: ask for
        # enough that a small organization in a large shared table still gets ``limit`` of its own.
        self.tx.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(1000, max(100, 2 * limit))),))
        # The size is spelled as a literal so that the planner matches the partial HNSW index.
        sized = sql.SQL("vector({})").format(sql.Literal(dimensions))
        query = sql.SQL(
            """
            WITH query AS (
                SELECT %(embedding)s::{sized} AS v,
                       (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | '))
                          FROM unnest(to_tsvector(%(config)s::regconfig, %(text)s))) AS tq
            ),
            semantic AS (
                -- On the table itself, ordered by the parameter, so the planner may use the HNSW index.
                SELECT e.id FROM catalog_entries e
                WHERE {visible} AND e.embedder = %(embedder)s AND e.dimensions = {dims}
                ORDER BY e.embedding::{sized} <=> %(embedding)s::{sized}
                LIMIT %(limit)s
            ),
            lexical AS (
                SELECT e.id FROM catalog_entries e, query
                WHERE {visible} AND query.tq IS NOT NULL AND e.document @@ query.tq
                ORDER BY ts_rank_cd(e.document, query.tq, 32) DESC
                LIMIT %(limit)s
            )
            SELECT e.id, e.org_id, e.connector_id, e.connector_key, e.connector_version, e.action, e.name, e.summary,
                   e.org_id IS NOT NULL AS own,
                   CASE WHEN e.embedder = %(embedder)s AND e.dimensions = {dims}
                        THEN 1 - (e.embedding::{sized} <=> q.v) END AS similarity,
                   CASE WHEN q.tq IS NULL THEN 0 ELSE ts_rank_cd(e.document, q.tq, 32) END AS keyword
            FROM catalog_entries e, query q
            WHERE e.id IN (SELECT id FROM semantic UNION SELECT id FROM lexical)
            """
        ).format(sized=sized, dims=sql.Literal(dimensions), visible=_VISIBLE)
        return self.tx.execute(
            query,
            {
                "embedding": _vector(embedding), "config": TEXT_CONFIG, "text": text, "org": org_id,
                "embedder": embedder, "limit": limit,
            },
        ).fetchall()


def ensure_catalog_index(admin_conninfo: str, dimensions: int) -> bool:
    """Create the HNSW index for embeddings of ``dimensions`` if it is missing (as the owner: the
    app role owns no table). Returns True when it created one. The offline embedder's size is
    indexed by the migration; an operator who configures another embedder runs this once."""
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise InvalidInput("catalog_index", "dimensions", f"must be 1 to {MAX_DIMENSIONS}, not {dimensions}")
    name = f"catalog_entries_embedding_{dimensions}"
    with connect(admin_conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]
        if exists:
            return False
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON catalog_entries USING hnsw ((embedding::vector({})) vector_cosine_ops)"
                " WHERE dimensions = {}"
            ).format(sql.Identifier(name), sql.Literal(dimensions), sql.Literal(dimensions))
        )
    return True

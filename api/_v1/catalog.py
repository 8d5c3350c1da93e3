"""/v1 routes: the connector catalog, searched by meaning and by words (``runtime.Catalog``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

from api._auth import Principal, require
from api._deps import Db, PlatformDep
from api._v1._common import in_thread, tenant_tx
from api._v1._common import router as make_router
from runtime import MAX_QUERY_LENGTH, MAX_RESULTS

router = make_router("catalog")


class CatalogHitOut(BaseModel):
    ref: str = Field(description="`<connector>.<action>`, or `<connector>` for the connector itself.")
    connector: str = Field(description="The connector's key.")
    action: str | None = Field(description="The action's name; null for the connector entry.")
    name: str
    summary: str
    own: bool = Field(description="The organization's own connector (else a built-in one).")
    connector_id: str | None = Field(description="The organization's connector id; null for a built-in one.")
    connector_version: int | None = Field(description="The connector version that was indexed.")
    score: float = Field(description="Rank: semantic similarity plus keyword match, own connectors boosted.")
    similarity: float = Field(description="Cosine similarity of the query's and the entry's embeddings.")
    keyword: float = Field(description="Full-text rank (0..1) of the entry for the query's words.")


class CatalogSearchOut(BaseModel):
    query: str
    embedder: str = Field(description="The embedder that embedded the query (offline: WordLlama, bundled).")
    items: list[CatalogHitOut]


@router.get("/catalog/search", name="catalog.search", response_model=CatalogSearchOut)
async def search_catalog(
    platform: PlatformDep,
    db: Db,
    principal: Annotated[Principal, require("connectors", "read")],
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_LENGTH, pattern=r"\S",
                            description="What to find, in words: \"create a customer in Cin7\".")],
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS, description="Results to return.")] = 10,
) -> Any:
    """Connectors and actions for ``q``, best first: embedding similarity combined with a
    full-text match, the organization's own connectors ahead of built-in ones (a built-in
    connector whose key the organization has is left out). A query without a word, longer than
    500 characters, or a ``limit`` outside 1..200 is a 422 naming the field."""
    catalog = platform.catalog
    vector = await catalog.query_vector(q)

    def search() -> list[dict[str, Any]]:
        with tenant_tx(db, principal, customer=False) as tx:
            return [hit.as_dict() for hit in catalog.search(tx, principal.org_id, q, vector, limit=limit)]

    items = await in_thread(search)
    return {"query": q.strip(), "embedder": catalog.embedder.name, "items": items}

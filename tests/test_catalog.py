"""The connector catalog through the API: connectors are indexed when saved, searched by meaning
and by words, the organization's own first, and never across organizations.

One platform serves the module; organization A imports the labelled set's connectors
(tests/data/catalog: the repository's example connectors and OpenAPI documents) through the API
once, and the labelled queries are searched with the offline embedder.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI, Request

import store
from runtime import Catalog, OfflineEmbedder
from support.catalog import connector_spec, queries, recall_at, sources
from support.platform import Tenant, client, make_tenant, running_platform
from support.servers import serve_app

SEARCH = "/v1/catalog/search"


def _save(http: httpx.Client, tenant: Tenant, spec: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/v1/connectors", json={"spec": spec}, headers=tenant.headers())
    assert response.status_code == 201, response.text
    return response.json()


def _search(http: httpx.Client, tenant: Tenant, q: str, limit: int = 5) -> list[dict[str, Any]]:
    response = http.get(SEARCH, params={"q": q, "limit": limit}, headers=tenant.headers())
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _refs(items: list[dict[str, Any]]) -> list[str]:
    return [item["ref"] for item in items]


def _widget_spec(key: str, actions: dict[str, str]) -> dict[str, Any]:
    return {
        "id": key,
        "name": f"{key.title()} Widgets",
        "base_url": "https://widgets.example.com",
        "auth": {"type": "none"},
        "actions": {
            name: {"title": title, "method": "POST", "path": f"/{name}"} for name, title in actions.items()
        },
    }


@pytest.fixture(scope="module")
def served(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def http(served: str) -> Iterator[httpx.Client]:
    with client(served) as c:
        yield c


@pytest.fixture(scope="module")
def tenants(db: store.Database) -> tuple[Tenant, Tenant]:
    return make_tenant(db, "Catalog A", customers=1), make_tenant(db, "Catalog B", customers=1)


@pytest.fixture(scope="module")
def indexed(http: httpx.Client, tenants: tuple[Tenant, Tenant]) -> Tenant:
    """Organization A with every connector of the labelled set: the example connectors created
    from their specs, the OpenAPI documents imported (both routes index)."""
    a, _ = tenants
    for source in sources():
        if source.openapi:
            response = http.post(
                "/v1/connectors/import", json={"document": source.path.read_text(), "id": source.key}, headers=a.headers()
            )
            assert response.status_code == 201, response.text
        else:
            _save(http, a, connector_spec(source))
    return a


def test_labelled_queries_find_their_entry_in_the_top_five(http: httpx.Client, indexed: Tenant) -> None:
    labelled = queries()
    assert len(labelled) >= 40
    results = [(item, _refs(_search(http, indexed, item.query, limit=5))) for item in labelled]
    recall, misses = recall_at(results, 5)
    assert recall >= 0.9, "\n".join(misses)


def test_a_hit_names_the_connector_action_and_scores(http: httpx.Client, indexed: Tenant) -> None:
    response = http.get(SEARCH, params={"q": "create a customer in Cin7"}, headers=indexed.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["embedder"] == OfflineEmbedder.name and body["query"] == "create a customer in Cin7"
    top = body["items"][0]
    assert top["ref"] == "cin7.create_customer"
    assert top["connector"] == "cin7" and top["action"] == "create_customer" and top["own"] is True
    assert top["connector_id"].startswith("cnr") and top["connector_version"] == 1
    assert top["summary"] == "Create a customer"
    assert top["similarity"] > 0 and top["keyword"] > 0
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10  # the default limit


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({}, "/query/q"),
        ({"q": ""}, "/query/q"),
        ({"q": "   "}, "/query/q"),
        ({"q": "x" * 501}, "/query/q"),
        ({"q": "contacts", "limit": 0}, "/query/limit"),
        ({"q": "contacts", "limit": 201}, "/query/limit"),
        ({"q": "contacts", "limit": "many"}, "/query/limit"),
    ],
)
def test_bad_search_input_is_a_422_naming_the_field(
    http: httpx.Client, tenants: tuple[Tenant, Tenant], params: dict[str, Any], pointer: str
) -> None:
    response = http.get(SEARCH, params=params, headers=tenants[0].headers())
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "request_invalid"
    assert [e["pointer"] for e in body["errors"]] == [pointer]


def test_a_query_of_unknown_tokens_still_answers(http: httpx.Client, indexed: Tenant) -> None:
    # Nothing to embed and no word to match: no results, and no error.
    assert isinstance(_search(http, indexed, "??? !!!"), list)


def test_another_organizations_entries_are_invisible_through_the_api(
    http: httpx.Client, indexed: Tenant, tenants: tuple[Tenant, Tenant]
) -> None:
    _, b = tenants
    _save(http, b, _widget_spec("zorblax", {"defrobnicate_zorblax": "Defrobnicate a zorblax"}))
    assert _refs(_search(http, b, "defrobnicate a zorblax", limit=3))[0] == "zorblax.defrobnicate_zorblax"
    seen_by_a = _search(http, indexed, "defrobnicate a zorblax", limit=200)
    assert all(item["connector"] != "zorblax" for item in seen_by_a)
    # and B sees nothing of A's connectors (it has only its own)
    a_keys = {source.key for source in sources()}
    assert not a_keys & {item["connector"] for item in _search(http, b, "create a customer in Cin7", limit=200)}


def test_another_organizations_entries_are_invisible_to_sql_as_the_app_role(
    http: httpx.Client, migrated_database_url: str, indexed: Tenant, tenants: tuple[Tenant, Tenant]
) -> None:
    _, b = tenants
    _save(http, b, _widget_spec("quuxly", {"polish_quux": "Polish a quux"}))
    with psycopg.connect(store.app_conninfo(migrated_database_url)) as app:
        app.execute("SELECT set_config('app.org_id', %s, true)", (indexed.org_id,))
        assert app.execute("SELECT count(*) FROM catalog_entries WHERE org_id = %s", (b.org_id,)).fetchone()[0] == 0
        assert app.execute("SELECT count(*) FROM catalog_entries WHERE connector_key = 'quuxly'").fetchone()[0] == 0
        assert app.execute("SELECT count(*) FROM catalog_entries WHERE org_id = %s", (indexed.org_id,)).fetchone()[0] > 200
        assert app.execute("UPDATE catalog_entries SET name = 'x' WHERE org_id = %s", (b.org_id,)).rowcount == 0
        assert app.execute("DELETE FROM catalog_entries WHERE org_id = %s", (b.org_id,)).rowcount == 0
        # Writing a row for B, or moving one of A's rows to B, is refused by the policy.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with app.transaction():
                app.execute(
                    "INSERT INTO catalog_entries (id, org_id, connector_key, name, document, embedder, dimensions,"
                    " embedding) VALUES ('cat_x', %s, 'k', 'k', ''::tsvector, 'e', 1, '[1]')",
                    (b.org_id,),
                )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with app.transaction():
                app.execute("UPDATE catalog_entries SET org_id = %s WHERE org_id = %s", (b.org_id, indexed.org_id))
        app.rollback()
        # Without an organization set, nothing is visible.
        assert app.execute("SELECT count(*) FROM catalog_entries WHERE org_id IS NOT NULL").fetchone()[0] == 0


def test_a_new_version_reindexes_and_a_deleted_connector_leaves(
    http: httpx.Client, tenants: tuple[Tenant, Tenant]
) -> None:
    _, b = tenants
    headers = b.headers()
    connector = _save(http, b, _widget_spec("gizmo", {"launch_gizmo": "Launch a gizmo into orbit"}))
    assert _refs(_search(http, b, "launch a gizmo into orbit", limit=1)) == ["gizmo.launch_gizmo"]

    spec = _widget_spec("gizmo", {"recall_gizmo": "Recall a gizmo from orbit"})
    response = http.post(f"/v1/connectors/{connector['id']}/versions", json={"spec": spec}, headers=headers)
    assert response.status_code == 201, response.text
    hits = _search(http, b, "gizmo orbit", limit=50)
    gizmo = {item["ref"]: item for item in hits if item["connector"] == "gizmo"}
    assert set(gizmo) == {"gizmo", "gizmo.recall_gizmo"}  # launch_gizmo is gone with version 1
    assert {item["connector_version"] for item in gizmo.values()} == {2}

    assert http.delete(f"/v1/connectors/{connector['id']}", headers=headers).status_code == 204
    assert all(item["connector"] != "gizmo" for item in _search(http, b, "gizmo orbit", limit=50))


def test_an_archived_connector_leaves_the_catalog(http: httpx.Client, tenants: tuple[Tenant, Tenant]) -> None:
    _, b = tenants
    connector = _save(http, b, _widget_spec("sprocket", {"spin_sprocket": "Spin a sprocket"}))
    assert _refs(_search(http, b, "spin a sprocket", limit=1)) == ["sprocket.spin_sprocket"]
    response = http.delete(f"/v1/connectors/{connector['id']}", params={"archive": "true"}, headers=b.headers())
    assert response.status_code == 204
    assert all(item["connector"] != "sprocket" for item in _search(http, b, "spin a sprocket", limit=50))


def test_a_failed_save_indexes_nothing(http: httpx.Client, tenants: tuple[Tenant, Tenant]) -> None:
    _, b = tenants
    _save(http, b, _widget_spec("dupe", {"first_thing": "Do the first thing"}))
    again = http.post("/v1/connectors", json={"spec": _widget_spec("dupe", {"second_thing": "Do a second thing"})},
                      headers=b.headers())
    assert again.status_code == 409
    refs = _refs(_search(http, b, "do a second thing", limit=50))
    assert "dupe.second_thing" not in refs and "dupe.first_thing" in refs


def test_built_in_entries_are_shared_and_an_organizations_own_come_first(
    http: httpx.Client, db: store.Database, migrated_database_url: str
) -> None:
    # Built-in entries (org_id NULL) are written by the owner; every organization reads them,
    # none can change them, and an organization's own connector of the same key replaces them.
    catalog = Catalog(OfflineEmbedder())
    cin7 = next(s for s in sources() if s.key == "cin7")
    sms = next(s for s in sources() if s.key == "vonage-sms")
    with psycopg.connect(migrated_database_url, autocommit=False) as owner:
        for source in (cin7, sms):
            prepared = asyncio.run(catalog.prepare(connector_spec(source)))
            store.CatalogIndex(owner).replace(None, source.key, prepared.entries, embedder=prepared.embedder)
        owner.commit()
    try:
        c, d = make_tenant(db, "Catalog C", customers=0), make_tenant(db, "Catalog D", customers=0)
        _save(http, c, connector_spec(cin7))
        c_hits = _search(http, c, "create a customer in Cin7", limit=10)
        assert c_hits[0]["ref"] == "cin7.create_customer" and c_hits[0]["own"] is True
        assert [item for item in c_hits if item["connector"] == "cin7" and not item["own"]] == []
        sms_hits = _search(http, c, "send an SMS", limit=3)
        assert sms_hits[0]["ref"] == "vonage-sms.send_an_sms" and sms_hits[0]["own"] is False
        d_hits = _search(http, d, "create a customer in Cin7", limit=3)
        assert d_hits[0]["ref"] == "cin7.create_customer" and d_hits[0]["own"] is False
        assert d_hits[0]["connector_id"] is None
        with psycopg.connect(store.app_conninfo(migrated_database_url)) as app:
            app.execute("SELECT set_config('app.org_id', %s, true)", (d.org_id,))
            assert app.execute("SELECT count(*) FROM catalog_entries WHERE org_id IS NULL").fetchone()[0] > 0
            assert app.execute("UPDATE catalog_entries SET name = 'x' WHERE org_id IS NULL").rowcount == 0
            assert app.execute("DELETE FROM catalog_entries WHERE org_id IS NULL").rowcount == 0
    finally:
        with psycopg.connect(migrated_database_url) as owner:
            owner.execute("DELETE FROM catalog_entries WHERE org_id IS NULL")


def test_the_offline_embedder_loads_its_bundled_model_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the offline embedder opened a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = OfflineEmbedder()
    vectors = embedder.embed_sync(["create a customer", "add a new client", "send an SMS"])
    assert [len(v) for v in vectors] == [256, 256, 256]
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert abs(dot(vectors[0], vectors[0]) - 1) < 1e-4
    # A real model: a paraphrase is nearer than an unrelated request.
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2])


# -- an OpenAI-compatible embeddings server ----------------------------------------------------------


def _fake_embeddings_app(requests: list[dict[str, Any]]) -> Any:
    """An OpenAI-compatible ``POST /v1/embeddings`` in the real wire format: a deterministic
    8-dimensional bag-of-words vector per input (hashing each word), usage included."""
    app = FastAPI()

    def vector(text: str) -> list[float]:
        values = [0.0] * 8
        for word in text.lower().split():
            values[hashlib.sha256(word.encode()).digest()[0] % 8] += 1.0
        return values

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = await request.json()
        requests.append({"body": body, "authorization": request.headers.get("authorization")})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return {
            "object": "list",
            "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": vector(text)} for i, text in enumerate(inputs)],
            "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)},
        }

    return app


def test_an_openai_compatible_embedder_is_called_through_the_egress_guard(migrated_database_url: str, db: store.Database) -> None:
    seen: list[dict[str, Any]] = []
    with serve_app(_fake_embeddings_app(seen)) as fake:
        settings = {"embedder": "openai:fake-embed-8", "openai_base_url": f"{fake}/v1", "openai_api_key": "sk-fake-7f3a"}
        tenant = make_tenant(db, "Catalog OpenAI", customers=0)
        with running_platform(migrated_database_url, egress_allow=["127.0.0.1"], **settings) as (url, _):
            with client(url) as http:
                _save(http, tenant, _widget_spec("frobber", {"frob_widget": "Frob a widget"}))
                response = http.get(SEARCH, params={"q": "frob a widget", "limit": 2}, headers=tenant.headers())
                assert response.status_code == 200, response.text
                assert response.json()["embedder"] == "openai:fake-embed-8"
                assert response.json()["items"][0]["ref"] == "frobber.frob_widget"
        assert seen and all(r["body"]["model"] == "fake-embed-8" for r in seen)
        assert all(r["authorization"] == "Bearer sk-fake-7f3a" for r in seen)
        assert seen[-1]["body"]["input"] == ["frob a widget"]
        with psycopg.connect(migrated_database_url) as owner:
            stored_sizes = owner.execute(
                "SELECT DISTINCT embedder, dimensions FROM catalog_entries WHERE org_id = %s", (tenant.org_id,)
            ).fetchall()
        assert stored_sizes == [("openai:fake-embed-8", 8)]

        # Without the allow-list the guard refuses the loopback server: a 502 naming the embedder,
        # and the connector is not saved without its catalog entries.
        calls = len(seen)
        with running_platform(migrated_database_url, **settings) as (url, _):
            with client(url) as http:
                refused = http.post("/v1/connectors", json={"spec": _widget_spec("blocked", {"x_y": "X a y"})},
                                    headers=tenant.headers())
                assert refused.status_code == 502, refused.text
                assert refused.json()["code"] == "embedding_failed"
                assert refused.json()["embedder"] == "openai:fake-embed-8"
                assert "sk-fake-7f3a" not in refused.text
                assert http.get("/v1/connectors/blocked", headers=tenant.headers()).status_code == 404
        assert len(seen) == calls


def test_embedder_settings_are_checked() -> None:
    from pydantic import ValidationError

    from runtime import build_embedder
    from switchboard.settings import Settings

    assert Settings(embedder="openai:text-embedding-3-small").embedder == "openai:text-embedding-3-small"
    with pytest.raises(ValidationError, match="embedder"):
        Settings(embedder="bogus")
    with pytest.raises(ValidationError, match="openai_base_url"):
        Settings(openai_base_url="ftp://models.example.com")
    with pytest.raises(ValueError, match="'offline' or 'openai:<model>'"):
        build_embedder("openai:")
    with pytest.raises(ValueError, match="HTTP client"):
        build_embedder("openai:some-model")
    assert "sk-hidden-51" not in repr(Settings(openai_api_key="sk-hidden-51"))


def test_another_embedding_size_gets_its_own_hnsw_index(migrated_database_url: str) -> None:
    assert store.ensure_catalog_index(migrated_database_url, 8) in (True, False)  # the OpenAI test may have made it
    assert store.ensure_catalog_index(migrated_database_url, 8) is False
    assert store.ensure_catalog_index(migrated_database_url, 256) is False  # the migration's
    with psycopg.connect(migrated_database_url) as owner:
        definition = owner.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'catalog_entries_embedding_8'"
        ).fetchone()[0]
    assert "hnsw" in definition and "vector_cosine_ops" in definition and "(dimensions = 8)" in definition
    with pytest.raises(store.InvalidInput) as refused:
        store.ensure_catalog_index(migrated_database_url, 0)
    assert refused.value.field == "dimensions"

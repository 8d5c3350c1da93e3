"""Connectors through the API: specs (JSON and YAML), OpenAPI import (text, object, guarded URL),
versions, publishing, immutability, deletion, permissions and isolation between organizations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

import store
from support.platform import Tenant, client, make_tenant, running_platform
from support.sandbox import SPECS_DIR
from support.servers import serve_app
from switchboard import bootstrap

ROOT = Path(__file__).resolve().parents[1]
CIN7 = yaml.safe_load((ROOT / "examples" / "connectors" / "cin7.yaml").read_text())

TINY = {
    "id": "tiny",
    "name": "Tiny",
    "base_url": "https://api.tiny.example/v1/",
    "auth": {"type": "bearer"},
    "actions": {"list_things": {"method": "get", "path": "/things"}},
}


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def two(db: store.Database) -> tuple[Tenant, Tenant]:
    return make_tenant(db, "Acme"), make_tenant(db, "Globex")


@pytest.fixture(scope="module")
def document_server() -> Iterator[str]:
    text = (SPECS_DIR / "oai-petstore-v3.0.yaml").read_text()

    async def document(request):  # noqa: ANN001, ANN202
        return Response(text, media_type="application/yaml")

    with serve_app(Starlette(routes=[Route("/petstore.yaml", document)])) as url:
        yield url


def test_create_from_a_spec_makes_draft_version_one(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    with client(platform) as http:
        created = http.post("/v1/connectors", headers=acme.headers(), json={"spec": TINY})
        assert created.status_code == 201, created.text
        connector = created.json()
        assert connector["key"] == "tiny" and connector["name"] == "Tiny" and connector["status"] == "draft"
        assert connector["latest_version"] == 1 and connector["published_version"] is None
        assert connector["published_versions"] == [] and connector["created_by"].startswith("key_")
        version = http.get(f"/v1/connectors/{connector['id']}/versions/1", headers=acme.headers()).json()
        assert version["state"] == "draft" and version["spec"]["base_url"] == "https://api.tiny.example/v1"
        assert version["spec"]["actions"]["list_things"]["method"] == "GET"
        by_key = http.get("/v1/connectors/tiny", headers=acme.headers())
        assert by_key.status_code == 200 and by_key.json()["id"] == connector["id"]
        duplicate = http.post("/v1/connectors", headers=acme.headers(), json={"spec": TINY})
        assert duplicate.status_code == 409 and duplicate.json()["field"] == "key"
        # The same key is free in another organization.
        assert http.post("/v1/connectors", headers=globex.headers(), json={"spec": TINY}).status_code == 201


def test_create_from_yaml(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    spec = {**CIN7, "base_url": "https://inventory.example.com/ExternalApi/v2"}
    with client(platform) as http:
        created = http.post("/v1/connectors", headers=acme.headers(), json={"spec_yaml": yaml.safe_dump(spec)})
    assert created.status_code == 201, created.text
    assert created.json()["key"] == "cin7"


def test_invalid_specs_name_the_json_pointer(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    bad = {**TINY, "id": "bad", "actions": {"list_things": {"method": "FETCH", "path": "things"}}}
    del bad["base_url"]
    with client(platform) as http:
        response = http.post("/v1/connectors", headers=acme.headers(), json={"spec": bad})
        assert response.status_code == 422
        problem = response.json()
        assert problem["code"] == "spec_invalid" and problem["kind"] == "connector"
        pointers = {e["pointer"] for e in problem["errors"]}
        assert {"/base_url", "/actions/list_things/method", "/actions/list_things/path"} <= pointers
        not_yaml = http.post("/v1/connectors", headers=acme.headers(), json={"spec_yaml": "id: [unclosed"})
        assert not_yaml.status_code == 422 and not_yaml.json()["errors"][0]["pointer"] == ""
        a_list = http.post("/v1/connectors", headers=acme.headers(), json={"spec_yaml": "- a\n- b\n"})
        assert a_list.status_code == 422 and "mapping" in a_list.json()["detail"]
        both = http.post("/v1/connectors", headers=acme.headers(), json={"spec": TINY, "spec_yaml": "id: x"})
        assert both.status_code == 422 and both.json()["code"] == "request_invalid"
        bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
            f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
            for i in range(8)
        )
        refused = http.post("/v1/connectors", headers=acme.headers(), json={"spec_yaml": bomb})
        assert refused.status_code == 422 and "expands" in refused.json()["detail"]
        # Nothing was created by the refused requests.
        keys = {c["key"] for c in http.get("/v1/connectors", headers=acme.headers()).json()["items"]}
        assert "bad" not in keys


def test_versions_publish_and_immutability(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    spec = {**TINY, "id": "versioned"}
    with client(platform) as http:
        connector = http.post("/v1/connectors", headers=acme.headers(), json={"spec": spec}).json()
        base = f"/v1/connectors/{connector['id']}"
        v2 = http.post(f"{base}/versions", headers=acme.headers(), json={"spec": {**spec, "name": "Versioned two"}})
        assert v2.status_code == 201, v2.text
        assert v2.json()["version"] == 2 and v2.json()["state"] == "draft" and v2.json()["spec"]["version"] == 2
        wrong_key = http.post(f"{base}/versions", headers=acme.headers(), json={"spec": TINY})
        assert wrong_key.status_code == 422 and wrong_key.json()["field"] == "spec/id"

        published = http.post(f"{base}/versions/1/publish", headers=acme.headers())
        assert published.status_code == 200, published.text
        assert published.json()["state"] == "published" and published.json()["published_at"]
        again = http.post(f"{base}/versions/1/publish", headers=acme.headers())
        assert again.status_code == 409 and again.json()["code"] == "conflict"
        assert http.post(f"{base}/versions/9/publish", headers=acme.headers()).status_code == 404
        assert http.post(f"{base}/versions/0/publish", headers=acme.headers()).status_code == 422
        # No route changes a version: its spec stays what was published.
        assert http.put(f"{base}/versions/1", headers=acme.headers(), json={"spec": spec}).status_code == 405
        assert http.patch(f"{base}/versions/1", headers=acme.headers(), json={"spec": spec}).status_code == 405
        assert http.get(f"{base}/versions/1", headers=acme.headers()).json()["spec"]["name"] == "Tiny"

        detail = http.get(base, headers=acme.headers()).json()
        assert (detail["status"], detail["latest_version"], detail["published_version"]) == ("published", 2, 1)
        assert detail["published_versions"] == [1] and detail["name"] == "Versioned two"
        listed = http.get(f"{base}/versions", headers=acme.headers()).json()["items"]
        assert [v["version"] for v in listed] == [2, 1] and "spec" not in listed[0]
        drafts = http.get(f"{base}/versions", headers=acme.headers(), params={"state": "draft"}).json()["items"]
        assert [v["version"] for v in drafts] == [2]

        # Another organization sees none of it.
        for method, path in (("GET", base), ("GET", f"{base}/versions"), ("GET", f"{base}/versions/1"),
                             ("POST", f"{base}/versions/2/publish"), ("DELETE", base)):
            assert http.request(method, path, headers=globex.headers()).status_code == 404, (method, path)
        assert http.post(f"{base}/versions", headers=globex.headers(), json={"spec": spec}).status_code == 404
        assert connector["id"] not in {c["id"] for c in http.get("/v1/connectors", headers=globex.headers()).json()["items"]}


def test_import_from_text_and_object_with_warnings(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    with client(platform) as http:
        text = (SPECS_DIR / "oai-petstore-v3.0.yaml").read_text()
        from_text = http.post("/v1/connectors/import", headers=acme.headers(), json={"document": text, "id": "petstore"})
        assert from_text.status_code == 201, from_text.text
        assert from_text.json()["key"] == "petstore" and from_text.json()["latest_version"] == 1
        spec = http.get("/v1/connectors/petstore/versions/1", headers=acme.headers()).json()["spec"]
        assert sorted(spec["actions"]) == ["create_pets", "list_pets", "show_pet_by_id"]
        # the document's shared schemas are kept once, by reference
        assert spec["actions"]["list_pets"]["output"] == {"$ref": "#/$defs/Pets"}
        assert spec["$defs"]["Pets"] == {"type": "array", "items": {"$ref": "#/$defs/Pet"}} and "Pet" in spec["$defs"]

        swagger = json.loads((SPECS_DIR / "oai-petstore-v2.json").read_text())
        from_object = http.post("/v1/connectors/import", headers=acme.headers(), json={"document": swagger, "id": "petstore2"})
        assert from_object.status_code == 201, from_object.text
        warnings = from_object.json()["warnings"]
        assert warnings and all(w["pointer"].startswith("/") for w in warnings)


def test_import_refusals_name_what_is_wrong(platform: str, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    with client(platform) as http:
        # A string is a document, never a path on the server.
        path = http.post("/v1/connectors/import", headers=acme.headers(), json={"document": "/etc/passwd"})
        assert path.status_code == 422 and path.json()["code"] == "openapi_import_failed"
        no_paths = http.post("/v1/connectors/import", headers=acme.headers(),
                             json={"document": {"openapi": "3.0.0", "info": {"title": "x", "version": "1"}, "paths": {}}})
        assert no_paths.status_code == 422 and no_paths.json()["pointer"] == "/paths"
        external = json.loads((SPECS_DIR / "oai-petstore-separate-extref-v2.json").read_text())
        refs = http.post("/v1/connectors/import", headers=acme.headers(), json={"document": external})
        assert refs.status_code == 422 and refs.json()["pointer"]
        bad_id = http.post("/v1/connectors/import", headers=acme.headers(), json={"document": "x", "id": "Not An Id"})
        assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["pointer"] == "/body/id"
        neither = http.post("/v1/connectors/import", headers=acme.headers(), json={})
        assert neither.status_code == 422


def test_import_from_a_url_goes_through_the_egress_guard(
    platform: str, two: tuple[Tenant, Tenant], document_server: str
) -> None:
    acme, _ = two
    with client(platform) as http:
        fetched = http.post("/v1/connectors/import", headers=acme.headers(),
                            json={"url": document_server + "/petstore.yaml", "id": "petstore-url"})
        assert fetched.status_code == 201, fetched.text
        metadata = http.post("/v1/connectors/import", headers=acme.headers(),
                             json={"url": "http://169.254.169.254/latest/meta-data"})
        assert metadata.status_code == 403 and metadata.json()["code"] == "egress_denied"
        private = http.post("/v1/connectors/import", headers=acme.headers(), json={"url": "http://10.1.2.3/openapi.json"})
        assert private.status_code == 403
        missing = http.post("/v1/connectors/import", headers=acme.headers(), json={"url": document_server + "/nope.yaml"})
        assert missing.status_code == 422 and "404" in missing.json()["reason"]


def test_list_filters_and_sorts(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Lister", customers=0)
    with client(platform) as http:
        for key in ("bravo", "alpha", "charlie"):
            assert http.post("/v1/connectors", headers=tenant.headers(), json={"spec": {**TINY, "id": key, "name": key.title()}}).status_code == 201
        http.post("/v1/connectors/alpha/versions/1/publish", headers=tenant.headers())
        by_key = http.get("/v1/connectors", headers=tenant.headers(), params={"sort": "key"}).json()["items"]
        assert [c["key"] for c in by_key] == ["alpha", "bravo", "charlie"]
        published = http.get("/v1/connectors", headers=tenant.headers(), params={"status": "published"}).json()["items"]
        assert [c["key"] for c in published] == ["alpha"] and published[0]["published_version"] == 1
        found = http.get("/v1/connectors", headers=tenant.headers(), params={"q": "ARL"}).json()["items"]
        assert [c["key"] for c in found] == ["charlie"]
        paged = http.get("/v1/connectors", headers=tenant.headers(), params={"sort": "-name", "limit": 2}).json()
        assert [c["key"] for c in paged["items"]] == ["charlie", "bravo"] and paged["next_cursor"]
        rest = http.get("/v1/connectors", headers=tenant.headers(),
                        params={"sort": "-name", "limit": 2, "cursor": paged["next_cursor"]}).json()
        assert [c["key"] for c in rest["items"]] == ["alpha"] and rest["next_cursor"] is None
        assert http.get("/v1/connectors", headers=tenant.headers(), params={"sort": "spec"}).status_code == 422
        assert http.get("/v1/connectors", headers=tenant.headers(), params={"status": "gone"}).status_code == 422


def test_delete_archive_and_connections_in_use(platform: str, db: store.Database) -> None:
    tenant = make_tenant(db, "Deleter", customers=1)
    spec = {**TINY, "id": "used"}
    with client(platform) as http:
        for key in ("used", "unused"):
            assert http.post("/v1/connectors", headers=tenant.headers(), json={"spec": {**spec, "id": key}}).status_code == 201
        connection = http.post("/v1/connections", headers=tenant.headers(tenant.customers[0]),
                               json={"connector": "used", "auth": {"type": "bearer", "token": "tok-123456789"}})
        assert connection.status_code == 201, connection.text
        refused = http.delete("/v1/connectors/used", headers=tenant.headers())
        assert refused.status_code == 409 and "connection" in refused.json()["detail"]
        assert http.delete("/v1/connectors/used", headers=tenant.headers(), params={"archive": "true"}).status_code == 204
        assert http.get("/v1/connectors/used", headers=tenant.headers()).json()["status"] == "archived"
        archived = http.get("/v1/connectors", headers=tenant.headers(), params={"status": "archived"}).json()["items"]
        assert [c["key"] for c in archived] == ["used"]
        assert http.delete("/v1/connectors/unused", headers=tenant.headers()).status_code == 204
        assert http.get("/v1/connectors/unused", headers=tenant.headers()).status_code == 404
        assert http.delete("/v1/connectors/unused", headers=tenant.headers()).status_code == 404


def test_permissions_are_checked(platform: str, db: store.Database, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    _, viewer = bootstrap.create_api_key(db, acme.org_id, "viewer", role_id="viewer")
    _, operator = bootstrap.create_api_key(db, acme.org_id, "operator", role_id="operator")
    with client(platform) as http:
        assert http.get("/v1/connectors", headers=acme.headers(key=viewer)).status_code == 200
        refused = http.post("/v1/connectors", headers=acme.headers(key=viewer), json={"spec": {**TINY, "id": "nope"}})
        assert refused.status_code == 403 and refused.json()["permission"] == "connectors:write"
        assert http.post("/v1/connectors/import", headers=acme.headers(key=viewer), json={"document": "x"}).status_code == 403
        publish = http.post("/v1/connectors/versioned/versions/2/publish", headers=acme.headers(key=operator))
        assert publish.status_code == 403 and publish.json()["permission"] == "connectors:publish"
        assert http.delete("/v1/connectors/tiny", headers=acme.headers(key=viewer)).status_code == 403

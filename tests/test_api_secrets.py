"""Secrets and OAuth apps: write-only values, encrypted at rest, per organization."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import datetime

import httpx
import psycopg
import pytest

import store
from support.platform import Tenant, make_tenant, running_platform

MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
SECRET_VALUE = "hunter2-" + os.urandom(8).hex()
NEW_SECRET_VALUE = "rotated-" + os.urandom(8).hex()
CLIENT_SECRET = "cs-" + os.urandom(8).hex()
NEW_CLIENT_SECRET = "cs2-" + os.urandom(8).hex()
PLAINTEXTS = (SECRET_VALUE, NEW_SECRET_VALUE, CLIENT_SECRET, NEW_CLIENT_SECRET)


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url, master_key=MASTER_KEY) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def encryptor() -> store.Encryptor:
    return store.Encryptor(store.MasterKeyring.from_key(MASTER_KEY))


@pytest.fixture(scope="module")
def two(db: store.Database) -> tuple[Tenant, Tenant]:
    return make_tenant(db, "Acme", customers=1), make_tenant(db, "Globex", customers=1)


@pytest.fixture(scope="module")
def responses() -> list[httpx.Response]:
    """Every response of the module, to check that no plaintext ever left the API."""
    return []


@pytest.fixture(scope="module")
def http(platform: str, responses: list[httpx.Response]) -> Iterator[httpx.Client]:
    def keep(response: httpx.Response) -> None:
        response.read()
        responses.append(response)

    with httpx.Client(base_url=platform, timeout=30, event_hooks={"response": [keep]}) as c:
        yield c


def viewer_headers(http: httpx.Client, tenant: Tenant) -> dict[str, str]:
    issued = http.post("/v1/api-keys", headers=tenant.headers(), json={"name": "viewer", "role": "viewer"})
    assert issued.status_code == 201
    return tenant.headers(key=issued.json()["key"])


def test_a_secret_is_written_listed_rotated_and_deleted(
    http: httpx.Client, two: tuple[Tenant, Tenant], db: store.Database, encryptor: store.Encryptor
) -> None:
    acme, _ = two
    headers = acme.headers()
    created = http.post("/v1/secrets", headers=headers, json={"name": "HUBSPOT_TOKEN", "value": SECRET_VALUE, "environment": "dev"})
    assert created.status_code == 201, created.text
    secret = created.json()
    assert secret["has_value"] is True and "value" not in secret
    assert secret["created_by"] and secret["created_by"].startswith("key_")
    prod = http.post("/v1/secrets", headers=headers, json={"name": "HUBSPOT_TOKEN", "value": "prod-value", "environment": "production"})
    assert prod.status_code == 201

    def names(**params) -> list[tuple[str, str]]:
        items = http.get("/v1/secrets", headers=headers, params=params).json()["items"]
        return [(s["name"], s["environment_id"]) for s in items]

    assert len(names()) == 2
    assert names(environment="dev") == [("HUBSPOT_TOKEN", secret["environment_id"])]
    assert names(q="hubspot", environment=secret["environment_id"]) == [("HUBSPOT_TOKEN", secret["environment_id"])]
    assert names(q="nothing") == []
    path = f"/v1/secrets/{secret['id']}"
    assert http.get(path, headers=headers).json() == secret

    with db.tenant(acme.org_id) as tx:
        assert store.Secrets(tx).values_for_run(acme.org_id, "dev", encryptor) == {"HUBSPOT_TOKEN": SECRET_VALUE}
    rotated = http.put(path, headers=headers, json={"value": NEW_SECRET_VALUE})
    assert rotated.status_code == 200
    assert datetime.fromisoformat(rotated.json()["updated_at"]) > datetime.fromisoformat(secret["updated_at"])
    with db.tenant(acme.org_id) as tx:
        assert store.Secrets(tx).values_for_run(acme.org_id, secret["environment_id"], encryptor) == {"HUBSPOT_TOKEN": NEW_SECRET_VALUE}
        assert store.Secrets(tx).values_for_run(acme.org_id, "staging", encryptor) == {}

    assert http.delete(path, headers=headers).status_code == 204
    assert http.get(path, headers=headers).status_code == 404
    assert http.put(path, headers=headers, json={"value": "x"}).status_code == 404
    with db.tenant(acme.org_id) as tx:
        assert store.Secrets(tx).values_for_run(acme.org_id, "dev", encryptor) == {}


def test_bad_secrets_are_refused(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    headers = acme.headers()
    cases = [
        ({"name": "1ST", "value": "v", "environment": "dev"}, "/body/name"),
        ({"name": "has-dash", "value": "v", "environment": "dev"}, "/body/name"),
        ({"name": "OK", "value": "", "environment": "dev"}, "/body/value"),
        ({"name": "OK", "value": "x" * 70_000, "environment": "dev"}, "/body/value"),
        ({"name": "OK", "value": "v"}, "/body/environment"),
        ({"name": "OK", "value": "v", "environment": "dev", "note": 1}, "/body/note"),
    ]
    for body, pointer in cases:
        response = http.post("/v1/secrets", headers=headers, json=body)
        assert response.status_code == 422, response.text
        assert [e["pointer"] for e in response.json()["errors"]] == [pointer]
    unknown_env = http.post("/v1/secrets", headers=headers, json={"name": "OK", "value": "v", "environment": "moon"})
    assert unknown_env.status_code == 404 and unknown_env.json()["resource"] == "environment"
    assert http.post("/v1/secrets", headers=headers, json={"name": "DUP", "value": SECRET_VALUE, "environment": "staging"}).status_code == 201
    duplicate = http.post("/v1/secrets", headers=headers, json={"name": "DUP", "value": SECRET_VALUE, "environment": "staging"})
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "name"
    assert http.get("/v1/secrets", headers=headers, params={"environment": "moon"}).status_code == 404
    assert http.get("/v1/secrets", headers=headers, params={"sort": "value"}).json()["field"] == "sort"


def test_a_viewer_sees_names_but_cannot_write(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    viewer = viewer_headers(http, acme)
    assert http.get("/v1/secrets", headers=viewer).status_code == 200
    for method, path, body in (
        ("POST", "/v1/secrets", {"name": "V", "value": SECRET_VALUE, "environment": "dev"}),
        ("PUT", "/v1/secrets/sec_x", {"value": SECRET_VALUE}),
        ("DELETE", "/v1/secrets/sec_x", None),
    ):
        response = http.request(method, path, headers=viewer, json=body)
        assert response.status_code == 403 and response.json()["permission"] == "secrets:write"
    assert http.get("/v1/oauth-apps", headers=viewer).status_code == 200
    denied = http.post("/v1/oauth-apps", headers=viewer, json={"connector": "v", "client_id": "c", "client_secret": CLIENT_SECRET})
    assert denied.status_code == 403 and denied.json()["permission"] == "connectors:write"


def test_secrets_belong_to_one_organization(http: httpx.Client, two: tuple[Tenant, Tenant], db: store.Database, encryptor) -> None:
    acme, globex = two
    secret = http.post(
        "/v1/secrets", headers=acme.headers(), json={"name": "ACME_ONLY", "value": SECRET_VALUE, "environment": "dev"}
    ).json()
    path = f"/v1/secrets/{secret['id']}"
    assert http.get(path, headers=globex.headers()).status_code == 404
    assert http.put(path, headers=globex.headers(), json={"value": "pwned"}).status_code == 404
    assert http.delete(path, headers=globex.headers()).status_code == 404
    assert "ACME_ONLY" not in http.get("/v1/secrets", headers=globex.headers(), params={"limit": 200}).text
    assert http.get("/v1/secrets", headers=globex.headers(), params={"environment": secret["environment_id"]}).status_code == 404
    assert http.get(path, headers=acme.headers()).status_code == 200
    with db.tenant(globex.org_id) as tx:
        assert "ACME_ONLY" not in store.Secrets(tx).values_for_run(globex.org_id, "dev", encryptor)


def test_idempotent_secret_creation_stores_no_value(
    http: httpx.Client, two: tuple[Tenant, Tenant], migrated_database_url: str
) -> None:
    acme, _ = two
    headers = acme.headers() | {"Idempotency-Key": "secret-once"}
    body = {"name": "ONCE", "value": SECRET_VALUE, "environment": "production"}
    first = http.post("/v1/secrets", headers=headers, json=body)
    again = http.post("/v1/secrets", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    with psycopg.connect(migrated_database_url) as conn:
        stored = conn.execute("SELECT response::text FROM idempotency_keys WHERE org_id = %s", (acme.org_id,)).fetchall()
    assert stored and not any(SECRET_VALUE in (row[0] or "") for row in stored)


def oauth_app(http: httpx.Client, tenant: Tenant, **body) -> httpx.Response:
    defaults = {
        "connector": "hubspot",
        "client_id": "client-123",
        "client_secret": CLIENT_SECRET,
        "authorize_url": "https://app.hubspot.com/oauth/authorize",
        "token_url": "http://127.0.0.1:9/oauth/token",
        "scopes": ["crm.objects.contacts.read", "oauth"],
    }
    return http.post("/v1/oauth-apps", headers=tenant.headers(), json=defaults | body)


def test_an_oauth_app_keeps_its_client_secret_to_itself(
    http: httpx.Client, two: tuple[Tenant, Tenant], db: store.Database, encryptor: store.Encryptor
) -> None:
    acme, globex = two
    created = oauth_app(http, acme)
    assert created.status_code == 201, created.text
    app = created.json()
    assert (app["connector"], app["client_id"], app["has_client_secret"]) == ("hubspot", "client-123", True)
    assert "client_secret" not in app
    path = f"/v1/oauth-apps/{app['id']}"
    assert http.get(path, headers=acme.headers()).json() == app
    listed = http.get("/v1/oauth-apps", headers=acme.headers(), params={"connector": "hubspot"}).json()["items"]
    assert [a["id"] for a in listed] == [app["id"]]
    assert http.get("/v1/oauth-apps", headers=acme.headers(), params={"connector": "cin7"}).json()["items"] == []

    with db.tenant(acme.org_id) as tx:
        resolved = store.OAuthApps(tx).get_for_connector(acme.org_id, "hubspot", encryptor)
        assert store.OAuthApps(tx).get_for_connector(acme.org_id, "cin7", encryptor) is None
    assert resolved["client_secret"] == CLIENT_SECRET and resolved["client_id"] == "client-123"
    assert resolved["token_url"] == "http://127.0.0.1:9/oauth/token"

    patched = http.patch(path, headers=acme.headers(), json={"client_secret": NEW_CLIENT_SECRET, "token_url": None, "scopes": []})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["token_url"], patched.json()["scopes"], patched.json()["client_id"]) == (None, [], "client-123")
    with db.tenant(acme.org_id) as tx:
        assert store.OAuthApps(tx).get_for_connector(acme.org_id, "hubspot", encryptor)["client_secret"] == NEW_CLIENT_SECRET

    # Globex neither sees nor touches it, and may register its own client for the same connector.
    assert http.get(path, headers=globex.headers()).status_code == 404
    assert http.patch(path, headers=globex.headers(), json={"client_id": "x"}).status_code == 404
    assert http.delete(path, headers=globex.headers()).status_code == 404
    assert http.get("/v1/oauth-apps", headers=globex.headers()).json()["items"] == []
    assert oauth_app(http, globex, client_secret="globex-secret").status_code == 201
    with db.tenant(globex.org_id) as tx:
        assert store.OAuthApps(tx).get_for_connector(globex.org_id, "hubspot", encryptor)["client_secret"] == "globex-secret"

    assert oauth_app(http, acme).status_code == 409
    assert http.delete(path, headers=acme.headers()).status_code == 204
    assert http.get(path, headers=acme.headers()).status_code == 404


def test_bad_oauth_apps_name_the_field(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    store_errors = {
        "authorize_url": [
            "http://example.com/authorize",  # plain http off loopback
            "ftp://example.com/authorize",
            "https://user:pw@example.com/authorize",
            "/relative/authorize",
            "https://example.com:99999/authorize",
        ],
        "token_url": ["http://10.0.0.1/token", "https://example.com/token#frag"],
    }
    for field, urls in store_errors.items():
        for url in urls:
            response = oauth_app(http, acme, connector="badurl", **{field: url})
            assert response.status_code == 422, (field, url, response.text)
            assert response.json()["field"] == field
    for body, pointer in (
        ({"connector": "Not A Key"}, "/body/connector"),
        ({"client_secret": ""}, "/body/client_secret"),
        ({"client_id": ""}, "/body/client_id"),
        ({"scopes": [""]}, "/body/scopes/0"),
    ):
        response = oauth_app(http, acme, **body)
        assert response.status_code == 422 and response.json()["errors"][0]["pointer"] == pointer
    spaced = oauth_app(http, acme, connector="spaced", scopes=["read write"])
    assert spaced.status_code == 422 and spaced.json()["field"] == "scopes/0"
    created = oauth_app(http, acme, connector="patched").json()
    bad_patch = http.patch(f"/v1/oauth-apps/{created['id']}", headers=acme.headers(), json={"authorize_url": "http://evil.test/a"})
    assert bad_patch.status_code == 422 and bad_patch.json()["field"] == "authorize_url"
    no_move = http.patch(f"/v1/oauth-apps/{created['id']}", headers=acme.headers(), json={"connector": "other"})
    assert no_move.status_code == 422
    assert oauth_app(http, acme, connector="localhost-ok", token_url="http://localhost:8080/token").status_code == 201


def test_ciphertexts_do_not_contain_the_plaintext(migrated_database_url: str, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    with psycopg.connect(migrated_database_url) as conn:
        blobs = [bytes(r[0]) for r in conn.execute("SELECT ciphertext FROM secrets WHERE org_id = ANY(%s)", ([acme.org_id, globex.org_id],))]
        blobs += [bytes(r[0]) for r in conn.execute("SELECT client_secret FROM oauth_apps WHERE org_id = ANY(%s)", ([acme.org_id, globex.org_id],))]
        audit_text = conn.execute("SELECT coalesce(string_agg(detail::text, ''), '') FROM audit_log").fetchone()[0]
    assert len(blobs) >= 4
    for plaintext in PLAINTEXTS:
        assert all(plaintext.encode() not in blob for blob in blobs)
        assert plaintext not in audit_text


def test_no_response_carried_a_secret(responses: list[httpx.Response]) -> None:
    # Runs last in the module: every response above, errors and stored replays included.
    assert len(responses) > 50
    for response in responses:
        for plaintext in PLAINTEXTS:
            assert plaintext not in response.text, (response.request.method, response.request.url)

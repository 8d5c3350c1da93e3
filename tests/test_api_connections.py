"""Connections with API-key, basic and bearer credentials through the API: create, list, get,
test against real servers (a sandbox app; the local OAuth provider's bearer-protected /api/me),
disconnect; bad input; tenant and customer isolation; no credential in any response, log or
audit entry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import store
from support.oauth_server import OAuthTestServer
from support.platform import Tenant, make_tenant, running_platform
from support.sandbox import running_sandbox

WIDGETS_API = """
openapi: 3.0.3
info: {title: Widgets, version: "1"}
servers: [{url: "https://widgets.example.com/api"}]
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Api-Key}
    basic: {type: http, scheme: basic}
    bearer: {type: http, scheme: bearer}
  schemas:
    Widget:
      type: object
      required: [id, name]
      properties: {id: {type: string}, name: {type: string}}
security: [{key: []}, {basic: []}, {bearer: []}]
paths:
  /widgets:
    get:
      operationId: listWidgets
      responses:
        "200":
          description: ok
          content: {application/json: {schema: {type: array, items: {$ref: "#/components/schemas/Widget"}}}}
    post:
      operationId: createWidget
      requestBody: {content: {application/json: {schema: {$ref: "#/components/schemas/Widget"}}}}
      responses: {"201": {description: created}}
"""
LIST = {"method": "GET", "path": "/widgets"}
API_KEY = "wk_live_4f1c9a7e2b6d8h3j5k0m"
PASSWORD = "pw-Zq8Lr2Vx6Tn4Yc1B"
TOKEN = "bt_9Hs3Jd7Kf2Lg6Pq1Wz"
ACCOUNT = "acct-77c1e4d0"
SECRETS = (API_KEY, PASSWORD, TOKEN, ACCOUNT)
UNLIMITED = {d: {"limit": None, "mode": "hard"} for d in ("api_calls_per_minute", "api_calls_per_day")}

seen: list[str] = []  # every response body of this module, for the final grep


def _remember(response: httpx.Response) -> None:
    response.read()
    seen.append(response.text)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    document = tmp_path_factory.mktemp("widgets") / "widgets.yaml"
    document.write_text(WIDGETS_API)
    with running_sandbox(Path(document), seed={"/widgets": [{"id": "w1", "name": "Spanner"}]}) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuthTestServer]:
    with OAuthTestServer() as server:
        server.add_client("svc", "svc-secret-0b2e", grant_types=("client_credentials",))
        yield server


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def http(platform: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform, timeout=30, event_hooks={"response": [_remember]}) as client:
        yield client


def _tenant(db: store.Database, name: str) -> Tenant:
    tenant = make_tenant(db, name)
    with db.tenant(tenant.org_id) as tx:
        for customer in tenant.customers:
            store.Customers(tx).update(tenant.org_id, customer, {"quota_overrides": UNLIMITED})
    return tenant


def _connector(key: str, base_url: str, auth: dict[str, Any], actions: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": key, "name": key.title(), "base_url": base_url, "auth": auth, "actions": actions or {"list_widgets": LIST}}


@pytest.fixture(scope="module")
def acme(db: store.Database, http: httpx.Client, sandbox: str, provider: OAuthTestServer) -> Tenant:
    tenant = _tenant(db, "Acme")
    connectors = [
        _connector("widgets-key", sandbox, {"type": "api_key", "keys": [{"credential": "api_key", "in": "header", "name": "X-Api-Key"}]}),
        _connector("widgets-basic", sandbox, {"type": "basic"}),
        _connector("widgets-bearer", sandbox, {"type": "bearer"}),
        _connector(
            "widgets-account",
            sandbox,
            {"type": "api_key", "keys": [
                {"credential": "account_id", "in": "header", "name": "X-Account"},
                {"credential": "api_key", "in": "header", "name": "X-Api-Key"},
            ]},
        ),
        _connector("widgets-writeonly", sandbox, {"type": "api_key", "keys": [{"credential": "api_key", "in": "header", "name": "X-Api-Key"}]},
                   {"create_widget": {"method": "POST", "path": "/widgets"}}),
        _connector("provider-me", provider.url, {"type": "bearer"}, {"me": {"method": "GET", "path": "/api/me"}}),
    ]
    for spec in connectors:
        response = http.post("/v1/connectors", headers=tenant.headers(), json={"spec": spec})
        assert response.status_code == 201, response.text
    return tenant


@pytest.fixture(scope="module")
def globex(db: store.Database, http: httpx.Client, sandbox: str) -> Tenant:
    tenant = _tenant(db, "Globex")
    spec = _connector("widgets-key", sandbox, {"type": "api_key", "keys": [{"credential": "api_key", "in": "header", "name": "X-Api-Key"}]})
    assert http.post("/v1/connectors", headers=tenant.headers(), json={"spec": spec}).status_code == 201
    return tenant


def _connect(http: httpx.Client, tenant: Tenant, customer: str, connector: str, auth: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = http.post(
        "/v1/connections", headers=tenant.headers(customer), json={"connector": connector, "auth": auth, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_api_key_basic_and_bearer_connections_are_created_and_tested(http: httpx.Client, acme: Tenant) -> None:
    customer = acme.customers[0]
    cases = [
        ("widgets-key", {"type": "api_key", "api_key": API_KEY}),
        ("widgets-basic", {"type": "basic", "username": "ada", "password": PASSWORD}),
        ("widgets-bearer", {"type": "bearer", "token": TOKEN}),
        ("widgets-account", {"type": "api_key", "values": {"account_id": ACCOUNT, "api_key": API_KEY}}),
    ]
    for connector, auth in cases:
        connection = _connect(http, acme, customer, connector, auth, name=f"{connector} of customer 0")
        assert connection["status"] == "connected"
        assert connection["has_credentials"] is True
        assert connection["auth_type"] == auth["type"]
        assert connection["connector_key"] == connector
        assert connection["customer_id"] == customer
        tested = http.post(f"/v1/connections/{connection['id']}/test", headers=acme.headers(customer))
        assert tested.status_code == 200, tested.text
        result = tested.json()
        assert (result["ok"], result["status"], result["action"]) == (True, 200, "list_widgets")
        assert result["connection"]["status"] == "connected"


def test_the_bearer_token_reaches_the_provider_and_a_refused_one_needs_reconnect(
    http: httpx.Client, acme: Tenant, provider: OAuthTestServer
) -> None:
    granted = httpx.post(provider.token_url, data={"grant_type": "client_credentials"}, auth=("svc", "svc-secret-0b2e"))
    access_token = granted.json()["access_token"]
    customer = acme.customers[1]
    connection = _connect(http, acme, customer, "provider-me", {"type": "bearer", "token": access_token})
    path = f"/v1/connections/{connection['id']}"
    result = http.post(f"{path}/test", headers=acme.headers(customer)).json()
    assert (result["ok"], result["status"], result["action"]) == (True, 200, "me")

    provider.revoke_access_token(access_token)
    result = http.post(f"{path}/test", headers=acme.headers(customer)).json()
    assert (result["ok"], result["status"]) == (False, 401)
    assert result["connection"]["status"] == "needs_reconnect"
    shown = http.get(path, headers=acme.headers(customer)).json()
    assert shown["status"] == "needs_reconnect"
    assert "HTTP 401" in shown["last_error"]

    provider.token(access_token).access_revoked = False  # the provider accepts the token again
    result = http.post(f"{path}/test", headers=acme.headers(customer)).json()
    assert result["ok"] is True
    shown = http.get(path, headers=acme.headers(customer)).json()
    assert (shown["status"], shown["last_error"]) == ("connected", None)
    assert access_token not in "".join(seen)


@pytest.mark.parametrize(
    ("connector", "auth", "pointer"),
    [
        ("widgets-basic", {"type": "api_key", "api_key": API_KEY}, "/auth/type"),
        ("widgets-key", {"type": "bearer", "token": TOKEN}, "/auth/type"),
        ("widgets-key", {"type": "oauth2"}, "/auth/type"),
        ("widgets-key", {"type": "api_key"}, "/auth/api_key"),
        ("widgets-account", {"type": "api_key", "api_key": API_KEY}, "/auth/api_key"),
        ("widgets-account", {"type": "api_key", "values": {"api_key": API_KEY}}, "/auth/values/account_id"),
        ("widgets-key", {"type": "api_key", "api_key": API_KEY, "values": {"other": "x"}}, "/auth/values/other"),
        ("widgets-key", {"type": "api_key", "api_key": "line\nbreak"}, "/auth/api_key"),
    ],
)
def test_credentials_that_do_not_fit_the_connector_are_422_with_a_pointer(
    http: httpx.Client, acme: Tenant, connector: str, auth: dict[str, Any], pointer: str
) -> None:
    response = http.post(
        "/v1/connections", headers=acme.headers(acme.customers[0]), json={"connector": connector, "auth": auth}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert (problem["code"], problem["pointer"]) == ("connection_auth_invalid", pointer)
    assert pointer in problem["detail"]


def test_other_bad_requests_name_what_is_wrong(http: httpx.Client, acme: Tenant) -> None:
    headers = acme.headers(acme.customers[0])
    no_customer = http.post("/v1/connections", headers=acme.headers(), json={"connector": "widgets-key", "auth": {"type": "api_key", "api_key": API_KEY}})
    assert (no_customer.status_code, no_customer.json()["header"]) == (400, "x-fastn-account-tenant-id")
    unknown = http.post("/v1/connections", headers=headers, json={"connector": "nope", "auth": {"type": "api_key", "api_key": API_KEY}})
    assert (unknown.status_code, unknown.json()["resource"]) == (404, "connector")
    empty = http.post("/v1/connections", headers=headers, json={"connector": "widgets-key", "auth": {"type": "api_key", "api_key": ""}})
    assert empty.status_code == 422
    assert [e["pointer"] for e in empty.json()["errors"]] == ["/body/auth/api_key/api_key"]
    extra = http.post("/v1/connections", headers=headers, json={"connector": "widgets-key", "auth": {"type": "basic", "username": "a", "password": "b", "x": 1}})
    assert extra.status_code == 422
    kind = http.post("/v1/connections", headers=headers, json={"connector": "widgets-key", "auth": {"type": "magic"}})
    assert kind.status_code == 422 and kind.json()["errors"][0]["pointer"] == "/body/auth"
    assert http.get("/v1/connections", headers=headers, params={"sort": "secret"}).status_code == 422
    assert http.get("/v1/connections", headers=headers, params={"status": "happy"}).status_code == 422
    assert http.get("/v1/connections/conn_missing", headers=headers).status_code == 404


def test_an_archived_connector_takes_no_new_connections(http: httpx.Client, acme: Tenant, sandbox: str) -> None:
    spec = _connector("widgets-old", sandbox, {"type": "bearer"})
    assert http.post("/v1/connectors", headers=acme.headers(), json={"spec": spec}).status_code == 201
    kept = _connect(http, acme, acme.customers[0], "widgets-old", {"type": "bearer", "token": TOKEN})
    assert http.delete("/v1/connectors/widgets-old", headers=acme.headers(), params={"archive": "true"}).status_code == 204
    refused = http.post("/v1/connections", headers=acme.headers(acme.customers[0]), json={"connector": "widgets-old", "auth": {"type": "bearer", "token": TOKEN}})
    assert (refused.status_code, refused.json()["field"]) == (409, "connector")
    assert http.post(f"/v1/connections/{kept['id']}/test", headers=acme.headers(acme.customers[0])).json()["ok"] is True


def test_a_connector_without_a_test_action_cannot_be_tested(http: httpx.Client, acme: Tenant) -> None:
    customer = acme.customers[0]
    connection = _connect(http, acme, customer, "widgets-writeonly", {"type": "api_key", "api_key": API_KEY})
    response = http.post(f"/v1/connections/{connection['id']}/test", headers=acme.headers(customer))
    assert response.status_code == 422
    assert "no action to test" in response.json()["detail"]


def test_lists_filter_sort_and_page(http: httpx.Client, acme: Tenant) -> None:
    first, second = acme.customers
    a = _connect(http, acme, first, "widgets-basic", {"type": "basic", "username": "u", "password": PASSWORD}, name="aaa basic")
    b = _connect(http, acme, second, "widgets-basic", {"type": "basic", "username": "u", "password": PASSWORD}, name="zzz basic")
    org = acme.headers()
    both = http.get("/v1/connections", headers=org, params={"connector": "widgets-basic", "sort": "name"}).json()["items"]
    assert [c["id"] for c in both][0] == a["id"] and [c["id"] for c in both][-1] == b["id"]
    only_second = http.get("/v1/connections", headers=org, params={"customer": second, "connector": "widgets-basic"}).json()["items"]
    assert [c["id"] for c in only_second] == [b["id"]]
    by_header = http.get("/v1/connections", headers=acme.headers(first), params={"connector": "widgets-basic"}).json()["items"]
    assert {c["customer_id"] for c in by_header} == {first}
    page = http.get("/v1/connections", headers=org, params={"limit": 1, "sort": "-created_at"}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    following = http.get("/v1/connections", headers=org, params={"limit": 1, "sort": "-created_at", "cursor": page["next_cursor"]}).json()
    assert following["items"][0]["id"] != page["items"][0]["id"]
    assert http.delete(f"/v1/connections/{b['id']}", headers=org).status_code == 200
    by_status = {
        status: [c["id"] for c in http.get("/v1/connections", headers=org, params={"status": status, "connector": "widgets-basic"}).json()["items"]]
        for status in ("disconnected", "connected")
    }
    assert by_status["disconnected"] == [b["id"]]
    assert a["id"] in by_status["connected"] and b["id"] not in by_status["connected"]


def test_disconnect_wipes_the_credentials(
    http: httpx.Client, acme: Tenant, migrated_database_url: str
) -> None:
    customer = acme.customers[0]
    connection = _connect(http, acme, customer, "widgets-key", {"type": "api_key", "api_key": API_KEY})
    path = f"/v1/connections/{connection['id']}"
    gone = http.delete(path, headers=acme.headers(customer))
    assert gone.status_code == 200
    assert (gone.json()["status"], gone.json()["has_credentials"]) == ("disconnected", False)
    assert http.delete(path, headers=acme.headers(customer)).json()["status"] == "disconnected"
    refused = http.post(f"{path}/test", headers=acme.headers(customer))
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    with psycopg.connect(migrated_database_url) as owner:
        row = owner.execute("SELECT credentials FROM connections WHERE id = %s", (connection["id"],)).fetchone()
    assert row == (None,)


def test_another_organization_sees_none_of_it(http: httpx.Client, acme: Tenant, globex: Tenant) -> None:
    mine = _connect(http, acme, acme.customers[0], "widgets-key", {"type": "api_key", "api_key": API_KEY})
    path = f"/v1/connections/{mine['id']}"
    theirs = globex.headers(globex.customers[0])
    assert http.get(path, headers=theirs).status_code == 404
    assert http.get(path, headers=globex.headers()).status_code == 404
    assert http.post(f"{path}/test", headers=theirs).status_code == 404
    assert http.delete(path, headers=globex.headers()).status_code == 404
    assert http.get(path, headers=acme.headers()).json()["status"] == "connected"
    assert http.get("/v1/connections", headers=globex.headers()).json()["items"] == []
    # Globex has its own widgets-key connector; Acme's connector id is not reachable from Globex.
    foreign = http.post("/v1/connections", headers=theirs, json={"connector": mine["connector_id"], "auth": {"type": "api_key", "api_key": API_KEY}})
    assert foreign.status_code == 404
    own = _connect(http, globex, globex.customers[0], "widgets-key", {"type": "api_key", "api_key": API_KEY})
    assert [c["id"] for c in http.get("/v1/connections", headers=globex.headers()).json()["items"]] == [own["id"]]


def test_a_key_bound_to_one_customer_reaches_only_its_connections(
    http: httpx.Client, acme: Tenant, db: store.Database
) -> None:
    first, second = acme.customers
    with db.tenant(acme.org_id) as tx:
        _, bound = store.ApiKeys(tx).create(acme.org_id, "widget", role_id="end_user", customer_id=first)
    other = _connect(http, acme, second, "widgets-key", {"type": "api_key", "api_key": API_KEY})
    headers = acme.headers(key=bound)
    own = http.post("/v1/connections", headers=headers, json={"connector": "widgets-key", "auth": {"type": "api_key", "api_key": API_KEY}})
    assert own.status_code == 201 and own.json()["customer_id"] == first
    listed = http.get("/v1/connections", headers=headers).json()["items"]
    assert listed and {c["customer_id"] for c in listed} == {first}
    assert http.get("/v1/connections", headers=headers, params={"customer": second}).json()["items"] == []
    path = f"/v1/connections/{other['id']}"
    assert http.get(path, headers=headers).status_code == 404
    assert http.post(f"{path}/test", headers=headers).status_code == 404
    assert http.delete(path, headers=headers).status_code == 404
    assert http.post("/v1/connections", headers=acme.headers(second, key=bound), json={"connector": "widgets-key", "auth": {"type": "api_key", "api_key": API_KEY}}).status_code == 403
    # An organization key naming a customer in the header is scoped to it too.
    assert http.get(path, headers=acme.headers(first)).status_code == 404
    assert http.get(path, headers=acme.headers(second)).status_code == 200


def test_a_viewer_reads_but_cannot_connect(http: httpx.Client, acme: Tenant, db: store.Database) -> None:
    with db.tenant(acme.org_id) as tx:
        _, viewer = store.ApiKeys(tx).create(acme.org_id, "viewer", role_id="viewer")
    headers = acme.headers(acme.customers[0], key=viewer)
    assert http.get("/v1/connections", headers=headers).status_code == 200
    refused = http.post("/v1/connections", headers=headers, json={"connector": "widgets-key", "auth": {"type": "api_key", "api_key": API_KEY}})
    assert (refused.status_code, refused.json()["permission"]) == (403, "connections:write")


def test_credentials_appear_in_no_response_log_audit_entry_or_plaintext_column(
    http: httpx.Client, acme: Tenant, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    customer = acme.customers[0]
    for connector, auth in [
        ("widgets-key", {"type": "api_key", "api_key": API_KEY}),
        ("widgets-basic", {"type": "basic", "username": ACCOUNT, "password": PASSWORD}),
        ("widgets-bearer", {"type": "bearer", "token": TOKEN}),
    ]:
        connection = _connect(http, acme, customer, connector, auth)
        http.post(f"/v1/connections/{connection['id']}/test", headers=acme.headers(customer))
        http.get(f"/v1/connections/{connection['id']}", headers=acme.headers(customer))
    http.get("/v1/audit-log", headers=acme.headers(), params={"limit": 200})
    with psycopg.connect(migrated_database_url) as owner:
        audit = owner.execute("SELECT detail::text FROM audit_log WHERE org_id = %s", (acme.org_id,)).fetchall()
        stored = owner.execute("SELECT credentials FROM connections WHERE org_id = %s AND credentials IS NOT NULL", (acme.org_id,)).fetchall()
        actions = {r[0] for r in owner.execute("SELECT action FROM audit_log WHERE org_id = %s", (acme.org_id,)).fetchall()}
    assert {"connection.create", "connection.test", "connection.disconnect"} <= actions
    assert stored
    everything = "\n".join(seen) + caplog.text + "\n".join(r[0] for r in audit)
    for secret in SECRETS:
        assert secret not in everything
        assert all(secret.encode() not in bytes(r[0]) for r in stored)

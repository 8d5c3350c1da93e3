"""API keys (shown once, hashed, revocable, last used) and the append-only audit log, through the API and in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

import store
from support.platform import Tenant, make_tenant


@pytest.fixture(scope="module")
def two(db: store.Database) -> tuple[Tenant, Tenant]:
    return make_tenant(db, "Acme", customers=1), make_tenant(db, "Globex", customers=1)


def issue(http: httpx.Client, tenant: Tenant, **body) -> dict:
    response = http.post("/v1/api-keys", headers=tenant.headers(), json={"name": "a key", **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_key_is_shown_once_and_works_until_revoked(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    response = http.post("/v1/api-keys", headers=acme.headers(), json={"name": "ci", "kind": "test"})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    issued = response.json()
    key = issued["key"]
    assert key.startswith("sk_test_") and issued["prefix"] == key[:12]
    assert (issued["role_id"], issued["kind"], issued["customer_id"], issued["last_used_at"]) == ("admin", "test", None, None)
    path = f"/v1/api-keys/{issued['id']}"

    fetched = http.get(path, headers=acme.headers())
    listed = http.get("/v1/api-keys", headers=acme.headers(), params={"limit": 200})
    for response in (fetched, listed):
        assert key not in response.text and key[12:] not in response.text
        assert "hash" not in response.text and store.hash_key(key) not in response.text
    assert "key" not in fetched.json()
    assert fetched.json()["last_used_at"] is None

    as_new_key = acme.headers(key=key)
    assert http.get("/v1/customers", headers=as_new_key).status_code == 200
    assert http.get(path, headers=acme.headers()).json()["last_used_at"] is not None

    revoked = http.post(f"{path}/revoke", headers=acme.headers())
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = http.get("/v1/customers", headers=as_new_key)
    assert refused.status_code == 401 and key not in refused.text
    again = http.post(f"{path}/revoke", headers=acme.headers())
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]

    revoked_ids = [k["id"] for k in http.get("/v1/api-keys", headers=acme.headers(), params={"revoked": "true"}).json()["items"]]
    assert revoked_ids == [issued["id"]]
    usable = http.get("/v1/api-keys", headers=acme.headers(), params={"revoked": "false", "limit": 200}).json()["items"]
    assert issued["id"] not in [k["id"] for k in usable] and usable
    tests = http.get("/v1/api-keys", headers=acme.headers(), params={"kind": "test", "limit": 200}).json()["items"]
    assert issued["id"] in [k["id"] for k in tests] and all(k["kind"] == "test" for k in tests)
    lives = http.get("/v1/api-keys", headers=acme.headers(), params={"kind": "live", "limit": 200}).json()["items"]
    assert lives and issued["id"] not in [k["id"] for k in lives]


def test_issuing_is_never_replayed_from_a_stored_response(
    http: httpx.Client, two: tuple[Tenant, Tenant], migrated_database_url: str
) -> None:
    acme, _ = two
    headers = acme.headers() | {"Idempotency-Key": "issue-once"}
    first = http.post("/v1/api-keys", headers=headers, json={"name": "retry"})
    second = http.post("/v1/api-keys", headers=headers, json={"name": "retry"})
    assert first.status_code == second.status_code == 201
    assert first.json()["key"] != second.json()["key"]
    assert "idempotent-replayed" not in second.headers
    with psycopg.connect(migrated_database_url) as conn:
        stored = conn.execute("SELECT response::text FROM idempotency_keys WHERE org_id = %s", (acme.org_id,)).fetchall()
    assert not any(first.json()["key"] in (row[0] or "") for row in stored)


def test_customer_keys_and_bad_key_requests(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    bound = issue(http, acme, customer=acme.customers[0])
    assert (bound["role_id"], bound["customer_id"]) == ("end_user", acme.customers[0])
    as_customer = acme.headers(key=bound["key"])
    assert http.get("/v1/customers", headers=as_customer).json()["items"][0]["id"] == acme.customers[0]
    denied = http.get("/v1/api-keys", headers=as_customer)
    assert denied.status_code == 403 and denied.json()["permission"] == "keys:read"
    listed = http.get("/v1/api-keys", headers=acme.headers(), params={"customer": acme.customers[0]}).json()["items"]
    assert [k["id"] for k in listed] == [bound["id"]]

    other_customer = http.post("/v1/api-keys", headers=acme.headers(), json={"name": "x", "customer": globex.customers[0]})
    assert other_customer.status_code == 404 and other_customer.json()["resource"] == "customer"
    unknown_role = http.post("/v1/api-keys", headers=acme.headers(), json={"name": "x", "role": "wizard"})
    assert unknown_role.status_code == 404 and unknown_role.json()["resource"] == "role"
    for body, pointer in (
        ({"name": "x", "kind": "prod"}, "/body/kind"),
        ({"name": ""}, "/body/name"),
        ({"name": "x", "key": "sk_live_mine"}, "/body/key"),
    ):
        response = http.post("/v1/api-keys", headers=acme.headers(), json=body)
        assert response.status_code == 422 and response.json()["errors"][0]["pointer"] == pointer
    assert http.get("/v1/api-keys", headers=acme.headers(), params={"kind": "prod"}).status_code == 422


def test_keys_cannot_outrank_their_issuer(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    viewer = acme.headers(key=issue(http, acme, role="viewer")["key"])
    assert http.get("/v1/api-keys", headers=viewer).status_code == 200
    denied = http.post("/v1/api-keys", headers=viewer, json={"name": "x", "role": "viewer"})
    assert denied.status_code == 403 and denied.json()["permission"] == "keys:write"
    operator_key = issue(http, acme, role="operator")
    operator = acme.headers(key=operator_key["key"])
    escalate = http.post("/v1/api-keys", headers=operator, json={"name": "x"})  # default role admin
    assert escalate.status_code == 403 and escalate.json()["permission"] == "connectors:write"
    peer = http.post("/v1/api-keys", headers=operator, json={"name": "x", "role": "viewer"})
    assert peer.status_code == 201 and peer.json()["created_by"] == operator_key["id"]


def test_keys_are_per_organization(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    mine = issue(http, acme, name="acme only")
    assert http.get(f"/v1/api-keys/{mine['id']}", headers=globex.headers()).status_code == 404
    assert http.post(f"/v1/api-keys/{mine['id']}/revoke", headers=globex.headers()).status_code == 404
    theirs = http.get("/v1/api-keys", headers=globex.headers(), params={"limit": 200}).json()["items"]
    assert mine["id"] not in [k["id"] for k in theirs]
    assert http.get("/v1/customers", headers=acme.headers(key=mine["key"])).status_code == 200
    # The key names its organization; presenting it for another is refused.
    wrong = {"x-fastn-access-key": mine["key"], "x-fastn-account-id": globex.org_id}
    assert http.get("/v1/customers", headers=wrong).status_code == 401


def audit(http: httpx.Client, tenant: Tenant, **params) -> list[dict]:
    response = http.get("/v1/audit-log", headers=tenant.headers(), params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_mutations_are_audited_with_their_outcome(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Audited", customers=0)
    actor = issue(http, tenant, name="actor")
    headers = tenant.headers(key=actor["key"])
    started = datetime.now(UTC) - timedelta(seconds=1)
    created = http.post("/v1/customers", headers=headers, json={"id": "cust-1", "name": "One"})
    assert created.status_code == 201
    assert http.post("/v1/customers", headers=headers, json={"id": "cust-1", "name": "Again"}).status_code == 409
    assert http.post("/v1/customers", headers=headers, json={"name": "X", "residency": "MARS"}).status_code == 422
    assert http.patch("/v1/customers/cust-1", headers=headers, json={"tier": "pro"}).status_code == 200
    assert http.get("/v1/customers", headers=headers).status_code == 200  # reads are not audited

    entries = audit(http, tenant, actor=actor["id"])
    assert [(e["action"], e["outcome"], e["error_code"], e["status"]) for e in entries] == [
        ("customer.update", "success", None, 200),
        ("customer.create", "error", "request_invalid", 422),
        ("customer.create", "error", "conflict", 409),
        ("customer.create", "success", None, 201),
    ]
    assert all(e["actor_type"] == "api_key" and e["actor_id"] == actor["id"] for e in entries)
    assert entries[0]["resource_type"] == "customer" and entries[0]["resource_id"] == "cust-1"
    assert entries[3]["resource_id"] == "cust-1"
    # The owner key issued the actor key: that is on the record too.
    issued = audit(http, tenant, action="api_key.issue")
    assert [e["resource_id"] for e in issued] == [actor["id"]] and issued[0]["actor_id"] != actor["id"]
    assert actor["key"] not in http.get("/v1/audit-log", headers=tenant.headers(), params={"limit": 200}).text

    assert len(audit(http, tenant, action="customer.")) == 4
    assert len(audit(http, tenant, action="customer")) == 0  # not a prefix without the dot
    assert len(audit(http, tenant, actor=actor["id"], outcome="error")) == 2
    assert len(audit(http, tenant, resource_type="customer", resource_id="cust-1", outcome="success")) == 2
    assert len(audit(http, tenant, actor=actor["id"], since=started.isoformat())) == 4
    naive_future = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert audit(http, tenant, since=naive_future) == []
    assert len(audit(http, tenant, actor=actor["id"], until=naive_future)) == 4
    assert audit(http, tenant, until=started.isoformat()) == []
    oldest_first = audit(http, tenant, actor=actor["id"], sort="at")
    assert [e["id"] for e in oldest_first] == [e["id"] for e in reversed(entries)]

    one = http.get(f"/v1/audit-log/{entries[1]['id']}", headers=tenant.headers())
    assert one.status_code == 200 and one.json() == entries[1]

    seen, cursor = [], None
    while True:
        params = {"limit": 2, "actor": actor["id"]} | ({"cursor": cursor} if cursor else {})
        page = http.get("/v1/audit-log", headers=tenant.headers(), params=params).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [e["id"] for e in entries]


def test_bad_audit_queries_name_the_parameter(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, _ = two
    cases = {"since": "yesterday", "until": "2024-13-45T00:00:00Z", "outcome": "maybe"}
    for name, value in cases.items():
        response = http.get("/v1/audit-log", headers=acme.headers(), params={name: value})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["pointer"] == f"/query/{name}"
    backwards = http.get(
        "/v1/audit-log", headers=acme.headers(), params={"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}
    )
    assert backwards.status_code == 422 and backwards.json()["field"] == "until"
    assert http.get("/v1/audit-log", headers=acme.headers(), params={"sort": "action"}).json()["field"] == "sort"
    assert http.get("/v1/audit-log/not-a-number", headers=acme.headers()).status_code == 422
    viewer = acme.headers(key=issue(http, acme, role="viewer")["key"])
    assert http.get("/v1/audit-log", headers=viewer).status_code == 200
    end_user = acme.headers(key=issue(http, acme, role="end_user")["key"])
    denied = http.get("/v1/audit-log", headers=end_user)
    assert denied.status_code == 403 and denied.json()["permission"] == "audit:read"


def test_the_audit_log_cannot_be_changed(http: httpx.Client, two: tuple[Tenant, Tenant], migrated_database_url: str) -> None:
    acme, _ = two
    issue(http, acme, name="leaves a trace")
    entry_id = audit(http, acme)[0]["id"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert http.request(method, "/v1/audit-log", headers=acme.headers(), json={}).status_code == 405
    for method in ("PUT", "PATCH", "DELETE"):
        assert http.request(method, f"/v1/audit-log/{entry_id}", headers=acme.headers(), json={}).status_code == 405

    app_role = store.app_conninfo(migrated_database_url)
    with psycopg.connect(app_role, autocommit=True) as conn:
        for statement in ("UPDATE audit_log SET outcome = 'error'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute("SELECT set_config('app.org_id', %s, true)", (acme.org_id,))
                    conn.execute(statement)
    # Not even the owner of the table: the trigger refuses.
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM audit_log WHERE org_id = %s AND id = %s", (acme.org_id, entry_id))
    assert http.get(f"/v1/audit-log/{entry_id}", headers=acme.headers()).status_code == 200


def test_an_organization_sees_only_its_own_audit_log(http: httpx.Client, two: tuple[Tenant, Tenant]) -> None:
    acme, globex = two
    issue(http, acme, name="acme trace")
    http.post("/v1/customers", headers=globex.headers(), json={"name": "Globex trace"})
    acme_entries = audit(http, acme)
    globex_entries = audit(http, globex)
    assert acme_entries and globex_entries
    # Resource ids may coincide: Globex's failed attempts on Acme's ids are in Globex's log.
    assert not {e["actor_id"] for e in acme_entries} & {e["actor_id"] for e in globex_entries}
    assert {e["resource_id"] for e in globex_entries if e["outcome"] == "success"}.isdisjoint(
        {e["resource_id"] for e in acme_entries}
    )
    assert not {e["id"] for e in acme_entries} & {e["id"] for e in globex_entries}
    assert http.get(f"/v1/audit-log/{acme_entries[0]['id']}", headers=globex.headers()).status_code == 404


def test_a_lower_role_cannot_revoke_a_higher_roles_key(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Ranks", customers=0)
    owner_key = issue(http, tenant, role="owner")
    operator = tenant.headers(key=issue(http, tenant, role="operator")["key"])
    refused = http.post(f"/v1/api-keys/{owner_key['id']}/revoke", headers=operator)
    assert refused.status_code == 403, refused.text
    assert refused.json()["permission"] == "connectors:write"
    assert http.get("/v1/organization", headers=tenant.headers(key=owner_key["key"])).status_code == 200
    peer = issue(http, tenant, role="viewer")
    assert http.post(f"/v1/api-keys/{peer['id']}/revoke", headers=operator).status_code == 200

"""Idempotency-Key through the API and in the store: a retry is answered once, per customer; a key
is never replayed for another customer's request; a claim left by a crashed request or released
during a retry is claimed again; a path Postgres cannot store is refused, not a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import store
from support.platform import Tenant, make_tenant

TINY = {
    "id": "tiny",
    "name": "Tiny",
    "base_url": "https://api.tiny.example/v1",
    "auth": {"type": "bearer"},
    "actions": {"list_things": {"method": "GET", "path": "/things"}},
}
BEARER = {
    "id": "idempotent-bearer",
    "name": "Idempotent",
    "base_url": "https://api.example.invalid",
    "auth": {"type": "bearer"},
    "actions": {"list": {"method": "GET", "path": "/things"}},
}


@pytest.fixture(scope="module")
def acme(db: store.Database, http: httpx.Client) -> Tenant:
    tenant = make_tenant(db, "Acme")
    for spec in (TINY, BEARER):
        created = http.post("/v1/connectors", headers=tenant.headers(), json={"spec": spec})
        assert created.status_code == 201, created.text
    return tenant


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def test_an_idempotency_key_is_not_replayed_for_another_customer(http: httpx.Client, acme: Tenant) -> None:
    first, second = acme.customers
    body = {"connector": "tiny", "name": "review", "auth": {"type": "bearer", "token": "tok-review-1234"}}
    key = {"Idempotency-Key": "review-connect-once"}
    created = http.post("/v1/connections", headers=acme.headers(first) | key, json=body)
    assert created.status_code == 201 and created.json()["customer_id"] == first
    # The same key and body for another customer is another request, not a retry of this one.
    other = http.post("/v1/connections", headers=acme.headers(second) | key, json=body)
    assert other.status_code == 409, other.text
    assert "idempotent-replayed" not in other.headers and created.json()["id"] not in other.text
    assert other.json()["field"] == "Idempotency-Key"
    listed = http.get("/v1/connections", headers=acme.headers(second), params={"connector": "tiny"}).json()["items"]
    assert listed == []
    retry = http.post("/v1/connections", headers=acme.headers(first) | key, json=body)
    assert retry.headers["idempotent-replayed"] == "true" and retry.json()["id"] == created.json()["id"]


def test_a_key_spent_on_one_customer_is_refused_for_another_and_still_replays(http: httpx.Client, acme: Tenant) -> None:
    body = {"connector": BEARER["id"], "auth": {"type": "bearer", "token": "review-token-1"}}
    first, second = acme.customers
    a = http.post("/v1/connections", headers={**acme.headers(first), "Idempotency-Key": "per-customer"}, json=body)
    assert a.status_code == 201, a.text
    b = http.post("/v1/connections", headers={**acme.headers(second), "Idempotency-Key": "per-customer"}, json=body)
    # The key was spent on another customer's request: refused, never answered with that customer's row.
    problem = _problem(b, 409)
    assert "idempotent-replayed" not in b.headers
    assert a.json()["id"] not in b.text and first not in b.text
    assert problem["field"] == "Idempotency-Key"
    # The same request again is still replayed.
    again = http.post("/v1/connections", headers={**acme.headers(first), "Idempotency-Key": "per-customer"}, json=body)
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == a.json()["id"]


def test_an_idempotency_key_on_a_path_with_nul_is_refused_with_422(http: httpx.Client, acme: Tenant) -> None:
    headers = {**acme.headers(acme.customers[0]), "Idempotency-Key": "nul-path"}
    # The claim stores the path; Postgres text cannot hold a NUL, which used to be a 500.
    problem = _problem(http.post("/v1/workflows/ab%00c/runs", headers=headers, json={}), 422)
    assert problem["code"] in ("request_invalid", "value_not_storable")
    # Nothing was claimed: the same key still works for a proper request.
    retry = http.post("/v1/customers", headers={**acme.headers(), "Idempotency-Key": "nul-path"}, json={"name": "After NUL"})
    assert retry.status_code == 201, retry.text


class _ReleasedMeanwhile:
    """A psycopg connection whose INSERT ... ON CONFLICT into idempotency_keys is followed, before
    the next statement, by another request releasing its claim (committed on another connection)."""

    def __init__(self, tx: Any, release: Any) -> None:
        self._tx = tx
        self._release = release

    def execute(self, statement: str, params: Any = None) -> Any:
        cursor = self._tx.execute(statement, params)
        if statement.startswith("INSERT INTO idempotency_keys") and self._release is not None:
            release, self._release = self._release, None
            release()
        return cursor


def test_a_claim_released_while_a_retry_looks_at_it_is_claimed_again(db: store.Database, acme: Tenant) -> None:
    org = acme.org_id
    with db.tenant(org) as tx:
        assert store.IdempotencyKeys(tx).claim(org, "race", "key_a", "POST", "/v1/x", "h") is None

    def release() -> None:
        with db.tenant(org) as other:
            store.IdempotencyKeys(other).release(org, "race")

    with db.tenant(org) as tx:
        claimed = store.IdempotencyKeys(_ReleasedMeanwhile(tx, release)).claim(org, "race", "key_a", "POST", "/v1/x", "h")
    assert claimed is None  # the retry holds the claim now
    with db.tenant(org) as tx, pytest.raises(store.Conflict, match="in progress"):
        store.IdempotencyKeys(tx).claim(org, "race", "key_a", "POST", "/v1/x", "h")


def test_a_claim_abandoned_by_a_crashed_request_is_claimed_again(db: store.Database, acme: Tenant) -> None:
    # A process that dies between claim and completion never releases its claim; a client's
    # retry (what the key is for) must not be refused as "in progress" for the whole retention.
    org = acme.org_id
    with db.tenant(org) as tx:
        assert store.IdempotencyKeys(tx).claim(org, "crashed", "key_a", "POST", "/v1/x", "h") is None
    with db.tenant(org) as tx, pytest.raises(store.Conflict, match="in progress"):
        store.IdempotencyKeys(tx).claim(org, "crashed", "key_a", "POST", "/v1/x", "h")
    with db.tenant(org) as tx:
        tx.execute("UPDATE idempotency_keys SET created_at = now() - interval '1 hour' WHERE org_id = %s AND key = 'crashed'", (org,))
    with db.tenant(org) as tx:
        assert store.IdempotencyKeys(tx).claim(org, "crashed", "key_a", "POST", "/v1/x", "h") is None
    # A completed request an hour ago is still replayed.
    with db.tenant(org) as tx:
        store.IdempotencyKeys(tx).complete(org, "crashed", 201, {"id": "x"})
        tx.execute("UPDATE idempotency_keys SET created_at = now() - interval '1 hour' WHERE org_id = %s AND key = 'crashed'", (org,))
    with db.tenant(org) as tx:
        assert store.IdempotencyKeys(tx).claim(org, "crashed", "key_a", "POST", "/v1/x", "h")["response"] == {"id": "x"}

"""Review of the store and the API edge: tenant scope, idempotency, cursors, values the database
cannot store and secrets in reprs. Each test pins a defect found in review (a 500 where the
client's request was at fault, or a response answered for the wrong customer)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.platform import Tenant, app_database, client, make_tenant, running_platform

import store
from store.errors import OutsideTenantScope, ValueNotStorable
from switchboard.bootstrap import DevCredentials

CONNECTOR = {
    "id": "review-bearer",
    "name": "Review",
    "base_url": "https://api.example.invalid",
    "auth": {"type": "bearer"},
    "actions": {"list": {"method": "GET", "path": "/things"}},
}


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def db(migrated_database_url: str) -> Iterator[store.Database]:
    with app_database(migrated_database_url) as database:
        yield database


@pytest.fixture(scope="module")
def http(platform: str) -> Iterator[httpx.Client]:
    with client(platform) as c:
        yield c


@pytest.fixture(scope="module")
def acme(db: store.Database, http: httpx.Client) -> Tenant:
    tenant = make_tenant(db, "Acme")
    created = http.post("/v1/connectors", headers=tenant.headers(), json={"spec": CONNECTOR})
    assert created.status_code == 201, created.text
    return tenant


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


# -- idempotency ---------------------------------------------------------------------------------


def test_an_idempotency_key_on_a_path_with_nul_is_refused_with_422(http: httpx.Client, acme: Tenant) -> None:
    headers = {**acme.headers(acme.customers[0]), "Idempotency-Key": "nul-path"}
    # The claim stores the path; Postgres text cannot hold a NUL, which used to be a 500.
    problem = _problem(http.post("/v1/workflows/ab%00c/runs", headers=headers, json={}), 422)
    assert problem["code"] in ("request_invalid", "value_not_storable")
    # Nothing was claimed: the same key still works for a proper request.
    retry = http.post("/v1/customers", headers={**acme.headers(), "Idempotency-Key": "nul-path"}, json={"name": "After NUL"})
    assert retry.status_code == 201, retry.text


def test_an_idempotency_key_is_not_replayed_for_another_customer(http: httpx.Client, acme: Tenant) -> None:
    body = {"connector": CONNECTOR["id"], "auth": {"type": "bearer", "token": "review-token-1"}}
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


class _BoundMeanwhile:
    """A psycopg connection on which, right after the first lookup of a user by OIDC subject,
    a concurrent first sign-in of the same identity binds it (committed on another connection)."""

    def __init__(self, tx: Any, bind: Any) -> None:
        self._tx = tx
        self._bind = bind

    def execute(self, statement: str, params: Any = None) -> Any:
        cursor = self._tx.execute(statement, params)
        if statement.startswith("SELECT * FROM users WHERE org_id = %s AND oidc_subject") and self._bind is not None:
            bind, self._bind = self._bind, None
            bind()
        return cursor


def test_two_first_sign_ins_at_once_both_find_the_user(db: store.Database) -> None:
    tenant = make_tenant(db, "SignIn")
    org = tenant.org_id
    with db.tenant(org) as tx:
        invited = store.Users(tx).invite(org, "ada@example.com", "developer")

    def bind() -> None:
        with db.tenant(org) as other:
            assert store.Users(other).by_subject(org, "sub-ada", "ada@example.com")["id"] == invited["id"]

    with db.tenant(org) as tx:
        user = store.Users(_BoundMeanwhile(tx, bind)).by_subject(org, "sub-ada", "ada@example.com")
    assert user is not None and user["id"] == invited["id"] and user["status"] == "active"

# -- cursors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "sort", "cursor"),
    [
        ("/v1/customers", None, _cursor("-created_at", "not a time", "x")),
        ("/v1/customers", None, _cursor("-created_at", {"a": 1}, "x")),
        ("/v1/customers", None, _cursor("-created_at", [1, 2], "x")),
        ("/v1/customers", None, _cursor("-created_at", 5, "x")),
        ("/v1/customers", None, _cursor("-created_at", True, "x")),
        ("/v1/customers", None, _cursor("-created_at", None, "x")),
        ("/v1/customers", None, _cursor("-created_at", {"t": "garbage"}, "x")),
        ("/v1/customers", "name", _cursor("name", 10**30, "x")),
        ("/v1/audit-log", "id", _cursor("id", "abc", "x")),
        ("/v1/audit-log", "-at", _cursor("-at", {"t": "2026-01-01T00:00:00+00:00"}, "not-a-number")),
    ],
)
def test_a_forged_cursor_is_refused_with_422(http: httpx.Client, acme: Tenant, path: str, sort: str | None, cursor: str) -> None:
    params = {"cursor": cursor} | ({"sort": sort} if sort else {})
    problem = _problem(http.get(path, headers=acme.headers(), params=params), 422)
    assert problem["field"] == "cursor"


def test_issued_cursors_still_page(http: httpx.Client, acme: Tenant) -> None:
    for sort in ("-created_at", "name", "id"):
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 1, "sort": sort}
        while True:
            page = http.get("/v1/customers", headers=acme.headers(), params=params)
            assert page.status_code == 200, page.text
            seen += [c["id"] for c in page.json()["items"]]
            if not page.json()["next_cursor"]:
                break
            params["cursor"] = page.json()["next_cursor"]
        assert len(seen) == len(set(seen)) >= 2
    audit = http.get("/v1/audit-log", headers=acme.headers(), params={"limit": 1, "sort": "id"}).json()
    if audit["next_cursor"]:
        following = http.get("/v1/audit-log", headers=acme.headers(), params={"limit": 1, "sort": "id", "cursor": audit["next_cursor"]})
        assert following.status_code == 200, following.text


# -- tenant scope --------------------------------------------------------------------------------


def test_a_customer_bound_key_cannot_create_customers(http: httpx.Client, acme: Tenant) -> None:
    issued = http.post("/v1/api-keys", headers=acme.headers(), json={"name": "bound admin", "role": "admin", "customer": acme.customers[0]})
    assert issued.status_code == 201, issued.text
    bound = acme.headers(key=issued.json()["key"])
    # Refused by the key's customer ceiling in code; the store's own refusal (RLS) is the next test.
    problem = _problem(http.post("/v1/customers", headers=bound, json={"name": "Sneaky"}), 403)
    assert problem["code"] == "forbidden" and problem["permission"] == "customers:write"
    names = [c["name"] for c in http.get("/v1/customers", headers=acme.headers(), params={"limit": 200}).json()["items"]]
    assert "Sneaky" not in names


def test_rows_outside_the_transactions_customer_are_refused_in_sql(db: store.Database, acme: Tenant) -> None:
    first, second = acme.customers
    with pytest.raises(OutsideTenantScope) as refused, db.tenant(acme.org_id, first) as tx:
        store.Customers(tx).create(acme.org_id, name="Elsewhere", environment_id="dev")
    assert refused.value.http_status == 403 and refused.value.resource == "customers"
    with pytest.raises(OutsideTenantScope), db.tenant(acme.org_id, first) as tx:
        store.Executions(tx).start(acme.org_id, customer_id=second, workflow_id="wf_x", version=1, dry_run=True, input={})
    # Another organization's row fails the permissive policy, whose refusal names no policy.
    with pytest.raises(OutsideTenantScope) as refused, db.tenant(acme.org_id) as tx:
        store.Environments(tx).create("org_000000000000000000000000", "qa", "QA")
    assert refused.value.resource == "environments"



def test_a_customer_bound_key_cannot_rename_a_tier_under_other_customers(http: httpx.Client, db: store.Database) -> None:
    # Renaming moves the tier's customers along; a transaction limited to one customer sees only
    # that one, so the others would silently fall off the tier.
    tenant = make_tenant(db, "Tiers")
    tier = http.post("/v1/billing/tiers", headers=tenant.headers(), json={"name": "gold"})
    assert tier.status_code == 201, tier.text
    for customer in tenant.customers:
        assert http.patch(f"/v1/customers/{customer}", headers=tenant.headers(), json={"tier": "gold"}).status_code == 200
    issued = http.post("/v1/api-keys", headers=tenant.headers(), json={"name": "b", "role": "admin", "customer": tenant.customers[0]})
    bound = tenant.headers(key=issued.json()["key"])
    renamed = http.patch(f"/v1/billing/tiers/{tier.json()['id']}", headers=bound, json={"name": "platinum"})
    assert _problem(renamed, 403)["permission"] == "billing:write"
    tiers = {c["id"]: c["tier"] for c in http.get("/v1/customers", headers=tenant.headers()).json()["items"]}
    assert tiers == {customer: "gold" for customer in tenant.customers}
    # Nor its limits: a tier is the organization's, shared by other customers.
    limits = {"events_per_day": {"limit": 5, "mode": "warn"}}
    assert http.patch(f"/v1/billing/tiers/{tier.json()['id']}", headers=bound, json={"limits": limits}).status_code == 403
    # An organization-level caller renames it with every customer.
    assert http.patch(f"/v1/billing/tiers/{tier.json()['id']}", headers=tenant.headers(), json={"name": "platinum"}).status_code == 200
    tiers = {c["id"]: c["tier"] for c in http.get("/v1/customers", headers=tenant.headers()).json()["items"]}
    assert tiers == {customer: "platinum" for customer in tenant.customers}

# -- values the database cannot store -----------------------------------------------------------


def test_text_with_a_lone_surrogate_is_refused_with_422(http: httpx.Client, acme: Tenant, db: store.Database) -> None:
    headers = {**acme.headers(), "content-type": "application/json"}
    for raw in (b'{"name": "a", "metadata": {"k\\ud800": 1}}', b'{"name": "a", "metadata": {"k": "\\udfff"}}'):
        problem = _problem(http.post("/v1/customers", headers=headers, content=raw), 422)
        assert problem["code"] == "value_not_storable"
    with pytest.raises(ValueNotStorable), db.tenant(acme.org_id) as tx:
        store.Customers(tx).create(acme.org_id, name="bad \ud800", environment_id="dev")
    with pytest.raises(ValueNotStorable), db.tenant(acme.org_id) as tx:
        store.Customers(tx).create(acme.org_id, name="nul \x00", environment_id="dev")


def test_other_database_errors_stay_server_errors(db: store.Database, acme: Tenant) -> None:
    with pytest.raises(store.QueryFailed), db.tenant(acme.org_id) as tx:
        tx.execute("SELECT 1/0")
    with pytest.raises(store.QueryFailed) as refused, db.tenant(acme.org_id) as tx:
        tx.execute("DELETE FROM audit_log")  # the app role has no DELETE on the append-only log
    assert refused.value.sqlstate == "42501"



def test_a_run_whose_third_party_data_postgres_cannot_store_is_still_recorded(db: store.Database) -> None:
    # Outputs and traces hold what third-party APIs answered: a NUL or an unpaired surrogate
    # escape there must not leave the execution "running" forever.
    tenant = make_tenant(db, "Runs")
    spec = {"id": "review-wf", "name": "Review", "steps": []}
    with db.tenant(tenant.org_id) as tx:
        workflow = store.Workflows(tx).create(tenant.org_id, spec)
        started = store.Executions(tx).start(
            tenant.org_id, customer_id=tenant.customers[0], workflow_id=workflow["id"], version=0, dry_run=True, input={}
        )
    with db.tenant(tenant.org_id) as tx:
        finished = store.Executions(tx).finish(
            tenant.org_id, started["id"], status="failed",
            output={"name": "bad \x00 and \ud800", "k\udfff": ["\x00"]},
            error={"message": "answered \ud83d"}, trace=[{"body": "\x00"}],
        )
    assert finished["status"] == "failed"
    assert finished["output"] == {"name": "bad \ufffd and \ufffd", "k\ufffd": ["\ufffd"]}
    assert finished["error"] == {"message": "answered \ufffd"} and finished["trace"] == [{"body": "\ufffd"}]
    # A valid pair (an emoji) is kept.
    with db.tenant(tenant.org_id) as tx:
        kept = store.Executions(tx).finish(tenant.org_id, started["id"], status="succeeded", output={"e": "\U0001f600"})
    assert kept["output"] == {"e": "\U0001f600"}

# -- secrets in reprs ----------------------------------------------------------------------------


def test_dev_credentials_repr_leaves_the_key_out() -> None:
    credentials = DevCredentials(account_id="org_1", access_key="sk_live_review_secret", tenant_id="local-customer")
    assert "sk_live_review_secret" not in repr(credentials)
    assert "org_1" in repr(credentials)


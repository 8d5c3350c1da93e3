"""Quotas: the Free plan's limits block one customer with 429 and a reset time while another goes
on; refused calls count nothing; warn mode, tiers and overrides; the billing routes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import store
from support.platform import Tenant, client, make_tenant, running_platform
from switchboard import bootstrap

START = datetime(2031, 3, 4, 10, 0, 30, tzinfo=UTC)
NEXT_MINUTE = datetime(2031, 3, 4, 10, 1, tzinfo=UTC)
NEXT_MIDNIGHT = datetime(2031, 3, 5, tzinfo=UTC)
# A cheap request that names a customer, so it is charged as an API call.
CHEAP = "/v1/organization"
ECHO = {"id": "echo", "tier": "instant", "steps": [{"id": "greet", "map": {"hello": "{{ input.name }}"}}]}


class FakeClock:
    """The platform's clock; tests move it."""

    def __init__(self) -> None:
        self.now = START
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, now: datetime) -> None:
        with self._lock:
            self.now = now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def platform(migrated_database_url: str, clock: FakeClock) -> Iterator[str]:
    with running_platform(migrated_database_url, clock=clock) as (url, _settings):
        yield url


@pytest.fixture
def http(platform: str, clock: FakeClock) -> Iterator[httpx.Client]:
    clock.set(START)
    with client(platform) as c:
        yield c


def usage(http: httpx.Client, tenant: Tenant, customer: str) -> dict[str, dict]:
    # No tenant header: reading usage as the organization is not itself a charged call.
    response = http.get(f"/v1/billing/customers/{customer}/usage", headers=tenant.headers())
    assert response.status_code == 200, response.text
    return response.json()["quotas"]


def counts(http: httpx.Client, tenant: Tenant, customer: str) -> dict[str, int]:
    return {dimension: quota["count"] for dimension, quota in usage(http, tenant, customer).items()}


def put_overrides(http: httpx.Client, tenant: Tenant, customer: str, overrides: dict) -> httpx.Response:
    return http.put(f"/v1/billing/customers/{customer}/overrides", headers=tenant.headers(), json=overrides)


def walk(http: httpx.Client, path: str, tenant: Tenant, **params: object) -> list[dict]:
    """Every item of a list, page by page."""
    items, cursor = [], None
    while True:
        page = http.get(path, headers=tenant.headers(), params=params | ({"cursor": cursor} if cursor else {})).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def assert_refused(response: httpx.Response, dimension: str, limit: int, reset_at: datetime, now: datetime) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "quota_exceeded"
    assert problem["dimension"] == dimension
    assert problem["limit"] == limit
    assert datetime.fromisoformat(problem["reset_at"]) == reset_at
    assert int(response.headers["retry-after"]) == int((reset_at - now).total_seconds())


def test_api_calls_per_minute_block_one_customer_only(http: httpx.Client, db: store.Database, clock: FakeClock) -> None:
    tenant = make_tenant(db, "Minute")
    first, second = tenant.customers
    for _ in range(20):
        assert http.get(CHEAP, headers=tenant.headers(first)).status_code == 200
    refused = http.get(CHEAP, headers=tenant.headers(first))
    assert_refused(refused, "api_calls_per_minute", 20, NEXT_MINUTE, START)
    assert refused.headers["retry-after"] == "30"
    # Refused calls count nothing, in either window, however often they are retried.
    for _ in range(3):
        assert http.get(CHEAP, headers=tenant.headers(first)).status_code == 429
    assert counts(http, tenant, first) == {
        "events_per_day": 0, "events_per_minute": 0, "api_calls_per_day": 20, "api_calls_per_minute": 20,
    }
    assert http.get(CHEAP, headers=tenant.headers(second)).status_code == 200
    assert counts(http, tenant, second)["api_calls_per_minute"] == 1
    # A mutation refused by the quota is refused before it runs, and audited as such.
    renamed = http.patch(f"/v1/customers/{first}", headers=tenant.headers(first), json={"name": "renamed"})
    assert renamed.status_code == 429
    assert http.get(f"/v1/customers/{first}", headers=tenant.headers()).json()["name"] != "renamed"
    clock.advance(seconds=30)
    assert http.get(CHEAP, headers=tenant.headers(first)).status_code == 200
    assert counts(http, tenant, first)["api_calls_per_day"] == 21


def test_api_calls_per_day_block_until_utc_midnight(
    platform: str, http: httpx.Client, db: store.Database, clock: FakeClock
) -> None:
    tenant = make_tenant(db, "Day")
    first, second = tenant.customers
    headers = tenant.headers(first)
    # 20 calls a minute for 50 minutes. The first 48 minutes are charged through the store's
    # counter, which the API edge calls (an HTTP round trip costs ~50 ms in this harness); the
    # last two go over HTTP, each minute's 20 in parallel.
    for _minute in range(48):
        with db.tenant(tenant.org_id, first) as tx:
            for _ in range(20):
                store.Quotas(tx).charge(tenant.org_id, first, "api_calls", clock())
        clock.advance(minutes=1)
    with httpx.Client(base_url=platform, timeout=30, limits=httpx.Limits(max_connections=20)) as shared:
        with ThreadPoolExecutor(max_workers=20) as pool:
            for _minute in range(2):
                statuses = list(pool.map(lambda _: shared.get(CHEAP, headers=headers).status_code, range(20)))
                assert statuses == [200] * 20
                clock.advance(minutes=1)
    now = clock()
    assert_refused(http.get(CHEAP, headers=headers), "api_calls_per_day", 1000, NEXT_MIDNIGHT, now)
    assert http.get(CHEAP, headers=tenant.headers(second)).status_code == 200
    quotas = usage(http, tenant, first)
    assert quotas["api_calls_per_day"]["count"] == 1000 and quotas["api_calls_per_day"]["remaining"] == 0
    assert quotas["api_calls_per_minute"]["count"] == 0
    assert datetime.fromisoformat(quotas["api_calls_per_day"]["reset_at"]) == NEXT_MIDNIGHT
    clock.advance(minutes=1)
    assert http.get(CHEAP, headers=headers).status_code == 429
    clock.set(NEXT_MIDNIGHT)
    assert http.get(CHEAP, headers=headers).status_code == 200
    assert counts(http, tenant, first)["api_calls_per_day"] == 1


def test_events_per_minute_and_per_day(http: httpx.Client, db: store.Database, clock: FakeClock) -> None:
    tenant = make_tenant(db, "Events")
    first, second = tenant.customers

    def charge(customer: str) -> store.Charge:
        with db.tenant(tenant.org_id, customer) as tx:
            return store.Quotas(tx).charge(tenant.org_id, customer, "events", clock())

    for _ in range(10):
        charge(first)
    with pytest.raises(store.QuotaExceeded) as minute:
        charge(first)
    assert (minute.value.dimension, minute.value.limit, minute.value.reset_at) == ("events_per_minute", 10, NEXT_MINUTE)
    assert minute.value.retry_after == 30
    assert [w.count for w in charge(second).usage] == [1, 1]
    for _minute in range(49):
        clock.advance(minutes=1)
        with db.tenant(tenant.org_id, first) as tx:
            for _ in range(10):
                store.Quotas(tx).charge(tenant.org_id, first, "events", clock())
    clock.advance(minutes=1)
    with pytest.raises(store.QuotaExceeded) as day:
        charge(first)
    assert (day.value.dimension, day.value.limit, day.value.reset_at) == ("events_per_day", 500, NEXT_MIDNIGHT)
    assert counts(http, tenant, first) == {
        "events_per_day": 500, "events_per_minute": 0, "api_calls_per_day": 0, "api_calls_per_minute": 0,
    }
    # Through the API: a run for the customer is refused with the day's reset time; the other runs.
    org = tenant.headers()
    assert http.post("/v1/workflows", headers=org, json={"spec": ECHO}).status_code == 201
    assert http.post("/v1/workflows/echo/publish", headers=org).status_code == 201
    refused = http.post("/v1/workflows/echo/runs", headers=tenant.headers(first), json={"input": {"name": "Ada"}})
    assert_refused(refused, "events_per_day", 500, NEXT_MIDNIGHT, clock())
    assert http.post("/v1/workflows/echo/runs", headers=tenant.headers(second), json={"input": {"name": "Ada"}}).status_code == 201
    assert counts(http, tenant, first)["events_per_day"] == 500
    clock.set(NEXT_MIDNIGHT)
    assert [w.count for w in charge(first).usage] == [1, 1]


def test_concurrent_calls_cannot_overshoot(platform: str, http: httpx.Client, db: store.Database, clock: FakeClock) -> None:
    tenant = make_tenant(db, "Burst", customers=1)
    (customer,) = tenant.customers
    with httpx.Client(base_url=platform, timeout=30, limits=httpx.Limits(max_connections=40)) as shared:
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda _: shared.get(CHEAP, headers=tenant.headers(customer)).status_code, range(40)))
    assert sorted(statuses) == [200] * 20 + [429] * 20
    assert counts(http, tenant, customer)["api_calls_per_minute"] == 20

    def charge(_: int) -> bool:
        try:
            with db.tenant(tenant.org_id, customer) as tx:
                store.Quotas(tx).charge(tenant.org_id, customer, "events", clock())
            return True
        except store.QuotaExceeded:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(charge, range(30))) == 10
    assert counts(http, tenant, customer)["events_per_minute"] == 10


def test_warn_mode_counts_and_lets_through(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Warn")
    first, _ = tenant.customers
    put = http.put(
        f"/v1/billing/customers/{first}/overrides",
        headers=tenant.headers(),
        json={"api_calls_per_minute": {"limit": 2, "mode": "warn"}},
    )
    assert put.status_code == 200, put.text
    quota = put.json()["quotas"]["api_calls_per_minute"]
    assert (quota["limit"], quota["mode"], quota["source"]) == (2, "warn", "override")
    responses = [http.get(CHEAP, headers=tenant.headers(first)) for _ in range(4)]
    assert [r.status_code for r in responses] == [200] * 4
    warned = [r.headers.get("x-quota-warning") for r in responses]
    assert warned == [None, None, "api_calls_per_minute", "api_calls_per_minute"]
    assert counts(http, tenant, first)["api_calls_per_minute"] == 4


def test_tiers_and_overrides_set_the_limits(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Tiered")
    first, second = tenant.customers
    org = tenant.headers()
    gold = {"name": "gold", "limits": {"api_calls_per_minute": {"limit": 3, "mode": "hard"}}}
    tier = http.post("/v1/billing/tiers", headers=org, json=gold)
    assert tier.status_code == 201, tier.text
    tier_id = tier.json()["id"]
    assert tier.json()["customers"] == 0
    assert http.patch(f"/v1/customers/{first}", headers=org, json={"tier": "gold"}).status_code == 200
    assert http.get(f"/v1/billing/tiers/{tier_id}", headers=org).json()["customers"] == 1
    statuses = [http.get(CHEAP, headers=tenant.headers(first)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    quota = usage(http, tenant, first)["api_calls_per_minute"]
    assert (quota["limit"], quota["source"], quota["count"]) == (3, "tier", 3)
    assert usage(http, tenant, second)["api_calls_per_minute"]["source"] == "plan"

    # An override wins over the tier; null is unlimited.
    put = put_overrides(http, tenant, first, {"api_calls_per_minute": {"limit": 5, "mode": "hard"}})
    assert put.json()["overrides"] == {"api_calls_per_minute": {"limit": 5, "mode": "hard"}}
    assert [http.get(CHEAP, headers=tenant.headers(first)).status_code for _ in range(3)] == [200, 200, 429]
    put = put_overrides(http, tenant, first, {"api_calls_per_minute": {"limit": None, "mode": "hard"}})
    quota = put.json()["quotas"]["api_calls_per_minute"]
    assert (quota["limit"], quota["remaining"], quota["source"]) == (None, None, "override")
    assert http.get(CHEAP, headers=tenant.headers(first)).status_code == 200
    cleared = put_overrides(http, tenant, first, {})
    assert cleared.json()["overrides"] == {} and cleared.json()["quotas"]["api_calls_per_minute"]["source"] == "tier"

    # Renaming a tier moves its customers along; changing its limits applies at once.
    renamed = http.patch(
        f"/v1/billing/tiers/{tier_id}", headers=org,
        json={"name": "platinum", "limits": {"api_calls_per_minute": {"limit": 100, "mode": "hard"}}},
    )
    assert renamed.status_code == 200 and renamed.json()["customers"] == 1
    assert http.get(f"/v1/customers/{first}", headers=org).json()["tier"] == "platinum"
    assert usage(http, tenant, first)["api_calls_per_minute"]["limit"] == 100
    assert http.get(CHEAP, headers=tenant.headers(first)).status_code == 200
    # Deleting it falls back to the plan.
    assert http.delete(f"/v1/billing/tiers/{tier_id}", headers=org).status_code == 204
    assert http.get(f"/v1/billing/tiers/{tier_id}", headers=org).status_code == 404
    quota = usage(http, tenant, first)["api_calls_per_minute"]
    assert (quota["limit"], quota["source"]) == (20, "plan")


def test_billing_plan_and_quota_table(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Plan")
    first, second = tenant.customers
    org = tenant.headers()
    for customer in (first, first, second):
        assert http.get(CHEAP, headers=tenant.headers(customer)).status_code == 200
    billing = http.get("/v1/billing", headers=org)
    assert billing.status_code == 200, billing.text
    body = billing.json()
    assert body["plan"] == "free"
    table = {d: (q["limit"], q["mode"], q["window"], q["count"]) for d, q in body["quotas"].items()}
    assert table == {
        "events_per_day": (500, "hard", "day", 0),
        "events_per_minute": (10, "hard", "minute", 0),
        "api_calls_per_day": (1000, "hard", "day", 3),
        "api_calls_per_minute": (20, "hard", "minute", 3),
    }
    assert datetime.fromisoformat(body["quotas"]["api_calls_per_day"]["reset_at"]) == NEXT_MIDNIGHT
    assert set(body["plans"]) == {"free", "pro", "enterprise"}

    _, developer_key = bootstrap.create_api_key(db, tenant.org_id, "developer", role_id="developer")
    forbidden = http.patch("/v1/billing", headers=tenant.headers(key=developer_key), json={"plan": "pro"})
    assert forbidden.status_code == 403 and forbidden.json()["permission"] == "billing:write"
    changed = http.patch("/v1/billing", headers=org, json={"plan": "pro"})
    assert changed.status_code == 200 and changed.json()["quotas"]["api_calls_per_minute"]["limit"] == 1000
    assert usage(http, tenant, first)["api_calls_per_minute"]["limit"] == 1000
    assert http.patch("/v1/billing", headers=org, json={"plan": "platinum"}).status_code == 422


def test_bad_limits_are_refused_naming_the_dimension(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Bad")
    first, _ = tenant.customers
    org = tenant.headers()

    def pointers(response: httpx.Response) -> list[str]:
        assert response.status_code == 422, response.text
        return [error["pointer"] for error in response.json()["errors"]]

    cases = [
        ({"events_per_hour": {"limit": 1, "mode": "hard"}}, "/events_per_hour"),
        ({"events_per_day": {"limit": -1, "mode": "hard"}}, "/events_per_day/limit"),
        ({"events_per_day": {"limit": "many", "mode": "hard"}}, "/events_per_day/limit"),
        ({"api_calls_per_day": {"limit": 10, "mode": "block"}}, "/api_calls_per_day/mode"),
        ({"api_calls_per_day": {"limit": 10}}, "/api_calls_per_day/mode"),
        ({"api_calls_per_minute": {"limit": 1, "mode": "hard", "burst": 3}}, "/api_calls_per_minute/burst"),
    ]
    for limits, pointer in cases:
        tier = http.post("/v1/billing/tiers", headers=org, json={"name": "t1", "limits": limits})
        assert "/body/limits" + pointer in pointers(tier), (limits, tier.text)
        override = http.put(f"/v1/billing/customers/{first}/overrides", headers=org, json=limits)
        assert "/body" + pointer in pointers(override), (limits, override.text)
    assert "/body/name" in pointers(http.post("/v1/billing/tiers", headers=org, json={"name": "Has Spaces"}))
    assert http.post("/v1/billing/tiers", headers=org, json={"name": "t1"}).status_code == 201
    duplicate = http.post("/v1/billing/tiers", headers=org, json={"name": "t1"})
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "name"
    missing = http.put("/v1/billing/customers/nobody/overrides", headers=org, json={})
    assert missing.status_code == 404 and missing.json()["resource"] == "customer"
    assert http.get("/v1/billing/usage", headers=org, params={"sort": "count"}).status_code == 422
    # Nothing was stored by the refused writes.
    assert usage(http, tenant, first)["events_per_day"]["source"] == "plan"

    # The store checks the same way for callers that skip the API's models.
    with db.tenant(tenant.org_id) as tx:
        quotas = store.Quotas(tx)
        with pytest.raises(store.InvalidInput) as bad:
            quotas.set_overrides(tenant.org_id, first, {"events_per_minute": {"limit": True, "mode": "hard"}})
        assert bad.value.field == "quota_overrides/events_per_minute/limit"
        with pytest.raises(store.InvalidInput) as bad:
            quotas.create_tier(tenant.org_id, "t2", {"events_per_week": {"limit": 1, "mode": "hard"}})
        assert bad.value.field == "limits/events_per_week" and "events_per_day" in str(bad.value)
        with pytest.raises(store.NotFound):
            quotas.charge(tenant.org_id, "nobody", "events", START)
        with pytest.raises(ValueError):
            quotas.charge(tenant.org_id, first, "webhooks", START)


def test_a_zero_limit_refuses_everything(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Zero", customers=1)
    (customer,) = tenant.customers
    put = put_overrides(http, tenant, customer, {"api_calls_per_day": {"limit": 0, "mode": "hard"}})
    assert put.status_code == 200
    assert_refused(http.get(CHEAP, headers=tenant.headers(customer)), "api_calls_per_day", 0, NEXT_MIDNIGHT, START)
    assert counts(http, tenant, customer)["api_calls_per_day"] == 0


def test_lists_page_and_filter(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Lists", customers=3)
    org = tenant.headers()
    for name in ("bronze", "silver", "gold"):
        assert http.post("/v1/billing/tiers", headers=org, json={"name": name}).status_code == 201
    assert [t["name"] for t in walk(http, "/v1/billing/tiers", tenant, limit=2, sort="name")] == ["bronze", "gold", "silver"]
    assert [t["name"] for t in walk(http, "/v1/billing/tiers", tenant, name="gold")] == ["gold"]
    assert [c["customer_id"] for c in walk(http, "/v1/billing/usage", tenant, limit=2, sort="id")] == sorted(tenant.customers)
    one = http.get("/v1/billing/usage", headers=org, params={"customer": tenant.customers[1]}).json()["items"]
    assert [c["customer_id"] for c in one] == [tenant.customers[1]]
    # Naming a customer in the header scopes the list to it (and charges that customer one call).
    scoped = http.get("/v1/billing/usage", headers=tenant.headers(tenant.customers[2])).json()["items"]
    assert [c["customer_id"] for c in scoped] == [tenant.customers[2]]
    assert scoped[0]["quotas"]["api_calls_per_minute"]["count"] == 1
    assert http.patch(f"/v1/customers/{tenant.customers[0]}", headers=org, json={"tier": "gold"}).status_code == 200
    gold = http.get("/v1/billing/usage", headers=org, params={"tier": "gold"}).json()["items"]
    assert [c["customer_id"] for c in gold] == [tenant.customers[0]]


def test_other_tenants_cannot_see_or_change_quotas(http: httpx.Client, db: store.Database) -> None:
    acme, globex = make_tenant(db, "Acme quotas"), make_tenant(db, "Globex quotas")
    tier = http.post("/v1/billing/tiers", headers=acme.headers(), json={"name": "acme-tier"}).json()
    customer = acme.customers[0]
    theirs = globex.headers()
    assert http.get(f"/v1/billing/customers/{customer}/usage", headers=theirs).status_code == 404
    assert http.put(f"/v1/billing/customers/{customer}/overrides", headers=theirs, json={}).status_code == 404
    for method in ("GET", "DELETE"):
        assert http.request(method, f"/v1/billing/tiers/{tier['id']}", headers=theirs).status_code == 404
    assert http.patch(f"/v1/billing/tiers/{tier['id']}", headers=theirs, json={"name": "mine"}).status_code == 404
    assert http.get("/v1/billing/tiers", headers=theirs).json()["items"] == []
    assert http.get("/v1/billing/usage", headers=theirs, params={"customer": customer}).json()["items"] == []
    listed = {c["customer_id"] for c in http.get("/v1/billing/usage", headers=theirs).json()["items"]}
    assert listed == set(globex.customers)
    assert http.get(f"/v1/billing/tiers/{tier['id']}", headers=acme.headers()).json()["name"] == "acme-tier"
    # Globex's traffic does not show in Acme's numbers.
    http.get(CHEAP, headers=globex.headers(globex.customers[0]))
    assert http.get("/v1/billing", headers=acme.headers()).json()["quotas"]["api_calls_per_minute"]["count"] == 0

    # A key limited to one customer reads only that customer's usage.
    _, bound = bootstrap.create_api_key(db, acme.org_id, "bound", role_id="operator", customer_id=customer)
    headers = acme.headers(key=bound)
    assert http.get(f"/v1/billing/customers/{acme.customers[1]}/usage", headers=headers).status_code == 404
    assert http.get(f"/v1/billing/customers/{customer}/usage", headers=headers).status_code == 200
    listed = [c["customer_id"] for c in http.get("/v1/billing/usage", headers=headers).json()["items"]]
    assert listed == [customer]
    # End users have no billing rights at all.
    _, end_user = bootstrap.create_api_key(db, acme.org_id, "end user", role_id="end_user", customer_id=customer)
    assert http.get("/v1/billing", headers=acme.headers(key=end_user)).status_code == 403


def test_workflow_runs_are_charged_as_events(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Runs")
    first, second = tenant.customers
    org = tenant.headers()
    spec = {"id": "echo", "tier": "instant", "steps": [{"id": "greet", "map": {"hello": "{{ input.name }}"}}]}
    assert http.post("/v1/workflows", headers=org, json={"spec": spec}).status_code == 201
    assert http.post("/v1/workflows/echo/publish", headers=org).status_code == 201

    def run(customer: str) -> httpx.Response:
        return http.post("/v1/workflows/echo/runs", headers=tenant.headers(customer), json={"input": {"name": "Ada"}})

    for _ in range(10):
        response = run(first)
        assert response.status_code == 201 and response.json()["status"] == "completed", response.text
    assert_refused(run(first), "events_per_minute", 10, NEXT_MINUTE, START)
    assert run(second).status_code == 201
    assert counts(http, tenant, first)["events_per_minute"] == 10
    # The refused run never started.
    executions = http.get("/v1/executions", headers=org, params={"customer": first, "limit": 50}).json()["items"]
    assert len(executions) == 10


def test_a_refusal_undoes_both_windows_inside_a_longer_transaction(http: httpx.Client, db: store.Database) -> None:
    tenant = make_tenant(db, "Savepoint", customers=1)
    (customer,) = tenant.customers
    put = put_overrides(http, tenant, customer, {"events_per_minute": {"limit": 3, "mode": "hard"}})
    assert put.status_code == 200
    with db.tenant(tenant.org_id, customer) as tx:
        quotas = store.Quotas(tx)
        for _ in range(3):
            quotas.charge(tenant.org_id, customer, "events", START)
        # The day window is incremented before the minute refuses; the refusal takes it back.
        with pytest.raises(store.QuotaExceeded) as refused:
            quotas.charge(tenant.org_id, customer, "events", START)
        assert refused.value.dimension == "events_per_minute"
        # The caller's transaction goes on and commits.
        tx.execute("SELECT 1")
    assert counts(http, tenant, customer)["events_per_day"] == 3


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
    assert renamed.status_code == 403, renamed.text
    assert renamed.headers["content-type"].startswith("application/problem+json")
    assert renamed.json()["permission"] == "billing:write"
    tiers = {c["id"]: c["tier"] for c in http.get("/v1/customers", headers=tenant.headers()).json()["items"]}
    assert tiers == {customer: "gold" for customer in tenant.customers}
    # Nor its limits: a tier is the organization's, shared by other customers.
    limits = {"events_per_day": {"limit": 5, "mode": "warn"}}
    assert http.patch(f"/v1/billing/tiers/{tier.json()['id']}", headers=bound, json={"limits": limits}).status_code == 403
    # An organization-level caller renames it with every customer.
    assert http.patch(f"/v1/billing/tiers/{tier.json()['id']}", headers=tenant.headers(), json={"name": "platinum"}).status_code == 200
    tiers = {c["id"]: c["tier"] for c in http.get("/v1/customers", headers=tenant.headers()).json()["items"]}
    assert tiers == {customer: "platinum" for customer in tenant.customers}

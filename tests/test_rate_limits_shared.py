"""Per-connection rate limits shared through Postgres, so they hold across processes.

* The store's schedule: slots taken from two connection pools at once (two processes' worth) are
  all distinct and spaced by the rate, whatever their interleaving; another organization's
  connection with the same key is not slowed; a 429's hold moves every later slot past it.
* End to end: two platform API processes run an Instant workflow on the same connection at the
  same moment; the app counts the calls it receives, and in no window does it see more than the
  connector's declared rate allows (each process alone would send at the full rate). The
  assertions are on counts and slots, not on how fast anything ran.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI, Request

import store
from runtime import SharedRateLimits
from support.platform import Tenant, app_database, make_tenant
from support.serve_process import platform_process
from support.servers import serve_app

# The connector's declared quota in the end-to-end test: 2 requests per 0.1 s (20/s, bursts of 2).
REQUESTS, PER_SECONDS = 2, 0.1
CALLS_PER_RUN = 12


def _org(db: store.Database, name: str) -> str:
    return make_tenant(db, name, customers=1).org_id


def test_slots_from_two_pools_share_one_schedule(migrated_database_url: str) -> None:
    interval, burst = 0.01, 3
    tolerance = (burst - 1) * interval
    with app_database(migrated_database_url) as first, app_database(migrated_database_url) as second:
        org = _org(first, "Shared slots")

        def take(db: store.Database) -> float:
            with db.tenant(org) as tx:
                slot, _ = store.RateLimits(tx).reserve(org, "app:org/cust", interval, tolerance)
            return slot

        with ThreadPoolExecutor(8) as pool:
            slots = sorted(pool.map(take, [first, second] * 30))
    assert len(set(slots)) == len(slots) == 60
    # GCRA: any n consecutive slots span at least (n - burst) intervals, so no window sees more
    # than burst + its length times the rate, from both pools together.
    for i in range(len(slots)):
        for j in range(i + burst, len(slots)):
            assert slots[j] - slots[i] >= (j - i - (burst - 1)) * interval - 1e-6, (i, j)


def test_another_organizations_connection_is_not_slowed(migrated_database_url: str) -> None:
    with app_database(migrated_database_url) as db:
        busy, quiet = _org(db, "Busy"), _org(db, "Quiet")
        limits = SharedRateLimits(db, busy)
        waits = asyncio.run(_reserve_many(limits, "app:c", 20, interval=1.0))
        assert waits[-1] > 15  # twenty slots a second apart: the last is far off
        other = asyncio.run(_reserve_many(SharedRateLimits(db, quiet), "app:c", 1, interval=1.0))
        assert other == [0.0]
        with db.tenant(quiet) as tx:  # row-level security: the busy organization's row is not visible
            rows = tx.execute("SELECT org_id FROM rate_limits WHERE rate_key = 'app:c'").fetchall()
        assert [r["org_id"] for r in rows] == [quiet]


def test_a_hold_after_a_429_delays_every_process(migrated_database_url: str) -> None:
    key, interval, tolerance = "app:c", 0.01, 0.05
    with app_database(migrated_database_url) as first, app_database(migrated_database_url) as second:
        org = _org(first, "Held")

        def reserve() -> tuple[float, float]:
            with second.tenant(org) as tx:
                return store.RateLimits(tx).reserve(org, key, interval, tolerance)

        slot, now = reserve()
        assert slot == now  # a free connection: the slot is now
        # the first process's call was answered 429 with Retry-After: 30
        asyncio.run(SharedRateLimits(first, org).hold(key, 30.0, tolerance))
        (after, seen), (then, _) = reserve(), reserve()
    assert 29 < after - seen <= 30  # the second process waits the hold out too
    assert then - after == pytest.approx(interval)  # and then no burst: an interval apart


async def _reserve_many(limits: SharedRateLimits, key: str, count: int, *, interval: float) -> list[float]:
    return [await limits.reserve(key, interval, 0.0) for _ in range(count)]  # type: ignore[misc]


# -- two platform processes ------------------------------------------------------------------


class Arrivals:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()


def counting_app(arrivals: Arrivals) -> FastAPI:
    app = FastAPI()

    @app.post("/items")
    async def create(request: Request) -> dict[str, Any]:
        with arrivals.lock:
            arrivals.times.append(time.monotonic())
        return {"ok": True}

    return app


@pytest.fixture(scope="module")
def app_url() -> Iterator[tuple[Arrivals, str]]:
    arrivals = Arrivals()
    with serve_app(counting_app(arrivals)) as url:
        yield arrivals, url


def _setup(http: httpx.Client, tenant: Tenant, url: str) -> None:
    connector = {
        "id": "limited", "base_url": url, "rate_limit": {"requests": REQUESTS, "per_seconds": PER_SECONDS},
        "actions": {"create": {"method": "POST", "path": "/items", "body": {"n": "{{ input.n }}"}}},
    }
    assert http.post("/v1/connectors", headers=tenant.headers(), json={"spec": connector}).status_code == 201
    assert http.post("/v1/connectors/limited/versions/1/publish", headers=tenant.headers()).status_code == 200
    workflow = {
        "id": "burst", "tier": "instant",
        "input": {"type": "object", "properties": {"ns": {"type": "array"}}},
        "steps": [{"id": "each", "foreach": {"items": "{{ input.ns }}", "as": "n", "concurrency": 6, "steps": [
            {"id": "send", "action": "limited.create", "input": {"n": "{{ n }}"}}]}}],
        "concurrency": {"per_customer": "unlimited"},
    }
    assert http.post("/v1/workflows", headers=tenant.headers(), json={"spec": workflow}).status_code == 201
    assert http.post("/v1/workflows/burst/publish", headers=tenant.headers()).status_code == 201


def _most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_two_platform_processes_keep_one_connections_declared_rate(
        migrated_database_url: str, app_url: tuple[Arrivals, str]) -> None:
    arrivals, url = app_url
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-rates-"))
    with app_database(migrated_database_url) as db:
        tenant = make_tenant(db, "Rates", customers=1)
    with psycopg.connect(migrated_database_url, autocommit=True) as owner:  # the free plan's 20 calls/min is too few
        owner.execute("UPDATE organizations SET plan = 'pro' WHERE id = %s", (tenant.org_id,))
    customer = tenant.customers[0]
    with platform_process(migrated_database_url, data_dir, egress_allow="127.0.0.1") as (first_url, _):
        with platform_process(migrated_database_url, data_dir, egress_allow="127.0.0.1") as (second_url, _):
            with httpx.Client(base_url=first_url, timeout=60) as first, httpx.Client(base_url=second_url, timeout=60) as second:
                _setup(first, tenant, url)
                arrivals.times.clear()
                start = threading.Barrier(2)

                def run(http: httpx.Client, offset: int) -> dict[str, Any]:
                    start.wait()
                    ns = list(range(offset, offset + CALLS_PER_RUN))
                    return http.post("/v1/workflows/burst/runs", headers=tenant.headers(customer),
                                     json={"input": {"ns": ns}}).json()

                with ThreadPoolExecutor(2) as pool:
                    results = list(pool.map(run, [first, second], [0, 100]))
    assert [r["status"] for r in results] == ["completed", "completed"], results
    total = 2 * CALLS_PER_RUN
    assert len(arrivals.times) == total
    # At 20/s with bursts of 2, a half-second window holds at most 2 + 10 calls (three more for the
    # jitter of arrival against the slot on a busy machine). Each process alone sends at 20/s, so
    # without the shared schedule both at once send 40/s: about 22 in such a window.
    window = 0.5
    allowed = REQUESTS + int(window * REQUESTS / PER_SECONDS) + 3
    assert _most_in_window(arrivals.times, window) <= allowed, sorted(t - arrivals.times[0] for t in arrivals.times)
    with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
        rows = tx.execute("SELECT rate_key FROM rate_limits WHERE org_id = %s", (tenant.org_id,)).fetchall()
    assert [r["rate_key"] for r in rows] == [f"limited:{tenant.org_id}/{customer}"]

"""App events by polling, against real parts: the Cin7 sandbox over HTTP on 127.0.0.1 (listSales
with UpdatedSince), real Postgres, and the poller driven tick by tick with an injected clock.
New and changed sales each start exactly one execution, unchanged ones none; two pollers at once
start nothing twice; a failed poll keeps its cursor and the next one resumes from it; another
tenant sees none of the poll state."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from psycopg.rows import dict_row
from support.platform import app_database, make_tenant
from support.sandbox import running_sandbox

import store
from engine.sandbox import StepClock
from runtime import Poller
from runtime._credentials import create_connection
from switchboard.app import open_platform
from switchboard.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = "dev"  # where make_tenant's customers live
WORKFLOW = {
    "id": "on-sale", "tier": "standard",
    "trigger": {"kind": "app_event", "connector": "cin7", "event": "sale_changed"},
    "steps": [{"id": "echo", "map": {"sale": "{{ trigger.record.SaleID }}", "status": "{{ trigger.record.Status }}"}}],
}


async def _tick(poller: Poller, org_id: str) -> list[dict[str, Any]]:
    """One pass, with what it did for ``org_id`` (the database is shared with other tests' tenants)."""
    return [outcome for outcome in await poller.tick() if outcome["org_id"] == org_id]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="switchboard-polling-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _setup(db: store.Database, encryptor: Any, org_id: str, customers: list[str], base_url: str) -> None:
    spec = yaml.safe_load((ROOT / "examples" / "connectors" / "cin7.yaml").read_text()) | {"base_url": base_url}
    with db.tenant(org_id) as tx:
        connectors = store.Connectors(tx)
        connectors.create(org_id, spec)
        connectors.publish(org_id, "cin7", 1)
        for customer in customers:
            create_connection(tx, org_id, customer, "cin7", name="cin7", encryptor=encryptor,
                              auth={"type": "api_key", "values": {"account_id": f"acc-{customer}", "application_key": "key"}})
        workflows = store.Workflows(tx)
        workflows.create(org_id, WORKFLOW)
        workflows.deploy(org_id, WORKFLOW["id"], ENVIRONMENT, workflows.publish(org_id, WORKFLOW["id"])["version"])


def _runs(admin: str, org_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(admin, row_factory=dict_row) as conn:
        return conn.execute("SELECT id, customer_id, status, triggered_by, trigger FROM executions WHERE org_id = %s"
                            " ORDER BY started_at, id", (org_id,)).fetchall()


def _events(admin: str, org_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(admin, row_factory=dict_row) as conn:
        return conn.execute("SELECT status, source, error, payload, execution_ids FROM events WHERE org_id = %s"
                            " ORDER BY received_at, id", (org_id,)).fetchall()


def _change(sandbox: Any, record: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(sandbox.base_url + "/__sandbox/change", json={"collection": "/saleList", "record": record})
    assert answer.status_code == 200, answer.text
    return answer.json()["record"]


def _poll_row(db: store.Database, org_id: str) -> dict[str, Any]:
    with db.tenant(org_id) as tx:
        (row,) = store.Polls(tx).list(org_id)
        return row


async def test_new_and_changed_sales_each_start_one_execution_and_unchanged_ones_none(
        migrated_database_url: str, data_dir: Path) -> None:
    clock = Clock(datetime(2031, 1, 1, tzinfo=UTC))
    settings = Settings(database_url=migrated_database_url, data_dir=data_dir, egress_allow=["127.0.0.1"])
    # The app's own clock, after its synthesised sales' dates.
    with running_sandbox("cin7-core-v2-subset.yaml", clock=StepClock(datetime(2030, 1, 1, tzinfo=UTC))) as cin7:
        async with open_platform(settings, clock=clock) as platform:
            with app_database(migrated_database_url) as db:
                tenant = make_tenant(db, "Polls", customers=1)
                org, customer = tenant.org_id, tenant.customers[0]
                _setup(db, platform.encryptor, org, [customer], cin7.base_url)
            poller = Poller(platform)

            # First poll: a baseline (the sales that exist start nothing), then the cursor is the newest one's time.
            (first,) = await _tick(poller, org)
            assert first["status"] == "baseline" and first["started"] == [] and first["cursor"] is not None
            assert _runs(migrated_database_url, org) == []
            # Not due again until its interval (5m) has passed.
            assert await _tick(poller, org) == []

            a = _change(cin7, {"OrderNumber": "SO-1", "Status": "ORDERED"})
            b = _change(cin7, {"OrderNumber": "SO-2", "Status": "ORDERED"})
            clock.now += timedelta(minutes=5)
            (second,) = await _tick(poller, org)
            assert sorted((s["record_id"], s["change"], s["status"]) for s in second["started"]) == sorted(
                [(a["SaleID"], "new", "dispatched"), (b["SaleID"], "new", "dispatched")])
            assert second["cursor"] == b["Updated"]

            # Nothing changed: the inclusive UpdatedSince returns the newest sale again, and it starts nothing.
            clock.now += timedelta(minutes=5)
            (third,) = await _tick(poller, org)
            assert third["started"] == [] and third["unchanged"] >= 1

            changed = _change(cin7, {"SaleID": a["SaleID"], "Status": "INVOICED"})
            clock.now += timedelta(minutes=5)
            (fourth,) = await _tick(poller, org)
            assert [(s["record_id"], s["change"]) for s in fourth["started"]] == [(a["SaleID"], "changed")]
            assert fourth["cursor"] == changed["Updated"]

            runs = _runs(migrated_database_url, org)
            assert len(runs) == 3 and {r["triggered_by"] for r in runs} == {"app_event"}
            assert {r["customer_id"] for r in runs} == {customer} and {r["status"] for r in runs} == {"queued"}
            assert sorted((r["trigger"]["record_id"], r["trigger"]["record"]["Status"]) for r in runs) == sorted(
                [(a["SaleID"], "ORDERED"), (b["SaleID"], "ORDERED"), (a["SaleID"], "INVOICED")])
            events = _events(migrated_database_url, org)
            assert [(e["source"], e["status"]) for e in events] == [("app_event", "dispatched")] * 3
            assert sorted(i for e in events for i in e["execution_ids"]) == sorted(r["id"] for r in runs)

            # Another tenant's transaction sees none of the poll state.
            with app_database(migrated_database_url) as db:
                other = make_tenant(db, "Elsewhere", customers=1)
                with db.tenant(other.org_id) as tx:
                    assert store.Polls(tx).list(org) == []
                    assert tx.execute("SELECT count(*) AS n FROM poll_records").fetchone()["n"] == 0
                # A customer-bound transaction of this tenant sees only its own customer's polls.
                with db.tenant(org, "someone-else") as tx:
                    assert store.Polls(tx).list(org) == []
                assert _poll_row(db, org)["cursor"] == changed["Updated"]


async def test_two_pollers_at_once_start_each_sale_once_and_a_failed_poll_resumes_from_its_cursor(
        migrated_database_url: str, data_dir: Path) -> None:
    clock = Clock(datetime(2032, 1, 1, tzinfo=UTC))
    settings = Settings(database_url=migrated_database_url, data_dir=data_dir, egress_allow=["127.0.0.1"])
    with running_sandbox("cin7-core-v2-subset.yaml", clock=StepClock(datetime(2030, 1, 1, tzinfo=UTC))) as cin7:
        async with open_platform(settings, clock=clock) as one, open_platform(settings, clock=clock) as two:
            db = one.db
            with app_database(migrated_database_url) as admin_db:
                tenant = make_tenant(admin_db, "Racing", customers=2)
                org = tenant.org_id
                _setup(admin_db, one.encryptor, org, tenant.customers, cin7.base_url)
            first, second = Poller(one), Poller(two)
            assert {o["status"] for o in await _tick(first, org)} == {"baseline"}

            sales = [_change(cin7, {"OrderNumber": f"SO-{i}", "Status": "ORDERED"}) for i in range(3)]
            clock.now += timedelta(minutes=5)
            done = await asyncio.gather(_tick(first, org), _tick(second, org), _tick(first, org), _tick(second, org))
            started = [s for outcomes in done for o in outcomes for s in o["started"]]
            # Both customers see the same sandbox account: each sale starts once per customer.
            assert sorted((s["record_id"]) for s in started) == sorted(s["SaleID"] for s in sales for _ in range(2))
            runs = _runs(migrated_database_url, org)
            assert len(runs) == 6
            assert len({(r["customer_id"], r["trigger"]["record_id"], r["trigger"]["version"]) for r in runs}) == 6

            # One customer's connection needs reconnecting: its poll fails, is recorded, keeps its cursor.
            broken = tenant.customers[0]
            cursor = _poll_of(db, org, broken)["cursor"]
            assert cursor == sales[-1]["Updated"]
            _mark(db, one, org, broken, "needs_reconnect")
            late = _change(cin7, {"OrderNumber": "SO-late", "Status": "ORDERED"})
            clock.now += timedelta(minutes=5)
            outcomes = {o["poll_id"]: o for o in await _tick(first, org)}
            failed = outcomes[_poll_of(db, org, broken)["id"]]
            assert failed["status"] == "failed" and failed["error"]["code"] == "connection_needs_reconnect"
            row = _poll_of(db, org, broken)
            assert (row["cursor"], row["failures"], row["last_error"]["code"]) == (cursor, 1, "connection_needs_reconnect")
            assert [e["status"] for e in _events(migrated_database_url, org)].count("failed") == 1

            # Reconnected: the next poll asks from the stored cursor (only the sale at the cursor comes back
            # besides the late one, not the whole account) and starts the late sale once.
            _mark(db, one, org, broken, "connected")
            clock.now += timedelta(minutes=5)
            outcomes = {o["poll_id"]: o for o in await _tick(second, org)}
            resumed = outcomes[row["id"]]
            assert [(s["record_id"], s["change"]) for s in resumed["started"]] == [(late["SaleID"], "new")]
            assert resumed["unchanged"] == 1 and resumed["cursor"] == late["Updated"]
            assert _poll_of(db, org, broken)["failures"] == 0
            runs = _runs(migrated_database_url, org)
            late_runs = [r for r in runs if r["trigger"]["record_id"] == late["SaleID"]]
            assert sorted(r["customer_id"] for r in late_runs) == sorted(tenant.customers)
            assert len(runs) == 8


def _poll_of(db: store.Database, org_id: str, customer_id: str) -> dict[str, Any]:
    with db.tenant(org_id) as tx:
        (row,) = [r for r in store.Polls(tx).list(org_id) if r["customer_id"] == customer_id]
        return row


def _mark(db: store.Database, platform: Any, org_id: str, customer_id: str, status: str) -> None:
    with db.tenant(org_id) as tx:
        connections = store.Connections(tx)
        (connection,) = [c for c in connections.list(org_id, store.ListQuery(limit=100)).items
                         if c["customer_id"] == customer_id]
        connections.mark(org_id, connection["id"], status, "test" if status != "connected" else None)

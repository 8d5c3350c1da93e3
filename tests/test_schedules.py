"""Schedules against real parts: the schedule rows kept in step with deployments, customers and the
organization's time zone; the scheduler firing due slots through ``Runs.start`` with an injected
clock (exactly once under concurrent firing, catch-up with one run, refusals recorded as events);
and two real ``switchboard worker`` processes firing a one-second schedule, each slot exactly once."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import store
from engine import Schedule
from runtime import Scheduler
from support.platform import app_database, make_tenant
from support.serve_process import worker_process
from switchboard.app import open_platform
from switchboard.settings import Settings

ENVIRONMENT = "dev"  # where make_tenant's customers live


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _workflow(key: str, trigger: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": key, "tier": "standard", "trigger": trigger,
            "steps": [{"id": "echo", "map": {"slot": "{{ trigger.slot }}"}}], **extra}


def _deploy(db: store.Database, org_id: str, spec: dict[str, Any]) -> None:
    with db.tenant(org_id) as tx:
        workflows = store.Workflows(tx)
        workflows.create(org_id, spec)
        version = workflows.publish(org_id, spec["id"])["version"]
        workflows.deploy(org_id, spec["id"], ENVIRONMENT, version)


def _schedules(db: store.Database, org_id: str, workflow: str | None = None) -> list[dict[str, Any]]:
    with db.tenant(org_id) as tx:
        workflow_id = store.Workflows(tx).get(org_id, workflow)["id"] if workflow else None
        return store.Schedules(tx).list(org_id, store.ListQuery(limit=100), workflow_id=workflow_id).items


def _executions(admin_conninfo: str, org_id: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(admin_conninfo, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT id, customer_id, workflow_id, status, tier, triggered_by, trigger FROM executions"
            " WHERE org_id = %s ORDER BY started_at", (org_id,)).fetchall()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="switchboard-schedules-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- the rows follow deployments, customers and the time zone ----------------------------------------


def test_schedule_rows_follow_deployments_customers_and_the_time_zone(migrated_database_url: str) -> None:
    with app_database(migrated_database_url) as db:
        tenant = make_tenant(db, "Rows")
        org = tenant.org_id
        _deploy(db, org, _workflow("daily", {"kind": "schedule", "daily": {"at": "09:00"}}))
        _deploy(db, org, _workflow("pinned", {"kind": "schedule", "cron": "0 * * * *", "timezone": "Asia/Tokyo"}))
        _deploy(db, org, _workflow("manual", {"kind": "manual"}))
        rows = _schedules(db, org, "daily")
        assert sorted(r["customer_id"] for r in rows) == sorted(tenant.customers)
        assert {(r["timezone"], r["next_due_at"]) for r in rows} == {("UTC", None)}
        assert _schedules(db, org, "manual") == []

        # A new customer of the environment gets its schedules; a suspended one loses them.
        with db.tenant(org) as tx:
            store.Customers(tx).create(org, name="Late", environment_id=ENVIRONMENT, customer_id="late")
        assert "late" in {r["customer_id"] for r in _schedules(db, org, "daily")}
        with db.tenant(org) as tx:
            store.Customers(tx).update(org, "late", {"status": "suspended"})
        assert "late" not in {r["customer_id"] for r in _schedules(db, org, "daily")}

        # The organization's zone moves the wall-clock schedules that use it (planned again), not the pinned ones.
        with db.tenant(org) as tx:
            store.Schedules(tx).plan(org, _schedules(db, org, "daily")[0]["id"], datetime(2030, 1, 1, tzinfo=UTC))
            store.Schedules(tx).plan(org, _schedules(db, org, "pinned")[0]["id"], datetime(2030, 1, 1, tzinfo=UTC))
            store.Organizations(tx).update(org, {"timezone": "Europe/Berlin"})
        assert {(r["timezone"], r["next_due_at"]) for r in _schedules(db, org, "daily")} == {("Europe/Berlin", None)}
        assert datetime(2030, 1, 1, tzinfo=UTC) in {r["next_due_at"] for r in _schedules(db, org, "pinned")}

        # A new version with another schedule replans; undeploying removes the rows.
        with db.tenant(org) as tx:
            workflows = store.Workflows(tx)
            workflows.replace_draft(org, "pinned", _workflow("pinned", {"kind": "schedule", "interval": "5m"}))
            workflows.deploy(org, "pinned", ENVIRONMENT, workflows.publish(org, "pinned")["version"])
        pinned = _schedules(db, org, "pinned")
        assert {(r["version"], r["config"]["interval"], r["next_due_at"]) for r in pinned} == {(2, "5m", None)}
        with db.tenant(org) as tx:
            store.Workflows(tx).undeploy(org, "pinned", ENVIRONMENT)
            store.Workflows(tx).archive(org, "daily")
        assert _schedules(db, org, "pinned") == [] and _schedules(db, org, "daily") == []

        # Another organization's transaction sees none of them.
        other = make_tenant(db, "Other", customers=1)
        with db.tenant(other.org_id) as tx:
            assert store.Schedules(tx).list(org, store.ListQuery(limit=100)).items == []


# -- the scheduler, with an injected clock -----------------------------------------------------------


async def test_the_scheduler_fires_each_due_slot_once_and_catches_up_with_one_run(
        migrated_database_url: str, data_dir: Path) -> None:
    clock = Clock(datetime(2031, 5, 5, 12, 0, 30, tzinfo=UTC))
    with app_database(migrated_database_url) as db:
        tenant = make_tenant(db, "Fires")
        org = tenant.org_id
        _deploy(db, org, _workflow("every-minute", {"kind": "schedule", "interval": "1m"}))
        # A workflow whose input the schedule cannot give: each firing is a failed event, and the slot advances.
        _deploy(db, org, _workflow("needs-input", {"kind": "schedule", "interval": "1m"},
                                   input={"type": "object", "required": ["x"]}))
    settings = Settings(database_url=migrated_database_url, data_dir=data_dir)
    async with open_platform(settings, clock=clock) as platform:
        scheduler = Scheduler(platform)
        with app_database(migrated_database_url) as db:
            ids = {r["id"] for r in _schedules(db, org, "every-minute")}
        # First pass plans (the first slot after now); nothing fires for the past.
        assert [f for f in await scheduler.tick() if f["schedule_id"] in ids] == []
        with app_database(migrated_database_url) as db:
            rows = _schedules(db, org, "every-minute")
        assert {r["next_due_at"] for r in rows} == {datetime(2031, 5, 5, 12, 1, tzinfo=UTC)}

        clock.now = datetime(2031, 5, 5, 12, 0, 59, tzinfo=UTC)
        assert [f for f in await scheduler.tick() if f["schedule_id"] in ids] == []

        clock.now = datetime(2031, 5, 5, 12, 1, 0, 200000, tzinfo=UTC)
        fired = [f for f in await scheduler.tick() if f["schedule_id"] in ids]
        assert sorted((f["slot"], f["missed"], f["status"]) for f in fired) == [
            (datetime(2031, 5, 5, 12, 1, tzinfo=UTC), False, "dispatched")] * 2

        # Eight concurrent firings of one due schedule (as from several workers): one fires.
        clock.now = datetime(2031, 5, 5, 12, 2, 0, 100000, tzinfo=UTC)
        target = sorted(ids)[0]
        outcomes = await asyncio.gather(*[scheduler.fire(org, target) for _ in range(8)])
        assert [o["slot"] for o in outcomes if o] == [datetime(2031, 5, 5, 12, 2, tzinfo=UTC)]

        # Down for ten minutes: each schedule fires once, for the latest slot, and says what it missed.
        clock.now = datetime(2031, 5, 5, 12, 12, 30, tzinfo=UTC)
        fired = [f for f in await scheduler.tick() if f["schedule_id"] in ids]
        assert sorted((f["schedule_id"], f["slot"], f["missed"]) for f in fired) == sorted(
            (sid, datetime(2031, 5, 5, 12, 12, tzinfo=UTC), True) for sid in ids)
        assert {f["next_slot"] for f in fired} == {datetime(2031, 5, 5, 12, 13, tzinfo=UTC)}
        assert [f for f in await scheduler.tick() if f["schedule_id"] in ids] == []

    executions = _executions(migrated_database_url, org)
    by_slot = Counter((e["customer_id"], e["trigger"]["slot"]) for e in executions)
    assert set(by_slot.values()) == {1}
    assert sorted(by_slot) == sorted(
        [(c, "2031-05-05T12:01:00+00:00") for c in tenant.customers]
        + [(c, "2031-05-05T12:12:00+00:00") for c in tenant.customers]
        + [(_customer_of(migrated_database_url, org, target), "2031-05-05T12:02:00+00:00")])
    assert {(e["status"], e["tier"], e["triggered_by"]) for e in executions} == {("queued", "standard", "schedule")}
    caught_up = [e["trigger"] for e in executions if e["trigger"]["slot"].endswith("12:12:00+00:00")]
    assert all(t["missed"] for t in caught_up)
    assert {t["due_at"] for t in caught_up} == {"2031-05-05T12:02:00+00:00", "2031-05-05T12:03:00+00:00"}

    # Every firing is an event: dispatched with its execution, or failed with why.
    with app_database(migrated_database_url) as db, db.tenant(org) as tx:
        events = store.Events(tx).list(org, store.ListQuery(limit=100, sort="received_at"), source="schedule").items
    dispatched = [e for e in events if e["status"] == "dispatched"]
    assert sorted(x for e in dispatched for x in e["execution_ids"]) == sorted(e["id"] for e in executions)
    failed = [e for e in events if e["status"] == "failed"]
    assert failed and {e["error"]["code"] for e in failed} == {"workflow_input_invalid"}
    assert len(failed) == 2 * 2  # two customers, fired at 12:01 and caught up at 12:12


def _customer_of(conninfo: str, org_id: str, schedule_id: str) -> str:
    with app_database(conninfo) as db, db.tenant(org_id) as tx:
        return store.Schedules(tx).get(org_id, schedule_id)["customer_id"]


# -- two worker processes ----------------------------------------------------------------------------

WINDOW_SLOTS = 6
WAIT_SECONDS = 90


def test_two_worker_processes_fire_each_slot_of_a_one_second_schedule_exactly_once(
        migrated_database_url: str, data_dir: Path) -> None:
    with app_database(migrated_database_url) as db:
        tenant = make_tenant(db, "TwoWorkers", customers=2)
        org = tenant.org_id
        _deploy(db, org, _workflow("every-second", {"kind": "schedule", "interval": "1s"}))
        ids = {r["id"] for r in _schedules(db, org, "every-second")}
    poll = {"schedule_poll_seconds": "0.05"}
    try:
        with worker_process(migrated_database_url, data_dir, "sched-a", **poll), \
                worker_process(migrated_database_url, data_dir, "sched-b", **poll):
            deadline = time.monotonic() + WAIT_SECONDS
            while True:
                per_customer = Counter(e["customer_id"] for e in _executions(migrated_database_url, org))
                if all(per_customer[c] >= WINDOW_SLOTS for c in tenant.customers):
                    break
                assert time.monotonic() < deadline, f"only {dict(per_customer)} runs fired"
                time.sleep(0.2)
    finally:
        # The workers of later tests share this database: leave no schedule due every second.
        with app_database(migrated_database_url) as db, db.tenant(org) as tx:
            store.Workflows(tx).undeploy(org, "every-second", ENVIRONMENT)
    # Stopped: count what fired, per schedule and slot.
    executions = _executions(migrated_database_url, org)
    schedule = Schedule.of({"interval": "1s"})
    for schedule_id in ids:
        fired = sorted((e["trigger"] for e in executions if e["trigger"]["schedule_id"] == schedule_id),
                       key=lambda t: t["slot"])
        slots = [t["slot"] for t in fired]
        assert len(slots) == len(set(slots)), f"a slot fired twice: {Counter(slots).most_common(3)}"
        # Each slot of the window is accounted for exactly once: fired on time, or covered by the one
        # catch-up run that followed it (from its due_at to its slot), so the chain has no gap.
        for before, after in zip(fired, fired[1:]):
            next_slot = schedule.next_after(datetime.fromisoformat(before["slot"]))
            assert datetime.fromisoformat(after["due_at"]) == next_slot, (before, after)
            assert after["missed"] == (after["due_at"] != after["slot"])
        assert len(fired) >= WINDOW_SLOTS
    # The workers also ran what they queued.
    assert any(e["status"] == "completed" for e in executions)


# -- the API --------------------------------------------------------------------------------------


def test_the_api_refuses_bad_schedules_with_pointers_and_lists_the_schedules(migrated_database_url: str) -> None:
    from support.platform import client, running_platform

    with running_platform(migrated_database_url) as (url, _settings), client(url) as http:
        with app_database(migrated_database_url) as db:
            tenant = make_tenant(db, "ApiSchedules")
        headers = tenant.headers()
        bad = http.post("/v1/workflows", headers=headers,
                        json={"spec": _workflow("bad", {"kind": "schedule", "interval": "soon"})})
        assert bad.status_code == 422, bad.text
        assert any(p["pointer"] == "/trigger/interval" and "not an interval" in p["reason"]
                   for p in bad.json()["errors"]), bad.json()
        spec = _workflow("api-daily", {"kind": "schedule", "daily": {"at": "06:00"}})
        assert http.post("/v1/workflows", headers=headers, json={"spec": spec}).status_code == 201
        assert http.post("/v1/workflows/api-daily/publish", headers=headers).status_code == 201
        refused = http.post("/v1/workflows/api-daily/triggers", headers=headers,
                            json={"kind": "schedule", "weekly": {"on": ["funday"], "at": "09:00"}})
        assert refused.status_code == 422, refused.text
        assert [p["pointer"] for p in refused.json()["errors"]] == ["/weekly/on"]
        attached = http.post("/v1/workflows/api-daily/triggers", headers=headers,
                             json={"kind": "schedule", "interval": "30m", "timezone": "Europe/Paris"})
        assert attached.status_code == 201, attached.text
        deployed = http.post("/v1/workflows/api-daily/deploy", headers=headers, json={"version": 1, "environment": ENVIRONMENT})
        assert deployed.status_code == 200, deployed.text
        listed = http.get("/v1/schedules", headers=headers, params={"workflow": "api-daily"})
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        assert sorted((i["customer_id"], i["trigger_id"] is None, i["timezone"]) for i in items) == sorted(
            [(c, True, "UTC") for c in tenant.customers] + [(c, False, "Europe/Paris") for c in tenant.customers])
        mine = http.get("/v1/schedules", headers=tenant.headers(tenant.customers[0])).json()["items"]
        assert {i["customer_id"] for i in mine} == {tenant.customers[0]}
        # Switching the attached trigger off removes its rows.
        assert http.patch(f"/v1/triggers/{attached.json()['id']}", headers=headers,
                          json={"enabled": False}).status_code == 200
        left = http.get("/v1/schedules", headers=headers, params={"workflow": "api-daily"}).json()["items"]
        assert {i["trigger_id"] for i in left} == {None}
        assert http.delete(f"/v1/workflows/api-daily/deployments/{ENVIRONMENT}", headers=headers).status_code == 204
        assert http.get("/v1/schedules", headers=headers, params={"workflow": "api-daily"}).json()["items"] == []

"""Long executions against real parts: durable sleeps and waits for an event, surviving a worker
killed with SIGKILL. The API over HTTP, `switchboard worker` in a child process (DBOS on the
session's Postgres), a counting app on 127.0.0.1 recording each call (with when it arrived), and
webhook deliveries signed per Standard Webhooks.

* A ``wait`` step registers its wait and blocks; the worker is killed; a webhook event that does
  not match changes nothing, a matching one (delivered while no worker runs) is claimed; the
  restarted worker resumes the execution with that event, sends no completed call again, and
  completes with the event's data.
* A ``wait`` whose timeout passes fails the run with ``wait_timed_out`` (``on_timeout: fail``) or
  continues with ``{timed_out: true}`` (``on_timeout: continue``).
* A ``delay`` step's wake-up time is recorded by DBOS; a worker killed mid-sleep is restarted, the
  wake-up time is the same, and the next call comes no earlier than it, once.
* A ``wait`` step outside a Long workflow is refused at publish, naming the step's pointer.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI, Request
from standardwebhooks.webhooks import Webhook
from support.platform import Tenant, app_database, client, make_tenant, running_platform
from support.serve_process import StandbyWorker
from support.servers import serve_app

import store

WAIT_SECONDS = 60
CONNINFO: list[str] = []


class Calls:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.lock = threading.Lock()


@pytest.fixture(scope="module")
def calls() -> Iterator[tuple[Calls, str]]:
    state = Calls()
    app = FastAPI()

    @app.post("/items")
    async def create(request: Request) -> dict[str, Any]:
        body = await request.json()
        with state.lock:
            state.items.append({"n": body["n"], "key": request.headers.get("idempotency-key"), "at": time.time()})
        return {"n": body["n"]}

    with serve_app(app) as url:
        yield state, url


CONNECTOR = {
    "id": "counter", "idempotency": {"header": "Idempotency-Key"},
    "actions": {"create": {"method": "POST", "path": "/items", "body": {"n": "{{ input.n }}"},
                           "input": {"type": "object", "properties": {"n": {"type": "integer"}}}}},
}
WAITING = {
    "id": "await-payment", "tier": "long",
    "input": {"type": "object", "properties": {"order": {"type": "integer"}}},
    "steps": [
        {"id": "s1", "action": "counter.create", "input": {"n": "{{ input.order }}"}},
        {"id": "paid", "wait": {"event": "webhook", "match": {"type": "payment.completed", "order": "{{ steps.s1.n }}"},
                                "timeout": "1h"}},
        {"id": "s2", "action": "counter.create", "input": {"n": "{{ steps.paid.payload.amount }}"}},
    ],
    "output": {"amount": "{{ steps.s2.n }}", "event": "{{ steps.paid.event_id }}"},
}
TIMING_OUT = {
    "id": "await-nothing", "tier": "long",
    "steps": [{"id": "never", "wait": {"match": {"type": "never"}, "timeout": 1}}],
}
CONTINUING = TIMING_OUT | {
    "id": "await-nothing-continue",
    "steps": [{"id": "never", "wait": {"match": {"type": "never"}, "timeout": 1, "on_timeout": "continue"}}],
}
SLEEPING = {
    "id": "sleep-between", "tier": "long",
    "steps": [
        {"id": "s1", "action": "counter.create", "input": {"n": 1}},
        {"id": "nap", "delay": {"seconds": 3}},
        {"id": "s2", "action": "counter.create", "input": {"n": 2}},
    ],
}
# Receives the deliveries (an event needs a webhook trigger to arrive through).
SINK = {"id": "hook-sink", "tier": "instant", "steps": [{"id": "seen", "map": {"type": "{{ trigger.type }}"}}]}


def _publish(http: httpx.Client, tenant: Tenant, spec: dict[str, Any]) -> None:
    created = http.post("/v1/workflows", headers=tenant.headers(), json={"spec": spec})
    assert created.status_code == 201, created.text
    published = http.post(f"/v1/workflows/{spec['id']}/publish", headers=tenant.headers())
    assert published.status_code == 201, published.text


@pytest.fixture(scope="module")
def world(migrated_database_url: str, calls: tuple[Calls, str]) -> Iterator[dict[str, Any]]:
    _, url = calls
    CONNINFO[:] = [migrated_database_url]
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as (base, settings):
        with app_database(migrated_database_url) as db:
            tenant = make_tenant(db, "Long")
            with db.tenant(tenant.org_id) as tx:
                for customer in tenant.customers:
                    store.Quotas(tx).set_overrides(tenant.org_id, customer, {
                        dimension: {"limit": None, "mode": "hard"} for dimension in store.DIMENSIONS})
        with client(base) as http:
            spec = CONNECTOR | {"base_url": url}
            assert http.post("/v1/connectors", headers=tenant.headers(), json={"spec": spec}).status_code == 201
            assert http.post("/v1/connectors/counter/versions/1/publish", headers=tenant.headers()).status_code == 200
            for workflow in (WAITING, TIMING_OUT, CONTINUING, SLEEPING, SINK):
                _publish(http, tenant, workflow)
            hook = http.post("/v1/workflows/hook-sink/triggers", headers=tenant.headers(),
                             json={"kind": "webhook", "customer": tenant.customers[0]})
            assert hook.status_code == 201, hook.text
        yield {"url": base, "settings": settings, "tenant": tenant, "hook": hook.json()}


def _row(tenant: Tenant, execution_id: str) -> dict[str, Any]:
    with app_database(CONNINFO[0]) as db, db.tenant(tenant.org_id) as tx:
        return store.Executions(tx).get(tenant.org_id, execution_id)


def _finished(tenant: Tenant, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        row = _row(tenant, execution_id)
        if row["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def _waits(tenant: Tenant, execution_id: str) -> list[dict[str, Any]]:
    with app_database(CONNINFO[0]) as db, db.tenant(tenant.org_id) as tx:
        return store.EventWaits(tx).of_execution(tenant.org_id, execution_id)


def _until(probe, what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _deliver(http: httpx.Client, hook: dict[str, Any], payload: dict[str, Any]) -> str:
    body = json.dumps(payload).encode()
    webhook_id, at = store.new_id("msg"), datetime.now(UTC)
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": Webhook(hook["signing_secret"]).sign(webhook_id, at, body),
               "content-type": "application/json"}
    answer = http.post(hook["config"]["path"], content=body, headers=headers)
    assert answer.status_code in (200, 202), answer.text
    return answer.json()["event_id"] if "event_id" in answer.json() else answer.json()["id"]


def _start(http: httpx.Client, tenant: Tenant, key: str, input: dict[str, Any] | None = None) -> str:
    started = http.post(f"/v1/workflows/{key}/runs", headers=tenant.headers(tenant.customers[0]),
                        json={"input": input or {}})
    assert started.status_code == 202, started.text
    return started.json()["id"]


def _kill(standby: StandbyWorker) -> None:
    standby.proc.send_signal(signal.SIGKILL)
    standby.proc.wait()
    standby.close()


def test_a_wait_survives_a_killed_worker_and_resumes_with_the_matching_event(world, calls) -> None:
    recorded, _ = calls
    tenant: Tenant = world["tenant"]
    conninfo, data_dir = CONNINFO[0], world["settings"].data_dir
    recorded.items.clear()
    worker = StandbyWorker(conninfo, data_dir, "worker-long")
    worker.launch()
    try:
        with client(world["url"]) as http:
            execution_id = _start(http, tenant, "await-payment", {"order": 41})
            wait = _until(lambda: _waits(tenant, execution_id), "the wait to be registered")[0]
            assert (wait["source"], wait["match"], wait["event_id"]) == (
                "webhook", {"type": "payment.completed", "order": 41}, None)
            _kill(worker)
            assert _row(tenant, execution_id)["status"] == "running"
            # Another order's payment does not match; this order's does, while no worker runs.
            _deliver(http, world["hook"], {"type": "payment.completed", "order": 7, "amount": 1})
            assert _waits(tenant, execution_id)[0]["event_id"] is None
            _deliver(http, world["hook"], {"type": "payment.completed", "order": 41, "amount": 990})
            matched = _waits(tenant, execution_id)[0]
            assert matched["event_id"] is not None
        worker = StandbyWorker(conninfo, data_dir, "worker-long")
        worker.launch()
        done = _finished(tenant, execution_id)
    finally:
        worker.close()
    assert done["status"] == "completed", done
    assert done["output"] == {"amount": 990, "event": matched["event_id"]}
    # s1 once (completed before the kill), s2 once, with the amount from the event.
    assert [(c["n"], c["key"]) for c in recorded.items] == [
        (41, f"{execution_id}/s1#2"), (990, f"{execution_id}/s2#5")], recorded.items


def test_a_wait_past_its_timeout_fails_or_continues(world) -> None:
    tenant: Tenant = world["tenant"]
    worker = StandbyWorker(CONNINFO[0], world["settings"].data_dir, "worker-long-timeout")
    worker.launch()
    try:
        with client(world["url"]) as http:
            failing = _start(http, tenant, "await-nothing")  # on_timeout: fail
            continuing = _start(http, tenant, "await-nothing-continue")
        failed, continued = _finished(tenant, failing), _finished(tenant, continuing)
    finally:
        worker.close()
    assert (failed["status"], failed["error"]["code"], failed["error"]["step"]) == ("failed", "wait_timed_out", "never")
    assert (continued["status"], continued["output"]) == ("completed", {"timed_out": True})


def test_a_delay_survives_a_killed_worker_and_keeps_its_wake_up_time(world, calls) -> None:
    recorded, _ = calls
    tenant: Tenant = world["tenant"]
    conninfo, data_dir = CONNINFO[0], world["settings"].data_dir
    recorded.items.clear()

    def wake_up(execution_id: str) -> float | None:
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = %s"
                               " AND function_name = 'DBOS.sleep'", (execution_id,)).fetchone()
        return float(json.loads(row[0])) if row else None

    worker = StandbyWorker(conninfo, data_dir, "worker-sleep")
    worker.launch()
    try:
        with client(world["url"]) as http:
            execution_id = _start(http, tenant, "sleep-between")
        before = _until(lambda: wake_up(execution_id), "the sleep to be recorded")
        _kill(worker)
        assert [c["n"] for c in recorded.items] == [1]
        worker = StandbyWorker(conninfo, data_dir, "worker-sleep")
        worker.launch()
        done = _finished(tenant, execution_id)
    finally:
        worker.close()
    assert done["status"] == "completed", done
    assert wake_up(execution_id) == before  # the restarted worker kept the recorded wake-up time
    assert [c["n"] for c in recorded.items] == [1, 2]
    assert recorded.items[1]["at"] >= before  # and slept until it


def test_a_wait_step_outside_a_long_workflow_is_refused_with_its_pointer(world) -> None:
    tenant: Tenant = world["tenant"]
    spec = TIMING_OUT | {"id": "await-standard", "tier": "standard"}
    with client(world["url"]) as http:
        created = http.post("/v1/workflows", headers=tenant.headers(), json={"spec": spec})
        refused = created if created.status_code != 201 else http.post(
            "/v1/workflows/await-standard/publish", headers=tenant.headers())
    assert refused.status_code == 422, refused.text
    assert "/steps/0/wait" in refused.text and "tier: long" in refused.text

"""Tier escalation against real parts: the API over HTTP with a short Instant limit, `switchboard
worker` in a child process with a short Standard limit, and the counting app of
test_durable_executions (it records every call with its Idempotency-Key and can hold one open).

The limits are settings (``run_deadline_seconds``, ``standard_deadline_seconds``); the tests hold a
call open past them and then release it, so nothing depends on how fast anything runs.

* An Instant workflow with ``escalate: true`` that passes its limit answers 202: the execution is
  now Standard, records the escalation, and a worker completes it, sending no completed call again
  and the interrupted one again with the same key.
* Without ``escalate`` the same run ends ``timeout``.
* A Standard workflow with ``escalate: true`` that passes its limit in the worker becomes Long,
  records it, and completes without repeating a call.
* ``escalate`` on a Long workflow is refused, naming ``/escalate``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.platform import Tenant, app_database, client, make_tenant, running_platform
from support.serve_process import worker_process
from support.servers import serve_app
from test_durable_executions import Counter, _connector, counting_app

import store

WAIT_SECONDS = 60
CONNINFO: list[str] = []


@pytest.fixture(scope="module")
def counter() -> Iterator[tuple[Counter, str]]:
    state = Counter()
    with serve_app(counting_app(state)) as url:
        yield state, url
    state.release.set()


def _workflow(key: str, tier: str, steps: int, escalate: bool) -> dict[str, Any]:
    return {
        "id": key, "tier": tier, "escalate": escalate,
        "steps": [{"id": f"s{i}", "action": "counter.create", "input": {"n": i}} for i in range(1, steps + 1)],
        "output": {"last": f"{{{{ steps.s{steps}.n }}}}"},
    }


def _publish(http: httpx.Client, tenant: Tenant, spec: dict[str, Any]) -> None:
    created = http.post("/v1/workflows", headers=tenant.headers(), json={"spec": spec})
    assert created.status_code == 201, created.text
    assert http.post(f"/v1/workflows/{spec['id']}/publish", headers=tenant.headers()).status_code == 201


def _row(tenant: Tenant, execution_id: str) -> dict[str, Any]:
    with app_database(CONNINFO[0]) as db, db.tenant(tenant.org_id) as tx:
        return store.Executions(tx).get(tenant.org_id, execution_id)


def _until(tenant: Tenant, execution_id: str, done) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        row = _row(tenant, execution_id)
        if done(row) or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def _wait_for_calls(counter: Counter, count: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while len(counter.calls) < count:
        assert time.monotonic() < deadline, f"only {len(counter.calls)} of {count} calls arrived"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def world(migrated_database_url: str, counter: tuple[Counter, str]) -> Iterator[dict[str, Any]]:
    _, url = counter
    CONNINFO[:] = [migrated_database_url]
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"], run_deadline_seconds=1.0) as (base, settings):
        with app_database(migrated_database_url) as db:
            tenant = make_tenant(db, "Escalation")
            with db.tenant(tenant.org_id) as tx:
                for customer in tenant.customers:
                    store.Quotas(tx).set_overrides(tenant.org_id, customer, {
                        dimension: {"limit": None, "mode": "hard"} for dimension in store.DIMENSIONS})
        with client(base) as http:
            assert http.post("/v1/connectors", headers=tenant.headers(), json={"spec": _connector(url)}).status_code == 201
            assert http.post("/v1/connectors/counter/versions/1/publish", headers=tenant.headers()).status_code == 200
            _publish(http, tenant, _workflow("esc-instant", "instant", 3, True))
            _publish(http, tenant, _workflow("no-esc-instant", "instant", 3, False))
            _publish(http, tenant, _workflow("esc-standard", "standard", 3, True))
        yield {"url": base, "settings": settings, "tenant": tenant, "conninfo": migrated_database_url}


def test_an_instant_run_past_its_limit_escalates_to_standard_and_completes_without_repeats(world, counter) -> None:
    calls, _ = counter
    tenant: Tenant = world["tenant"]
    customer = tenant.customers[0]
    calls.calls.clear()
    calls.release.clear()
    calls.hold_at = 2  # held past the 1 s Instant limit
    try:
        with client(world["url"]) as http:
            answer = http.post("/v1/workflows/esc-instant/runs", headers=tenant.headers(customer), json={"input": {}})
        assert answer.status_code == 202, answer.text
        escalated = answer.json()
        assert answer.headers["location"] == f"/v1/executions/{escalated['id']}"
        assert (escalated["status"], escalated["tier"]) == ("queued", "standard")
        assert [(e["from"], e["to"]) for e in escalated["escalations"]] == [("instant", "standard")]
        assert "1 seconds" in escalated["escalations"][0]["reason"] and escalated["escalations"][0]["at"]
    finally:
        calls.hold_at = None
        calls.release.set()
    with worker_process(world["conninfo"], world["settings"].data_dir, "worker-escalation"):
        done = _until(tenant, escalated["id"], lambda row: row["status"] not in ("queued", "running"))
    assert done["status"] == "completed", done
    assert done["output"] == {"last": 3} and done["tier"] == "standard"
    sent = [(call["n"], call["key"]) for call in calls.calls]
    key = lambda i: f"{escalated['id']}/s{i}#{2 * i}"  # noqa: E731
    # Call 1 completed inline and is not sent again; call 2, cut off by the limit, is sent again
    # by the worker with the same key; call 3 once.
    assert sent == [(1, key(1)), (2, key(2)), (2, key(2)), (3, key(3))], sent
    with client(world["url"]) as http:
        shown = http.get(f"/v1/executions/{escalated['id']}", headers=tenant.headers(customer)).json()
    assert [(e["from"], e["to"]) for e in shown["escalations"]] == [("instant", "standard")]


def test_an_instant_run_past_its_limit_without_escalate_times_out(world, counter) -> None:
    calls, _ = counter
    tenant: Tenant = world["tenant"]
    customer = tenant.customers[0]
    calls.calls.clear()
    calls.release.clear()
    calls.hold_at = 2
    try:
        with client(world["url"]) as http:
            answer = http.post("/v1/workflows/no-esc-instant/runs", headers=tenant.headers(customer), json={"input": {}})
    finally:
        calls.hold_at = None
        calls.release.set()
    assert answer.status_code == 201, answer.text
    assert (answer.json()["status"], answer.json()["tier"], answer.json()["escalations"]) == ("timeout", "instant", [])


def test_a_standard_run_past_its_limit_escalates_to_long_in_the_worker(world, counter) -> None:
    calls, _ = counter
    tenant: Tenant = world["tenant"]
    customer = tenant.customers[1]
    calls.calls.clear()
    calls.release.clear()
    calls.hold_at = 2
    try:
        with worker_process(world["conninfo"], world["settings"].data_dir, "worker-escalation-2",
                            standard_deadline_seconds="1"):
            with client(world["url"]) as http:
                started = http.post("/v1/workflows/esc-standard/runs", headers=tenant.headers(customer),
                                    json={"input": {}})
            assert started.status_code == 202, started.text
            execution_id = started.json()["id"]
            _wait_for_calls(calls, 2)
            moved = _until(tenant, execution_id, lambda row: row["escalations"])
            assert moved["tier"] == "long" and moved["status"] == "running", moved
            calls.hold_at = None
            calls.release.set()
            done = _until(tenant, execution_id, lambda row: row["status"] not in ("queued", "running"))
    finally:
        calls.hold_at = None
        calls.release.set()
    assert done["status"] == "completed", done
    assert [(e["from"], e["to"]) for e in done["escalations"]] == [("standard", "long")]
    assert [call["n"] for call in calls.calls] == [1, 2, 3]  # nothing stopped, nothing sent again


def test_escalate_on_a_long_workflow_is_refused_naming_the_field(world) -> None:
    tenant: Tenant = world["tenant"]
    with client(world["url"]) as http:
        refused = http.post("/v1/workflows", headers=tenant.headers(),
                            json={"spec": _workflow("esc-long", "long", 1, True)})
    assert refused.status_code == 422, refused.text
    assert "/escalate" in refused.text and "no next tier" in refused.text

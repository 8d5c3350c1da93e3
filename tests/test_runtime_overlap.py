"""Overlapping runs, cancelling and re-running executions, against real parts: the platform API
over HTTP on 127.0.0.1, a second platform in this process (as another API process would be,
sharing only the database), the HubSpot and Cin7 sandboxes, and a counting app that records
every call it receives and can hold calls open per customer.

* Four triggers of the flagship sync for one customer at once (webhook, schedule, manual, MCP)
  leave the held invariants: each contact once in Cin7, no duplicates.
* Runs of one customer wait in order (the second enters only after the first left); another
  customer's run completes while the first customer's is held.
* Coalescing: a run arriving while another already waits is cancelled (``coalesced``) at once.
* Cancel: a waiting run never starts, a running one stops; 409 once finished, 404 across tenants.
* Re-run from the failed step: a run failing at step 3 of 5 (the app answers 500), re-run once the
  fault is gone, sends no call of steps 1 and 2 again and completes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook

import store
from runtime import system_principal
from support.platform import Tenant, client, make_tenant, running_platform
from support.sandbox import running_sandbox
from support.seed import UNLIMITED
from support.servers import serve_app
from switchboard.app import open_platform
from test_flagship import CIN7_SEED, HUBSPOT_SEED, ROOT, assert_expected_state, cin7_customers

WAIT_SECONDS = 60
FLAGSHIP = yaml.safe_load((ROOT / "examples" / "hubspot-contacts-to-cin7.yaml").read_text())


class Counter:
    """The counting app's state: calls in arrival order (``enter``/``leave`` per held call), the
    accounts whose calls are held, and a fault answering 500 for one ``n``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []  # (what, account, n)
        self.held: set[str] = set()
        self.fail_n: int | None = None
        self.lock = threading.Lock()
        self.opened = threading.Condition(self.lock)

    def release(self, account: str) -> None:
        with self.lock:
            self.held.discard(account)
            self.opened.notify_all()

    def of(self, account: str, what: str | None = None) -> list[Any]:
        with self.lock:
            return [n for w, a, n in self.events if a == account and (what is None or w == what)]


def counting_app(counter: Counter) -> FastAPI:
    app = FastAPI()

    @app.post("/items")
    async def create(request: Request) -> Any:
        body = await request.json()
        account = request.headers.get("x-account", "")
        with counter.lock:
            counter.events.append(("call", account, body["n"]))
            if counter.fail_n == body["n"]:
                return JSONResponse({"error": "sandbox fault"}, status_code=500)
        return {"n": body["n"]}

    @app.post("/gate")
    async def gate(request: Request) -> Any:
        body = await request.json()
        account = request.headers.get("x-account", "")

        def wait() -> None:
            with counter.lock:
                counter.events.append(("enter", account, body["n"]))
                counter.opened.wait_for(lambda: account not in counter.held, timeout=WAIT_SECONDS)
                counter.events.append(("leave", account, body["n"]))

        await asyncio.to_thread(wait)
        return {"n": body["n"]}

    return app


@pytest.fixture(scope="module")
def counter() -> Iterator[tuple[Counter, str]]:
    state = Counter()
    with serve_app(counting_app(state)) as url:
        yield state, url
    with state.lock:
        state.held.clear()
        state.opened.notify_all()


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[tuple[str, Any]]:
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as served:
        yield served


def _ok(response: httpx.Response, status: int = 201) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url.path}: {response.text}"
    return response.json() if response.content else None


def _api_key_connector(key: str, base_url: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = dict(spec or {})
    return spec | {"id": key, "base_url": base_url,
                   "auth": {"type": "api_key", "keys": [{"credential": "token", "in": "header", "name": "x-account",
                                                         "prefix": ""}]}}


def _counter_connector(base_url: str) -> dict[str, Any]:
    body = {"n": "{{ input.n }}"}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    return _api_key_connector("counter", base_url, {"actions": {
        "create": {"method": "POST", "path": "/items", "body": body, "input": schema},
        "gate": {"method": "POST", "path": "/gate", "body": body, "input": schema},
    }})


def _setup(http: httpx.Client, tenant: Tenant, connectors: list[dict[str, Any]], workflows: list[dict[str, Any]],
           customers: list[str]) -> None:
    """Publish ``connectors`` and ``workflows``, and connect each of ``customers`` to each connector
    (its token is the customer's id, so the apps tell the customers apart)."""
    for spec in connectors:
        _ok(http.post("/v1/connectors", headers=tenant.headers(), json={"spec": spec}))
        _ok(http.post(f"/v1/connectors/{spec['id']}/versions/1/publish", headers=tenant.headers()), 200)
    for spec in workflows:
        _ok(http.post("/v1/workflows", headers=tenant.headers(), json={"spec": spec}))
        _ok(http.post(f"/v1/workflows/{spec['id']}/publish", headers=tenant.headers()))
    for customer in customers:
        _ok(http.put(f"/v1/billing/customers/{customer}/overrides", headers=tenant.headers(), json=UNLIMITED), 200)
        for spec in connectors:
            _ok(http.post("/v1/connections", headers=tenant.headers(customer), json={
                "connector": spec["id"], "name": f"{spec['id']} of {customer}",
                "auth": {"type": "api_key", "values": {"token": customer}}}))


def _executions(conninfo: str, tenant: Tenant, customer: str) -> list[dict[str, Any]]:
    with store.Database.from_conn_string(store.app_conninfo(conninfo)) as db, db.tenant(tenant.org_id) as tx:
        return tx.execute(
            "SELECT id, status, triggered_by, output, error, rerun_of FROM executions WHERE org_id = %s"
            " AND customer_id = %s ORDER BY started_at, id", (tenant.org_id, customer),
        ).fetchall()


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _currency_from_trigger(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` whose new customers take the currency of the input or, for a webhook run (whose
    input is empty: the delivery's body is its trigger), of the body: whichever of the four runs
    creates the customers, they get the same currency."""
    text = json.dumps(spec)
    old = "$exists(input.currency) ? input.currency : 'USD'"
    assert old in text, "the flagship's currency expression changed"
    return json.loads(text.replace(old, "$exists(input.currency) ? input.currency : "
                                         "($exists(trigger.currency) ? trigger.currency : 'USD')"))


def _inline(spec: dict[str, Any], **concurrency: Any) -> dict[str, Any]:
    spec = spec | {"tier": "instant", "trigger": {"kind": "manual"}}
    if concurrency:
        spec["concurrency"] = concurrency
    return spec


# -- overlap -------------------------------------------------------------------------------------


async def test_four_triggers_of_the_flagship_at_once_for_one_customer_leave_no_duplicates(
        platform: tuple[str, Any], db: store.Database, migrated_database_url: str) -> None:
    url, settings = platform
    tenant = make_tenant(db, "Overlap")
    customer = tenant.customers[0]
    with running_sandbox("hubspot-crm-contacts-v3.json", seed=HUBSPOT_SEED) as hubspot, \
            running_sandbox("cin7-core-v2-subset.yaml", seed=CIN7_SEED) as cin7, client(url) as http:
        hubspot_spec = yaml.safe_load((ROOT / "examples" / "connectors" / "hubspot.yaml").read_text())
        cin7_spec = yaml.safe_load((ROOT / "examples" / "connectors" / "cin7.yaml").read_text())
        # HubSpot with a key instead of OAuth (the sandbox checks that credentials are present).
        hubspot_spec = _api_key_connector("hubspot", hubspot.base_url, hubspot_spec)
        hubspot_spec["auth"]["keys"][0] |= {"name": "Authorization", "prefix": "Bearer "}
        cin7_spec = cin7_spec | {"base_url": cin7.base_url}
        flagship = _inline(_currency_from_trigger(FLAGSHIP))  # no concurrency stated: its sync step makes it 1 per customer
        _setup(http, tenant, [hubspot_spec], [], [])
        _ok(http.post("/v1/connectors", headers=tenant.headers(), json={"spec": cin7_spec}))
        _ok(http.post("/v1/connectors/cin7/versions/1/publish", headers=tenant.headers()), 200)
        _setup(http, tenant, [], [flagship], [customer])
        _ok(http.post("/v1/connections", headers=tenant.headers(customer), json={
            "connector": "hubspot", "name": "hubspot", "auth": {"type": "api_key", "values": {"token": "hs-token"}}}))
        _ok(http.post("/v1/connections", headers=tenant.headers(customer), json={
            "connector": "cin7", "name": "cin7", "auth": {"type": "api_key",
                                                           "values": {"account_id": "acc", "application_key": "key"}}}))
        hook = _ok(http.post(f"/v1/workflows/{FLAGSHIP['id']}/triggers", headers=tenant.headers(),
                             json={"kind": "webhook", "customer": customer}))
        # every trigger asks for the same input: whichever run creates the customers, they come out the same
        body = json.dumps({"page_size": 2, "currency": "GBP"}).encode()
        webhook_id = store.new_id("msg")

        def webhook() -> httpx.Response:
            from datetime import UTC, datetime
            signature = Webhook(hook["signing_secret"]).sign(webhook_id, datetime.now(UTC), body.decode())
            headers = {"webhook-id": webhook_id, "webhook-timestamp": str(int(time.time())),
                       "webhook-signature": signature, "content-type": "application/json"}
            with client(url) as own:
                return own.post(hook["config"]["path"], content=body, headers=headers)

        def manual() -> httpx.Response:
            with client(url) as own:
                return own.post(f"/v1/workflows/{FLAGSHIP['id']}/runs", headers=tenant.headers(customer),
                                json={"input": {"page_size": 2, "currency": "GBP"}})

        # A second platform process's worth of runs: the schedule and an MCP call start there.
        async with open_platform(settings) as other:
            async def start(triggered_by: str) -> Any:
                principal = system_principal(tenant.org_id, customer, f"{triggered_by}:test")
                return await other.runs.start(principal, FLAGSHIP["id"], input={"page_size": 2, "currency": "GBP"},
                                              triggered_by=triggered_by)

            hooked, ran, scheduled, mcp = await asyncio.gather(
                asyncio.to_thread(webhook), asyncio.to_thread(manual), start("schedule"), start("mcp"))
        assert hooked.status_code in (200, 202, 204), hooked.text
        assert ran.status_code == 201, ran.text
        assert scheduled.execution["status"] == mcp.execution["status"] == "completed"
        _wait(lambda: len(_executions(migrated_database_url, tenant, customer)) == 4
              and all(e["status"] not in ("queued", "running")
                      for e in _executions(migrated_database_url, tenant, customer)), "four finished runs")
        runs = _executions(migrated_database_url, tenant, customer)
        assert sorted(e["triggered_by"] for e in runs) == ["manual", "mcp", "schedule", "webhook"]
        assert all(e["status"] == "completed" for e in runs), runs
        # One run created the two missing customers; the others found them and created nothing.
        assert sum(e["output"]["created"] for e in runs) == 2, [e["output"] for e in runs]
        customers = cin7_customers(cin7)
        assert_expected_state(customers)
        emails = [c["Email"].strip().lower() for v in customers.values() for c in v["Contacts"]]
        assert len(emails) == len(set(emails))


def test_runs_of_one_customer_wait_in_order_and_other_customers_never_wait(
        platform: tuple[str, Any], db: store.Database, counter: tuple[Counter, str], migrated_database_url: str) -> None:
    url, _ = platform
    state, counter_url = counter
    tenant = make_tenant(db, "Turns")
    first, second = tenant.customers
    gated = _inline({"id": "gated", "steps": [{"id": "g", "action": "counter.gate", "input": {"n": "{{ input.n }}"}}],
                     "input": {"type": "object"}}, per_customer=1)
    with client(url) as http:
        _setup(http, tenant, [_counter_connector(counter_url)], [gated], [first, second])
        state.held.update({first})
        answers: dict[int, httpx.Response] = {}

        def run(customer: str, n: int) -> None:
            with client(url) as own:
                answers[n] = own.post("/v1/workflows/gated/runs", headers=tenant.headers(customer), json={"input": {"n": n}})

        one = threading.Thread(target=run, args=(first, 1))
        one.start()
        _wait(lambda: state.of(first, "enter") == [1], "the first run to hold its call")
        two = threading.Thread(target=run, args=(first, 2))
        two.start()
        _wait(lambda: [e["status"] for e in _executions(migrated_database_url, tenant, first)] == ["running", "queued"],
              "the second run to wait its turn")
        # Another customer's run of the same workflow is not held up by the first customer's.
        run(second, 3)
        assert answers[3].status_code == 201 and answers[3].json()["status"] == "completed"
        assert state.of(first, "enter") == [1]  # the second run of the first customer still waits
        state.release(first)
        one.join(WAIT_SECONDS)
        two.join(WAIT_SECONDS)
    assert answers[1].json()["status"] == answers[2].json()["status"] == "completed"
    with state.lock:
        order = [(what, n) for what, account, n in state.events if account == first]
    assert order == [("enter", 1), ("leave", 1), ("enter", 2), ("leave", 2)]


def test_coalescing_cancel_and_a_finished_or_foreign_execution(
        platform: tuple[str, Any], db: store.Database, counter: tuple[Counter, str], migrated_database_url: str) -> None:
    url, _ = platform
    state, counter_url = counter
    tenant, stranger = make_tenant(db, "Coalesce"), make_tenant(db, "Stranger")
    customer = tenant.customers[0]
    coalescing = _inline({"id": "coalescing", "input": {"type": "object"},
                          "steps": [{"id": "g", "action": "counter.gate", "input": {"n": "{{ input.n }}"}}]},
                         per_customer=1, overlap="coalesce")
    with client(url) as http:
        _setup(http, tenant, [_counter_connector(counter_url)], [coalescing], [customer])
        state.held.add(customer)
        answers: dict[int, httpx.Response] = {}

        def run(n: int) -> None:
            with client(url) as own:
                answers[n] = own.post("/v1/workflows/coalescing/runs", headers=tenant.headers(customer),
                                      json={"input": {"n": n}})

        threads = [threading.Thread(target=run, args=(1,))]
        threads[0].start()
        _wait(lambda: state.of(customer, "enter") == [1], "the first run to hold its call")
        threads.append(threading.Thread(target=run, args=(2,)))
        threads[1].start()
        _wait(lambda: len(_executions(migrated_database_url, tenant, customer)) == 2, "the second run to wait")
        run(3)  # arrives while run 2 waits: coalesced into it, at once
        third = answers[3].json()
        assert third["status"] == "cancelled" and third["error"]["code"] == "coalesced"
        waiting = _executions(migrated_database_url, tenant, customer)[1]
        assert waiting["status"] == "queued" and third["error"]["into"] == waiting["id"]

        # Cancelling the waiting run: it never starts. Cancelling the running one stops it.
        assert _ok(http.post(f"/v1/executions/{waiting['id']}/cancel", headers=stranger.headers()), 404)
        cancelled = _ok(http.post(f"/v1/executions/{waiting['id']}/cancel", headers=tenant.headers()), 200)
        assert cancelled["status"] == "cancelled" and cancelled["error"]["code"] == "cancelled"
        threads[1].join(WAIT_SECONDS)
        assert answers[2].json()["status"] == "cancelled"
        running = _executions(migrated_database_url, tenant, customer)[0]
        assert _ok(http.post(f"/v1/executions/{running['id']}/cancel", headers=tenant.headers()), 200)["status"] == "cancelled"
        threads[0].join(WAIT_SECONDS)
        assert answers[1].json()["status"] == "cancelled"
        state.release(customer)
        # Finished: 409, and the cancelled ones stay cancelled.
        conflict = http.post(f"/v1/executions/{running['id']}/cancel", headers=tenant.headers())
        assert conflict.status_code == 409, conflict.text
        audit = http.get("/v1/audit-log", headers=tenant.headers(), params={"limit": 50}).json()["items"]
        assert any(entry["action"] == "execution.cancel" for entry in audit), [e["action"] for e in audit]
    assert state.of(customer, "enter") == [1]  # run 2 never started
    assert [e["status"] for e in _executions(migrated_database_url, tenant, customer)] == ["cancelled"] * 3


# -- re-run from the failed step ---------------------------------------------------------------


def test_a_run_failing_at_step_3_of_5_reruns_from_it_without_sending_steps_1_and_2_again(
        platform: tuple[str, Any], db: store.Database, counter: tuple[Counter, str]) -> None:
    url, _ = platform
    state, counter_url = counter
    tenant, stranger = make_tenant(db, "Rerun"), make_tenant(db, "Outsider")
    customer = tenant.customers[0]
    five = _inline({"id": "five", "steps": [{"id": f"s{i}", "action": "counter.create", "input": {"n": i}}
                                            for i in range(1, 6)], "output": {"last": "{{ steps.s5.n }}"}})
    with client(url) as http:
        _setup(http, tenant, [_counter_connector(counter_url)], [five], [customer])
        state.fail_n = 3
        try:
            failed = _ok(http.post("/v1/workflows/five/runs", headers=tenant.headers(customer), json={"input": {}}))
        finally:
            state.fail_n = None
        assert failed["status"] == "failed" and failed["error"]["step"] == "s3", failed
        sent_before = state.of(customer)
        assert sent_before[:3] == [1, 2, 3] and 4 not in sent_before

        # Another tenant cannot re-run it; a completed execution cannot be re-run.
        assert http.post(f"/v1/executions/{failed['id']}/rerun", headers=stranger.headers()).status_code == 404
        rerun = _ok(http.post(f"/v1/executions/{failed['id']}/rerun", headers=tenant.headers(customer)))
        assert rerun["status"] == "completed" and rerun["output"] == {"last": 5}, rerun
        assert rerun["rerun_of"] == failed["id"] and rerun["id"] != failed["id"]
        assert state.of(customer)[len(sent_before):] == [3, 4, 5]  # steps 1 and 2 were not sent again
        again = http.post(f"/v1/executions/{rerun['id']}/rerun", headers=tenant.headers(customer))
        assert again.status_code == 409 and again.json()["field"] == "status", again.text
        shown = _ok(http.get(f"/v1/executions/{rerun['id']}", headers=tenant.headers(customer)), 200)
        assert shown["rerun_of"] == failed["id"]


# -- durable executions (a `switchboard worker` child process) ---------------------------------


def test_durable_runs_wait_per_customer_cancel_and_rerun_through_the_worker(
        platform: tuple[str, Any], db: store.Database, counter: tuple[Counter, str], migrated_database_url: str) -> None:
    from support.serve_process import worker_process

    url, settings = platform
    state, counter_url = counter
    tenant = make_tenant(db, "Durable turns")
    first, second = tenant.customers
    gated = {"id": "gated-durable", "tier": "standard", "input": {"type": "object"}, "concurrency": {"per_customer": 1},
             "steps": [{"id": "g", "action": "counter.gate", "input": {"n": "{{ input.n }}"}}]}
    five = {"id": "five-durable", "tier": "standard",
            "steps": [{"id": f"s{i}", "action": "counter.create", "input": {"n": i}} for i in range(1, 6)]}

    def status(execution_id: str) -> str:
        return next(e["status"] for e in _executions(migrated_database_url, tenant, customer_of[execution_id])
                    if e["id"] == execution_id)

    customer_of: dict[str, str] = {}
    with client(url) as http:
        _setup(http, tenant, [_counter_connector(counter_url)], [gated, five], [first, second])

        def queue(customer: str, workflow: str, n: int = 0) -> str:
            started = _ok(http.post(f"/v1/workflows/{workflow}/runs", headers=tenant.headers(customer),
                                    json={"input": {"n": n} if workflow == "gated-durable" else {}}), 202)
            customer_of[started["id"]] = customer
            return started["id"]

        state.held.add(first)
        a1, a2, b1 = queue(first, "gated-durable", 1), queue(first, "gated-durable", 2), queue(second, "gated-durable", 3)
        queued_only = queue(first, "five-durable")
        # Cancelled before any worker runs: it never starts.
        assert _ok(http.post(f"/v1/executions/{queued_only}/cancel", headers=tenant.headers()), 200)["status"] == "cancelled"
        with worker_process(migrated_database_url, settings.data_dir, "worker-overlap"):
            _wait(lambda: state.of(first, "enter") == [1], "the first customer's first run to hold its call")
            _wait(lambda: status(b1) == "completed", "the other customer's run, while the first is held")
            assert status(a2) == "queued" and state.of(first, "enter") == [1]
            assert _ok(http.post(f"/v1/executions/{a2}/cancel", headers=tenant.headers()), 200)["status"] == "cancelled"
            state.release(first)
            _wait(lambda: status(a1) == "completed", "the first run to complete")

            state.fail_n = 3
            try:
                failed = queue(second, "five-durable")
                _wait(lambda: status(failed) == "failed", "the five-step run to fail at step 3")
            finally:
                state.fail_n = None
            sent_before = len(state.of(second))
            rerun = _ok(http.post(f"/v1/executions/{failed}/rerun", headers=tenant.headers(second)), 202)
            customer_of[rerun["id"]] = second
            _wait(lambda: status(rerun["id"]) == "completed", "the re-run to complete")
        assert state.of(first, "enter") == [1]  # a2 never ran
        assert 1 not in state.of(second)[sent_before:] and state.of(second)[sent_before:] == [3, 4, 5]
        assert status(queued_only) == "cancelled"
        assert not [n for n in state.of(first, "call")]  # the cancelled five-step run sent nothing

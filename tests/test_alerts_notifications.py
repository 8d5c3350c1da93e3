"""Alerts, outbound notifications, insights and retention against real parts: the session's
Postgres, the API over HTTP, and notification receivers served on 127.0.0.1 (the only address the
platforms' egress guard is opened for). Clocks are injected: evaluations and retries happen when
a test moves its clock, never after a wait."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import store
from runtime import AlertEvaluator, DeliveryRetry, Notifier, Pruner
from support.platform import Tenant, app_database, client, make_tenant, running_platform
from support.servers import serve_app
from switchboard import bootstrap
from switchboard.app import open_platform
from switchboard.settings import Settings

# One master key for the API and the worker platforms of this module (they share endpoints' secrets).
MASTER_KEY = "Dt+MAFrMIyTo9edT07+4/DfjVUcmgSP3PWdc3zbNGtU="
WORKFLOW = {"id": "watched", "tier": "instant", "steps": [{"id": "echo", "map": {"ok": "{{ true }}"}}]}


class Clock:
    """A clock a test moves by hand; it starts at the real time so Standard Webhooks' 5-minute
    tolerance accepts what is signed with it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Receiver:
    """A notification endpoint: records each request and answers with the next scripted status
    (the last one repeats)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [200]
        self.requests: list[dict[str, Any]] = []

        async def notify(request: Request) -> Response:
            body = await request.body()
            self.requests.append({"headers": dict(request.headers), "body": body})
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            return Response(status_code=status)

        self.app = Starlette(routes=[Route("/notify", notify, methods=["POST"])])


@pytest.fixture(scope="module")
def api(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"], master_key=MASTER_KEY) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="switchboard-alerts-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@asynccontextmanager
async def platform_at(database_url: str, data_dir: Path, clock: Clock, **settings: Any):
    config = Settings(database_url=database_url, data_dir=data_dir, egress_allow=["127.0.0.1"], master_key=MASTER_KEY,
                      **settings)
    async with open_platform(config, clock=clock) as platform:
        yield platform


def _tenant_with_workflow(database_url: str, name: str) -> tuple[Tenant, str]:
    with app_database(database_url) as db:
        tenant = make_tenant(db, name)
        with db.tenant(tenant.org_id) as tx:
            workflow_id = store.Workflows(tx).create(tenant.org_id, WORKFLOW)["id"]
    return tenant, workflow_id


def _executions(database_url: str, tenant: Tenant, workflow_id: str, statuses: list[str], *,
                customer: int = 0, record: dict[str, Any] | None = None) -> list[str]:
    """Record one finished execution per status, as a run does (start, then finish)."""
    ids = []
    with app_database(database_url) as db, db.tenant(tenant.org_id) as tx:
        executions = store.Executions(tx)
        for status in statuses:
            row = executions.start(tenant.org_id, customer_id=tenant.customers[customer], workflow_id=workflow_id,
                                   version=1, dry_run=False, input={})
            error = {"code": "upstream_error", "step": "echo", "message": "boom"} if status != "completed" else None
            executions.finish(tenant.org_id, row["id"], status=status, output=None, error=error, record=record)
            ids.append(row["id"])
    return ids


def _admin(database_url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _problem_pointers(response: Any) -> set[str]:
    problem = response.json()
    return {e["pointer"] for e in problem.get("errors", [])} | ({"/body/" + problem["field"]} if "field" in problem else set())


# -- alerts ---------------------------------------------------------------------------------------------------


def test_an_error_rate_rule_fires_when_crossed_and_resolves_after(
        migrated_database_url: str, data_dir: Path, api: str) -> None:
    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Alerting")
    with client(api) as http:
        made = http.post("/v1/alerts/rules", headers=tenant.headers(), json={
            "name": "watched fails", "metric": "error_rate", "operator": ">", "threshold": 0.5,
            "window_seconds": 600, "interval_seconds": 60, "workflow": "watched", "min_count": 2})
        assert made.status_code == 201, made.text
        rule = made.json()
    clock = Clock()

    async def scenario() -> list[list[dict[str, Any]]]:
        passes = []
        async with platform_at(migrated_database_url, data_dir, clock) as platform:
            evaluator = AlertEvaluator(platform)
            mine = lambda done: [d for d in done if d["rule_id"] == rule["id"]]  # noqa: E731
            # One failure of one: fewer than min_count, nothing fires.
            _executions(migrated_database_url, tenant, workflow_id, ["failed"])
            clock.advance(1)
            passes.append(mine(await evaluator.tick()))
            # A second failure: 2 of 2 failed crosses 0.5.
            _executions(migrated_database_url, tenant, workflow_id, ["failed"])
            passes.append(mine(await evaluator.tick()))  # not due again before the interval
            clock.advance(60)
            passes.append(mine(await evaluator.tick()))
            # Still failing: stays firing, no second alert.
            clock.advance(60)
            passes.append(mine(await evaluator.tick()))
            # Four successes: 2 of 6 failed is under 0.5, so it resolves.
            _executions(migrated_database_url, tenant, workflow_id, ["completed"] * 4)
            clock.advance(60)
            passes.append(mine(await evaluator.tick()))
        return passes

    passes = asyncio.run(scenario())
    assert [(p[0]["changed"], p[0]["state"]) if p else None for p in passes] == [
        (None, "ok"), None, ("fired", "firing"), (None, "firing"), ("resolved", "ok")]
    assert passes[2][0]["value"] == 1.0 and passes[2][0]["count"] == 2
    assert passes[4][0]["value"] == pytest.approx(2 / 6)
    with client(api) as http:
        alerts = http.get("/v1/alerts", headers=tenant.headers()).json()["items"]
        assert [(a["rule_id"], a["status"], a["value"], a["resolved_value"]) for a in alerts] == [
            (rule["id"], "resolved", 1.0, pytest.approx(2 / 6))]
        assert http.get("/v1/alerts", headers=tenant.headers(), params={"status": "firing"}).json()["items"] == []
        # Firing and resolving are events in the Events list (organization-wide: no customer).
        events = http.get("/v1/events", headers=tenant.headers(), params={"source": "platform"}).json()["items"]
        by_type = {}
        for event in events:
            by_type.setdefault(event["type"], []).append(event)
        assert [e["id"] for e in by_type["alert.fired"]] == [alerts[0]["fired_event_id"]]
        assert [e["id"] for e in by_type["alert.resolved"]] == [alerts[0]["resolved_event_id"]]
        assert by_type["alert.fired"][0]["customer_id"] is None
        detail = http.get(f"/v1/events/{alerts[0]['fired_event_id']}", headers=tenant.headers()).json()
        assert detail["payload"]["rule_id"] == rule["id"] and detail["payload"]["value"] == 1.0
        # Each failed execution is an execution.failed event naming it.
        assert len(by_type["execution.failed"]) == 2
        assert all(len(e["execution_ids"]) == 1 for e in by_type["execution.failed"])
        # A customer's view has its execution.failed events but not the organization's alerts.
        scoped = http.get("/v1/events", headers=tenant.headers(tenant.customers[0]), params={"source": "platform"})
        assert {e["type"] for e in scoped.json()["items"]} == {"execution.failed"}
        rule_now = http.get(f"/v1/alerts/rules/{rule['id']}", headers=tenant.headers()).json()
        assert (rule_now["state"], rule_now["alert_id"], rule_now["last_count"]) == ("ok", None, 6)


def test_two_evaluators_evaluate_a_rule_once_per_slot(migrated_database_url: str, data_dir: Path) -> None:
    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Twice")
    with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
        rule = store.AlertRules(tx).create(tenant.org_id, name="any failure", metric="failure_count", threshold=0,
                                           window_seconds=300, workflow=workflow_id)
    _executions(migrated_database_url, tenant, workflow_id, ["failed", "timeout"])
    clock = Clock()
    clock.advance(1)

    async def scenario() -> list[dict[str, Any]]:
        async with platform_at(migrated_database_url, data_dir, clock) as platform:
            first, second = AlertEvaluator(platform), AlertEvaluator(platform)
            done: list[dict[str, Any]] = []
            for _ in range(3):
                # Both at once, at the same moment, several rounds within one interval.
                for result in await asyncio.gather(first.tick(), second.tick(), first.tick(), second.tick()):
                    done += [d for d in result if d["rule_id"] == rule["id"]]
            return done

    done = asyncio.run(scenario())
    assert [(d["changed"], d["value"]) for d in done] == [("fired", 2.0)]

    async def held_and_repeated() -> list[Any]:
        clock.advance(rule["interval_seconds"])
        async with platform_at(migrated_database_url, data_dir, clock) as platform:
            evaluator = AlertEvaluator(platform)
            # While another transaction holds the due rule, an evaluator skips it rather than wait.
            with platform.db.tenant(tenant.org_id) as tx:
                assert store.AlertRules(tx).lock_due(tenant.org_id, rule["id"], clock.now) is not None
                skipped = await asyncio.to_thread(evaluator.evaluate, tenant.org_id, rule["id"], clock.now)
            # Released: evaluated once for this slot, then no longer due at the same moment.
            once = await asyncio.to_thread(evaluator.evaluate, tenant.org_id, rule["id"], clock.now)
            again = await asyncio.to_thread(evaluator.evaluate, tenant.org_id, rule["id"], clock.now)
            return [skipped, once and (once["changed"], once["state"]), again]

    assert asyncio.run(held_and_repeated()) == [None, (None, "firing"), None]
    alerts = _admin(migrated_database_url, "SELECT * FROM alerts WHERE rule_id = %s", (rule["id"],))
    fired = _admin(migrated_database_url, "SELECT id FROM events WHERE org_id = %s AND type = 'alert.fired'",
                   (tenant.org_id,))
    assert len(alerts) == 1 and [e["id"] for e in fired] == [alerts[0]["fired_event_id"]]


def test_a_connector_rule_measures_that_connectors_calls(migrated_database_url: str) -> None:
    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Calls")
    with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
        executions = store.Executions(tx)
        row = executions.start(tenant.org_id, customer_id=tenant.customers[0], workflow_id=workflow_id, version=1,
                               dry_run=False, input={})
        trace = [{"connector": "cin7", "status": 200, "latency_ms": 10.0},
                 {"connector": "cin7", "status": 500, "latency_ms": 30.0},
                 {"connector": "hubspot", "status": 200, "latency_ms": 1000.0}]
        executions.finish(tenant.org_id, row["id"], status="completed", trace=trace)
        rules = store.AlertRules(tx)
        now = datetime.now(UTC) + timedelta(seconds=1)
        measured = {metric: rules.measure(tenant.org_id, rules.create(
            tenant.org_id, name=metric, metric=metric, threshold=1, window_seconds=60, connector="cin7"), now)
            for metric in store.ALERT_METRICS}
    assert measured["throughput"] == (2.0, 2)
    assert measured["failure_count"] == (1.0, 2)
    assert measured["error_rate"] == (0.5, 2)
    assert measured["latency_avg"] == (20.0, 2)
    assert 29 < measured["latency_p99"][0] <= 30 and 28 < measured["latency_p95"][0] <= 30


# -- notifications --------------------------------------------------------------------------------------------


def test_a_delivery_is_signed_retried_after_a_500_and_recorded_attempt_by_attempt(
        migrated_database_url: str, data_dir: Path, api: str) -> None:
    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Notified")
    receiver = Receiver(500, 200)
    with serve_app(receiver.app) as base, client(api) as http:
        made = http.post("/v1/notifications/endpoints", headers=tenant.headers(), json={
            "url": f"{base}/notify", "event_types": ["execution.failed"], "description": "ops"})
        assert made.status_code == 201, made.text
        endpoint = made.json()
        secret = endpoint.pop("secret")
        assert secret.startswith("whsec_")
        # Shown once: no read returns it, and it is stored encrypted.
        assert "secret" not in http.get(f"/v1/notifications/endpoints/{endpoint['id']}", headers=tenant.headers()).json()
        stored = _admin(migrated_database_url, "SELECT secret FROM notification_endpoints WHERE id = %s", (endpoint["id"],))
        assert secret.encode() not in bytes(stored[0]["secret"])

        [execution_id] = _executions(migrated_database_url, tenant, workflow_id, ["failed"])
        clock = Clock()

        async def scenario() -> list[list[dict[str, Any]]]:
            async with platform_at(migrated_database_url, data_dir, clock) as platform:
                notifier = Notifier(platform, retry=DeliveryRetry(max_attempts=5, first_delay=10, factor=2))
                mine = lambda done: [d for d in done if d["org_id"] == tenant.org_id]  # noqa: E731
                passes = [mine(await notifier.tick())]
                clock.advance(9)
                passes.append(mine(await notifier.tick()))  # the retry is not due yet
                clock.advance(1)
                passes.append(mine(await notifier.tick()))
                clock.advance(3600)
                passes.append(mine(await notifier.tick()))  # delivered: nothing more
                return passes

        passes = asyncio.run(scenario())
        assert [[(d["status"], d["attempts"], d["last_status_code"]) for d in p] for p in passes] == [
            [("pending", 1, 500)], [], [("succeeded", 2, 200)], []]

        # Both attempts carried the same message id and a signature the secret verifies.
        assert len(receiver.requests) == 2
        webhook = Webhook(secret)
        payloads = [webhook.verify(r["body"], r["headers"]) for r in receiver.requests]
        assert payloads[0] == payloads[1]
        assert receiver.requests[0]["headers"]["webhook-id"] == receiver.requests[1]["headers"]["webhook-id"]
        assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
        with pytest.raises(Exception):
            Webhook("whsec_" + "A" * 32).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])
        payload = payloads[0]
        assert payload["type"] == "execution.failed"
        assert (payload["data"]["execution_id"], payload["data"]["status"]) == (execution_id, "failed")

        # One ledger: the delivery names the event, which names the execution.
        deliveries = http.get(f"/v1/notifications/endpoints/{endpoint['id']}/deliveries", headers=tenant.headers())
        assert deliveries.status_code == 200, deliveries.text
        [delivery] = deliveries.json()["items"]
        assert delivery["id"] == receiver.requests[0]["headers"]["webhook-id"]
        assert [(a["attempt"], a["status"], a["response_code"]) for a in delivery["attempt_log"]] == [
            (1, "failed", 500), (2, "succeeded", 200)]
        assert all(a["latency_ms"] is not None and a["latency_ms"] >= 0 for a in delivery["attempt_log"])
        event = http.get(f"/v1/events/{delivery['event_id']}", headers=tenant.headers()).json()
        assert (event["type"], event["execution_ids"]) == ("execution.failed", [execution_id])
        assert payload["data"]["event_id"] == event["id"]


def test_a_restarted_worker_continues_the_retries_until_none_are_left(
        migrated_database_url: str, data_dir: Path) -> None:
    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Restarted")
    receiver = Receiver(503)
    retry = DeliveryRetry(max_attempts=3, first_delay=5, factor=2)
    with serve_app(receiver.app) as base:
        with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
            endpoint, _secret = store.NotificationEndpoints(tx).create(
                tenant.org_id, url=f"{base}/notify", event_types=["execution.failed"], encryptor=_encryptor(data_dir))
        _executions(migrated_database_url, tenant, workflow_id, ["timeout"])
        clock = Clock()

        async def one_pass(advance: float) -> list[dict[str, Any]]:
            # A new platform each time: what the previous worker knew is only in the rows.
            clock.advance(advance)
            async with platform_at(migrated_database_url, data_dir, clock) as platform:
                return [d for d in await Notifier(platform, retry=retry).tick() if d["org_id"] == tenant.org_id]

        first = asyncio.run(one_pass(0))
        assert [(d["status"], d["attempts"]) for d in first] == [("pending", 1)]
        assert first[0]["next_attempt_at"] == clock.now + timedelta(seconds=5)
        assert asyncio.run(one_pass(4)) == []
        second = asyncio.run(one_pass(1))
        assert [(d["status"], d["attempts"]) for d in second] == [("pending", 2)]
        assert second[0]["next_attempt_at"] == clock.now + timedelta(seconds=10)
        third = asyncio.run(one_pass(10))
        assert [(d["status"], d["attempts"], d["next_attempt_at"]) for d in third] == [("failed", 3, None)]
        assert asyncio.run(one_pass(3600)) == []
    assert len(receiver.requests) == 3
    attempts = _admin(migrated_database_url, "SELECT attempt, status, response_code FROM notification_attempts"
                      " WHERE delivery_id = %s ORDER BY attempt", (first[0]["id"],))
    assert [(a["attempt"], a["status"], a["response_code"]) for a in attempts] == [(1, "failed", 503)] * 1 + [
        (2, "failed", 503), (3, "failed", 503)]


def test_the_egress_guard_refuses_an_endpoint_outside_the_allow_list(migrated_database_url: str, data_dir: Path) -> None:
    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Guarded")
    with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
        store.NotificationEndpoints(tx).create(tenant.org_id, url="http://169.254.169.254/latest/meta-data",
                                               event_types=["execution.failed"], encryptor=_encryptor(data_dir))
    _executions(migrated_database_url, tenant, workflow_id, ["failed"])
    clock = Clock()

    async def scenario() -> list[dict[str, Any]]:
        async with platform_at(migrated_database_url, data_dir, clock) as platform:
            return [d for d in await Notifier(platform, retry=DeliveryRetry(max_attempts=1)).tick()
                    if d["org_id"] == tenant.org_id]

    [delivery] = asyncio.run(scenario())
    assert (delivery["status"], delivery["last_status_code"]) == ("failed", None)
    assert delivery["last_error"].startswith("egress_denied")


def _encryptor(data_dir: Path) -> store.Encryptor:
    return store.Encryptor(store.MasterKeyring.from_key(MASTER_KEY))


def test_a_connection_needing_reconnection_is_an_event_delivered_to_its_subscribers(
        migrated_database_url: str, data_dir: Path) -> None:
    tenant, _ = _tenant_with_workflow(migrated_database_url, "Reconnect")
    first = tenant.customers[0]
    _admin(migrated_database_url, "INSERT INTO connectors (org_id, id, key, name) VALUES (%s, 'cn_r', 'hub', 'Hub')",
           (tenant.org_id,))
    _admin(migrated_database_url, "INSERT INTO connections (org_id, id, customer_id, connector_id, auth_type)"
           " VALUES (%s, 'conn_r', %s, 'cn_r', 'oauth2')", (tenant.org_id, first))
    with app_database(migrated_database_url) as db:
        with db.tenant(tenant.org_id) as tx:
            endpoint, _ = store.NotificationEndpoints(tx).create(
                tenant.org_id, url="http://127.0.0.1:9/r", event_types=["connection.needs_reconnect"],
                encryptor=_encryptor(data_dir))
        # Marked in a transaction bound to the customer, as a run that finds the token refused does.
        with db.tenant(tenant.org_id, first) as tx:
            store.Connections(tx).mark(tenant.org_id, "conn_r", "needs_reconnect", "the refresh token was revoked")
            store.Connections(tx).mark(tenant.org_id, "conn_r", "needs_reconnect", "still revoked")  # no second event
        with db.tenant(tenant.org_id) as tx:
            events = store.Events(tx).list(tenant.org_id, store.ListQuery(sort="-received_at"), source="platform").items
            deliveries = store.Deliveries(tx).list(tenant.org_id, endpoint["id"], store.ListQuery()).items
            store.NotificationEndpoints(tx).delete(tenant.org_id, endpoint["id"])
    assert [(e["type"], e["customer_id"]) for e in events] == [("connection.needs_reconnect", first)]
    assert [(d["event_id"], d["status"], d["attempts"]) for d in deliveries] == [(events[0]["id"], "pending", 0)]


# -- tenancy and bad input -------------------------------------------------------------------------------------


def test_another_organization_cannot_see_or_change_rules_endpoints_or_deliveries(
        migrated_database_url: str, api: str) -> None:
    acme, _ = _tenant_with_workflow(migrated_database_url, "AcmeAlerts")
    with app_database(migrated_database_url) as db:
        globex = make_tenant(db, "GlobexAlerts")
    with client(api) as http:
        rule = http.post("/v1/alerts/rules", headers=acme.headers(), json={
            "name": "r", "metric": "throughput", "threshold": 100, "window_seconds": 60}).json()
        endpoint = http.post("/v1/notifications/endpoints", headers=acme.headers(), json={
            "url": "http://127.0.0.1:9/hook", "event_types": ["alert.fired"]}).json()
        other = globex.headers()
        for method, path, body in [
            ("GET", f"/v1/alerts/rules/{rule['id']}", None),
            ("PATCH", f"/v1/alerts/rules/{rule['id']}", {"threshold": 1}),
            ("DELETE", f"/v1/alerts/rules/{rule['id']}", None),
            ("GET", f"/v1/notifications/endpoints/{endpoint['id']}", None),
            ("PATCH", f"/v1/notifications/endpoints/{endpoint['id']}", {"url": "https://evil.example/"}),
            ("DELETE", f"/v1/notifications/endpoints/{endpoint['id']}", None),
            ("GET", f"/v1/notifications/endpoints/{endpoint['id']}/deliveries", None),
        ]:
            response = http.request(method, path, headers=other, json=body)
            assert response.status_code == 404, (method, path, response.text)
        assert http.get("/v1/alerts/rules", headers=other).json()["items"] == []
        assert http.get("/v1/notifications/endpoints", headers=other).json()["items"] == []
        # Intact for its owner.
        assert http.get(f"/v1/alerts/rules/{rule['id']}", headers=acme.headers()).json()["threshold"] == 100
        assert http.get(f"/v1/notifications/endpoints/{endpoint['id']}", headers=acme.headers()).json()["url"] == \
            "http://127.0.0.1:9/hook"
        # Credentials bound to one customer reach no organization settings.
        with app_database(migrated_database_url) as db:
            _, bound = bootstrap.create_api_key(db, acme.org_id, "bound", role_id="end_user", customer_id=acme.customers[0])
        assert http.get("/v1/alerts", headers=acme.headers(key=bound)).status_code == 403
        assert http.get("/v1/notifications/endpoints", headers=acme.headers(key=bound)).status_code == 403


@pytest.mark.parametrize(("path", "body", "pointer"), [
    ("/v1/alerts/rules", {"name": "x", "metric": "median", "threshold": 1, "window_seconds": 60}, "/body/metric"),
    ("/v1/alerts/rules", {"name": "x", "metric": "throughput", "threshold": 1, "window_seconds": -60}, "/body/window_seconds"),
    ("/v1/alerts/rules", {"name": "x", "metric": "throughput", "threshold": 1, "window_seconds": 60,
                          "operator": "=~"}, "/body/operator"),
    ("/v1/alerts/rules", {"name": "x", "metric": "throughput", "threshold": 1, "window_seconds": 60,
                          "interval_seconds": 120}, "/body/interval_seconds"),
    ("/v1/alerts/rules", {"name": "x", "metric": "throughput", "threshold": 1, "window_seconds": 60,
                          "workflow": "no-such-workflow"}, "/body/workflow"),
    ("/v1/notifications/endpoints", {"url": "ftp://example.com/x", "event_types": ["alert.fired"]}, "/body/url"),
    ("/v1/notifications/endpoints", {"url": "https://example.com/x", "event_types": ["alert.fired", "nope"]},
     "/body/event_types/1"),
    ("/v1/notifications/endpoints", {"url": "https://example.com/x", "event_types": []}, "/body/event_types"),
])
def test_bad_input_is_refused_with_a_pointer(migrated_database_url: str, api: str, path: str, body: dict[str, Any],
                                             pointer: str) -> None:
    with app_database(migrated_database_url) as db:
        tenant = make_tenant(db, "BadInput", customers=0)
    with client(api) as http:
        response = http.post(path, headers=tenant.headers(), json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert pointer in _problem_pointers(response), response.text


# -- insights -------------------------------------------------------------------------------------------------


def test_insights_summarize_one_customer_and_a_bound_key_sees_only_its_own(migrated_database_url: str, api: str) -> None:
    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Insightful")
    first, second = tenant.customers
    record = {"run": {"steps": [{"step_id": "sync", "output": {"created": 2, "updated": 1, "unchanged": 4,
                                                                "skipped": []}}]}}
    _executions(migrated_database_url, tenant, workflow_id, ["completed", "completed"], record=record)
    [failed] = _executions(migrated_database_url, tenant, workflow_id, ["failed"])
    _executions(migrated_database_url, tenant, workflow_id, ["completed"], customer=1, record=record)
    with app_database(migrated_database_url) as db:
        _, bound = bootstrap.create_api_key(db, tenant.org_id, "second's", role_id="end_user", customer_id=second)
    with client(api) as http:
        response = http.get("/v1/insights", headers=tenant.headers(), params={"customer_id": first})
        assert response.status_code == 200, response.text
        insights = response.json()
        assert insights["runs_today"] == {"total": 3, "by_status": {"completed": 2, "failed": 1}}
        assert insights["records_processed"] == 14
        assert insights["needs_attention"]["count"] == 1
        assert [e["id"] for e in insights["needs_attention"]["executions"]] == [failed]
        assert insights["most_used_workflow"]["workflow_key"] == "watched"
        assert insights["most_used_workflow"]["runs"] == 3
        assert insights["connections"] == []
        # The header names the customer as well as the parameter.
        assert http.get("/v1/insights", headers=tenant.headers(second)).json()["runs_today"]["total"] == 1
        # A key bound to the second customer sees its own, and nothing of the first.
        mine = http.get("/v1/insights", headers=tenant.headers(key=bound))
        assert mine.status_code == 200 and mine.json()["records_processed"] == 7
        assert http.get("/v1/insights", headers=tenant.headers(key=bound), params={"customer_id": first}).status_code == 404
        # No customer named: the organization's customers together.
        together = http.get("/v1/insights", headers=tenant.headers()).json()
        assert (together["customer_id"], together["runs_today"]["total"], together["records_processed"]) == (None, 4, 21)


# -- retention ------------------------------------------------------------------------------------------------


def test_retention_prunes_only_old_finished_rows_in_batches(migrated_database_url: str, data_dir: Path) -> None:
    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Retained")
    with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
        endpoint, _ = store.NotificationEndpoints(tx).create(
            tenant.org_id, url="http://127.0.0.1:9/h", event_types=["execution.failed"], encryptor=_encryptor(data_dir))
    old = _executions(migrated_database_url, tenant, workflow_id, ["failed", "completed", "failed"])
    new = _executions(migrated_database_url, tenant, workflow_id, ["failed", "completed"])
    with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
        running = store.Executions(tx).start(tenant.org_id, customer_id=tenant.customers[0], workflow_id=workflow_id,
                                             version=1, dry_run=False, input={})["id"]
    back = "now() - interval '40 days'"
    _admin(migrated_database_url, f"UPDATE executions SET started_at = {back} WHERE id = ANY(%s)", (old + [running],))
    _admin(migrated_database_url, f"UPDATE events SET received_at = {back} WHERE org_id = %s AND %s && execution_ids",
           (tenant.org_id, old))
    # Deliveries of old events: one finished (pruned), one still pending (kept until its event goes).
    _admin(migrated_database_url,
           f"UPDATE notification_deliveries SET created_at = {back}, status = 'succeeded' WHERE org_id = %s AND event_id IN"
           " (SELECT id FROM events WHERE org_id = %s AND %s && execution_ids)", (tenant.org_id, tenant.org_id, old[:1]))

    def counts() -> dict[str, int]:
        return {
            "executions": len(_admin(migrated_database_url, "SELECT 1 FROM executions WHERE org_id = %s", (tenant.org_id,))),
            "events": len(_admin(migrated_database_url, "SELECT 1 FROM events WHERE org_id = %s", (tenant.org_id,))),
            "deliveries": len(_admin(migrated_database_url, "SELECT 1 FROM notification_deliveries WHERE org_id = %s",
                                     (tenant.org_id,))),
        }

    assert counts() == {"executions": 6, "events": 3, "deliveries": 3}
    clock = Clock()

    async def prune() -> list[dict[str, Any]]:
        async with platform_at(migrated_database_url, data_dir, clock, retention_days=30) as platform:
            return await Pruner(platform, batch=1).tick()

    [report] = asyncio.run(prune())
    assert report["batches"] > 3  # one row per batch
    remaining = {row["id"] for row in _admin(migrated_database_url, "SELECT id FROM executions WHERE org_id = %s",
                                             (tenant.org_id,))}
    assert remaining == set(new) | {running}
    events = _admin(migrated_database_url, "SELECT execution_ids FROM events WHERE org_id = %s", (tenant.org_id,))
    assert [e["execution_ids"] for e in events] == [new[:1]]
    assert counts() == {"executions": 3, "events": 1, "deliveries": 1}
    # Other organizations' rows (newer) are untouched by this pass: nothing of theirs was 40 days old.
    assert report["removed"]["executions"] >= 3 and report["removed"]["events"] >= 2
    with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
        store.NotificationEndpoints(tx).delete(tenant.org_id, endpoint["id"])  # no later worker delivers its rest


def test_switchboard_prune_command_reports_what_it_removed(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
                                                           data_dir: Path) -> None:
    from click.testing import CliRunner

    from switchboard.cli import cli

    tenant, workflow_id = _tenant_with_workflow(migrated_database_url, "Pruned")
    [old] = _executions(migrated_database_url, tenant, workflow_id, ["completed"])
    _admin(migrated_database_url, "UPDATE executions SET started_at = now() - interval '3 days' WHERE id = %s", (old,))
    monkeypatch.setenv("DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(cli, ["prune", "--older-than-days", "2"])
    assert result.exit_code == 0, result.output
    assert "pruned" in result.output and "executions" in result.output
    assert _admin(migrated_database_url, "SELECT 1 FROM executions WHERE id = %s", (old,)) == []


"""Activity through the API: the Executions view's filters (status, workflow, version, customer,
trigger, time range) and the Traces view (one row per connector call of real runs against a Cin7
sandbox: success and error, HTTP status, latency), both newest first with cursor paging, scoped
to the organization and to the customer a request names, and refusing bad filters with 422."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import store
from support.platform import Tenant, client, make_tenant, running_platform
from support.sandbox import running_sandbox
from switchboard import bootstrap

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "acct-77aa-activity-account-id"
APP_KEY = "appkey-77bb-activity-application-key"
MISSING = "6f1c6a52-0000-4000-8000-00000000dead"

LIST = {"id": "lister", "tier": "instant", "steps": [{"id": "list", "action": "cin7.list_customers", "input": {"Limit": 5}}]}
FAIL = {"id": "breaker", "tier": "instant", "steps": [
    {"id": "update", "action": "cin7.update_customer",
     "input": {"body": {"ID": MISSING, "Name": "x", "Currency": "USD"}}}]}


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def world(db: store.Database, platform: str) -> Iterator[dict[str, Any]]:
    """Acme: lister (v1, v2) run by both customers and breaker (fails with a 404) run by the first;
    Globex: nothing."""
    acme, globex = make_tenant(db, "Acme"), make_tenant(db, "Globex")
    first, second = acme.customers
    with running_sandbox("cin7-core-v2-subset.yaml") as cin7, client(platform) as http:
        spec = yaml.safe_load((ROOT / "examples" / "connectors" / "cin7.yaml").read_text()) | {"base_url": cin7.base_url}
        assert http.post("/v1/connectors", headers=acme.headers(), json={"spec": spec}).status_code == 201
        assert http.post("/v1/connectors/cin7/versions/1/publish", headers=acme.headers()).status_code == 200
        auth = {"type": "api_key", "values": {"account_id": ACCOUNT, "application_key": APP_KEY}}
        for customer in (first, second):
            made = http.post("/v1/connections", headers=acme.headers(customer), json={"connector": "cin7", "auth": auth})
            assert made.status_code == 201, made.text
        for workflow in (LIST, FAIL):
            assert http.post("/v1/workflows", headers=acme.headers(), json={"spec": workflow}).status_code == 201
            assert http.post(f"/v1/workflows/{workflow['id']}/publish", headers=acme.headers()).status_code == 201
        runs: dict[str, list[dict[str, Any]]] = {"v1": [], "v2": [], "fail": []}
        for customer in (first, second):
            runs["v1"].append(http.post("/v1/workflows/lister/runs", headers=acme.headers(customer), json={}).json())
        http.put("/v1/workflows/lister/draft", headers=acme.headers(), json={"spec": {**LIST, "name": "v2"}})
        assert http.post("/v1/workflows/lister/publish", headers=acme.headers()).status_code == 201
        runs["v2"].append(http.post("/v1/workflows/lister/runs", headers=acme.headers(first), json={}).json())
        runs["fail"].append(http.post("/v1/workflows/breaker/runs", headers=acme.headers(first), json={}).json())
        assert [r["status"] for r in runs["v1"] + runs["v2"] + runs["fail"]] == ["completed"] * 3 + ["failed"]
        _, bound = bootstrap.create_api_key(db, acme.org_id, "second's key", role_id="end_user", customer_id=second)
        yield {"acme": acme, "globex": globex, "runs": runs, "bound": bound}


def items(http: httpx.Client, path: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = http.get(path, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def walk(http: httpx.Client, path: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following ``next_cursor``."""
    found, cursor = [], None
    while True:
        page = http.get(path, headers=headers, params=params | ({"cursor": cursor} if cursor else {})).json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


# -- executions -----------------------------------------------------------------------------------------------


def test_executions_filter_by_version_trigger_status_and_customer(platform: str, world: dict[str, Any]) -> None:
    acme: Tenant = world["acme"]
    runs = world["runs"]
    first, second = acme.customers
    with client(platform) as http:
        headers = acme.headers()
        v1 = items(http, "/v1/executions", headers, workflow="lister", version=1)
        assert sorted(e["id"] for e in v1) == sorted(r["id"] for r in runs["v1"])
        assert [e["id"] for e in items(http, "/v1/executions", headers, workflow="lister", version=2)] == [runs["v2"][0]["id"]]
        failed = items(http, "/v1/executions", headers, status="failed")
        assert [e["id"] for e in failed] == [runs["fail"][0]["id"]]
        assert len(items(http, "/v1/executions", headers, triggered_by="manual")) == 4
        assert items(http, "/v1/executions", headers, triggered_by="webhook") == []
        mine = items(http, "/v1/executions", headers, workflow="lister", customer=second)
        assert [e["id"] for e in mine] == [runs["v1"][1]["id"]]
        # Newest first, and pages of one walk the same rows in the same order.
        everything = items(http, "/v1/executions", headers)
        assert [e["started_at"] for e in everything] == sorted((e["started_at"] for e in everything), reverse=True)
        assert [e["id"] for e in walk(http, "/v1/executions", headers, limit=1)] == [e["id"] for e in everything]
        # A customer-bound key sees only its customer's, whatever it filters by.
        bound = items(http, "/v1/executions", acme.headers(key=world["bound"]), version=1)
        assert [e["id"] for e in bound] == [runs["v1"][1]["id"]]
        assert items(http, "/v1/executions", acme.headers(key=world["bound"]), customer=first) == []
        assert items(http, "/v1/executions", world["globex"].headers(), version=1) == []


def test_executions_filter_by_time_range(platform: str, world: dict[str, Any]) -> None:
    acme: Tenant = world["acme"]
    with client(platform) as http:
        everything = items(http, "/v1/executions", acme.headers())
        times = sorted(datetime.fromisoformat(e["started_at"]) for e in everything)
        oldest, newest = times[0], times[-1]
        assert len(items(http, "/v1/executions", acme.headers(), **{"from": oldest.isoformat()})) == len(everything)
        # from is inclusive, to exclusive.
        assert items(http, "/v1/executions", acme.headers(), to=oldest.isoformat()) == []
        before_newest = items(http, "/v1/executions", acme.headers(), **{"from": oldest.isoformat(), "to": newest.isoformat()})
        assert len(before_newest) == len([t for t in times if t < newest])
        later = (newest + timedelta(hours=1)).isoformat()
        assert items(http, "/v1/executions", acme.headers(), **{"from": later}) == []


@pytest.mark.parametrize(("path", "params", "name"), [
    ("/v1/executions", {"version": "one"}, "version"),
    ("/v1/executions", {"version": "-1"}, "version"),
    ("/v1/executions", {"triggered_by": "carrier-pigeon"}, "triggered_by"),
    ("/v1/executions", {"from": "yesterday"}, "from"),
    ("/v1/executions", {"from": "2026-01-02T00:00:00"}, "from"),
    ("/v1/executions", {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
    ("/v1/traces", {"status": "lost"}, "status"),
    ("/v1/traces", {"to": "soon"}, "to"),
    ("/v1/traces", {"to": "2026-01-02T00:00:00"}, "to"),
    ("/v1/traces", {"sort": "latency_ms"}, "sort"),
    ("/v1/traces", {"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ("/v1/traces", {"dry_run": "maybe"}, "dry_run"),
])
def test_bad_filters_are_refused_naming_the_parameter(platform: str, world: dict[str, Any], path: str,
                                                      params: dict[str, str], name: str) -> None:
    with client(platform) as http:
        response = http.get(path, headers=world["acme"].headers(), params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    named = {problem.get("field")} | {e["pointer"].removeprefix("/query/") for e in problem.get("errors", [])}
    assert name in named, response.text


# -- traces ---------------------------------------------------------------------------------------------------


def test_traces_list_each_call_with_status_and_latency(platform: str, world: dict[str, Any]) -> None:
    acme: Tenant = world["acme"]
    runs = world["runs"]
    with client(platform) as http:
        traces = items(http, "/v1/traces", acme.headers())
        assert len(traces) == sum(len(r["trace"]) for group in runs.values() for r in group) == 4
        failing = runs["fail"][0]
        errors = items(http, "/v1/traces", acme.headers(), status="error")
        assert [(t["execution_id"], t["http_status"], t["connector"], t["action"], t["workflow_id"])
                for t in errors] == [(failing["id"], 404, "cin7", "update_customer", failing["workflow_id"])]
        assert errors[0]["step_id"] == "update" and errors[0]["customer_id"] == acme.customers[0]
        successes = items(http, "/v1/traces", acme.headers(), status="success")
        assert len(successes) == 3 and all(t["http_status"] == 200 and t["action"] == "list_customers" for t in successes)
        assert all(t["latency_ms"] is not None and t["latency_ms"] >= 0 for t in traces)
        assert items(http, "/v1/traces", acme.headers(), status="pending") == []
        # Each row is a record of its execution's stored trace.
        for row in traces:
            stored = http.get(f"/v1/executions/{row['execution_id']}", headers=acme.headers()).json()["trace"]
            assert (row["http_status"], row["latency_ms"]) in {(t["status"], t["latency_ms"]) for t in stored}
        # Newest first by the execution's start; pages of one walk the same rows.
        assert [t["at"] for t in traces] == sorted((t["at"] for t in traces), reverse=True)
        assert [t["id"] for t in walk(http, "/v1/traces", acme.headers(), limit=1)] == [t["id"] for t in traces]
        oldest = items(http, "/v1/traces", acme.headers(), sort="at", limit=1)[0]
        assert oldest["id"] == traces[-1]["id"]


def test_traces_filter_by_workflow_connector_customer_execution_and_time(platform: str, world: dict[str, Any]) -> None:
    acme: Tenant = world["acme"]
    runs = world["runs"]
    first, second = acme.customers
    with client(platform) as http:
        headers = acme.headers()
        assert len(items(http, "/v1/traces", headers, workflow="lister")) == 3
        assert len(items(http, "/v1/traces", headers, workflow="breaker")) == 1
        assert items(http, "/v1/traces", headers, workflow="nothing-like-it") == []
        assert len(items(http, "/v1/traces", headers, connector="cin7")) == 4
        assert items(http, "/v1/traces", headers, connector="hubspot") == []
        assert {t["customer_id"] for t in items(http, "/v1/traces", headers, customer=second)} == {second}
        one = runs["v2"][0]["id"]
        assert [t["execution_id"] for t in items(http, "/v1/traces", headers, execution=one)] == [one]
        assert items(http, "/v1/traces", headers, dry_run="true") == []
        started = datetime.fromisoformat(runs["fail"][0]["started_at"])
        since = items(http, "/v1/traces", headers, **{"from": started.isoformat()})
        assert [t["execution_id"] for t in since] == [runs["fail"][0]["id"]]
        until = items(http, "/v1/traces", headers, to=started.isoformat())
        assert len(until) == 3 and runs["fail"][0]["id"] not in {t["execution_id"] for t in until}
        future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
        assert items(http, "/v1/traces", headers, **{"from": future}) == []


def test_traces_are_scoped_to_the_organization_and_the_customer(platform: str, world: dict[str, Any]) -> None:
    acme: Tenant = world["acme"]
    globex: Tenant = world["globex"]
    first, second = acme.customers
    with client(platform) as http:
        bound = items(http, "/v1/traces", acme.headers(key=world["bound"]))
        assert len(bound) == 1 and {t["customer_id"] for t in bound} == {second}
        assert items(http, "/v1/traces", acme.headers(key=world["bound"]), customer=first) == []
        named = items(http, "/v1/traces", acme.headers(first))
        assert len(named) == 3 and {t["customer_id"] for t in named} == {first}
        assert items(http, "/v1/traces", globex.headers()) == []
        assert items(http, "/v1/traces", globex.headers(), workflow="lister") == []
        assert http.get("/v1/traces", headers=globex.headers(first)).status_code in (400, 403, 404)
        # No call row carries the customer's credentials.
        text = http.get("/v1/traces", headers=acme.headers()).text
        assert ACCOUNT not in text and APP_KEY not in text


def test_a_test_key_sees_no_production_customers_calls(platform: str, world: dict[str, Any], db: store.Database) -> None:
    # Last in the module: it adds an execution (a dry run, whose GET is sent) for a production customer.
    acme: Tenant = world["acme"]
    live = bootstrap.create_customer(db, acme.org_id, "Live customer", environment="production")["id"]
    _, test_key = bootstrap.create_api_key(db, acme.org_id, "test key", kind="test")
    with client(platform) as http:
        dry = http.post("/v1/workflows/lister/runs", headers=acme.headers(live), json={"dry_run": True})
        assert dry.status_code == 201 and dry.json()["trace"], dry.text
        assert {t["customer_id"] for t in items(http, "/v1/traces", acme.headers(), customer=live)} == {live}
        seen = items(http, "/v1/traces", acme.headers(key=test_key), limit=200)
        assert seen and live not in {t["customer_id"] for t in seen}
        assert items(http, "/v1/traces", acme.headers(key=test_key), customer=live) == []
        assert http.get("/v1/traces", headers=acme.headers(live, key=test_key)).status_code == 403
        assert items(http, "/v1/traces", acme.headers(), dry_run="true", customer=live)[0]["sent"] is True
        assert live not in {e["customer_id"] for e in items(http, "/v1/executions", acme.headers(key=test_key), limit=200)}

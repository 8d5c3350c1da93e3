"""Dry runs at the engine seam: GETs reach the (sandbox) app, writes are answered synthetically,
the trace says which were sent, and nothing in it carries a credential."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from engine.actions import ActionExecutor
from engine.auth import Authenticator, OAuth2Client, StaticCredentials
from engine.http import EgressPolicy, HttpClient
from engine.specs import load_connector, load_workflow
from engine.workflow import DryRunHttp, DryRunInvoker, Dependencies, Interpreter, SequentialIds
from support.sandbox import running_sandbox

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "acct-0d1f-secret-account"
APP_KEY = "appkey-7c2e-secret-application"
SEED = {"/customer": [{"ID": "6f1c6a52-0000-4000-8000-000000000001", "Name": "Existing", "Currency": "NZD"}]}
WORKFLOW = {
    "id": "add-customer",
    "input": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    "steps": [
        {"id": "existing", "action": "cin7.list_customers", "input": {"Limit": 50}},
        {"id": "create", "action": "cin7.create_customer",
         "input": {"body": {"Name": "{{ input.name }}", "Currency": "USD"}}},
    ],
    "output": {"before": "{{ $count(steps.existing.items) }}", "created": "{{ steps.create }}"},
}


@pytest.fixture(scope="module")
def sandbox():
    with running_sandbox("cin7-core-v2-subset.yaml", seed=SEED) as server:
        yield server


@pytest.fixture
def cin7(sandbox):
    httpx.post(sandbox.admin_url + "/reset").raise_for_status()
    return sandbox


def _connector(base_url: str):
    data = yaml.safe_load((ROOT / "examples" / "connectors" / "cin7.yaml").read_text())
    return load_connector({**data, "base_url": base_url})


async def _run(connector, *, dry: bool, name: str = "Ada"):
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    try:
        auth = Authenticator(StaticCredentials({"cin7": {"account_id": ACCOUNT, "application_key": APP_KEY}}), OAuth2Client(http))
        executor = ActionExecutor({"cin7": connector}, http=DryRunHttp(http) if dry else http, auth=auth, trace_bodies=True)
        invoker = DryRunInvoker(executor, {"cin7": connector}) if dry else executor
        result = await Interpreter(Dependencies(invoker=invoker, ids=SequentialIds())).run(load_workflow(WORKFLOW), {"name": name})
        return result, invoker
    finally:
        await http.aclose()


def _names(server) -> list[str]:
    return [c["Name"] for c in httpx.get(server.admin_url + "/state").json()["collections"]["/customer"]]


async def test_a_dry_run_sends_reads_and_withholds_writes(cin7) -> None:
    connector = _connector(cin7.base_url)
    result, invoker = await _run(connector, dry=True)
    assert result.succeeded, result.error
    assert _names(cin7) == ["Existing"]
    trace = invoker.annotate(result.traces)
    # The list walks its pages (GETs, sent); the create is withheld.
    assert {(t["method"], t["dry_run"], t["sent"]) for t in trace} == {("GET", True, True), ("POST", True, False)}
    assert trace[0]["status"] == 200 and trace[-1]["method"] == "POST"
    assert trace[-1]["status"] == 201 and trace[-1]["latency_ms"] == 0.0
    created = result.output["created"]
    assert created["Name"] == "Ada" and created["Currency"] == "USD" and created["id"].startswith("dry-run-")
    assert result.output["before"] == 1
    # Deterministic: the same request gets the same synthetic answer.
    again, _ = await _run(connector, dry=True)
    assert again.output == result.output
    text = json.dumps(trace) + json.dumps(result.record.to_dict())
    assert ACCOUNT not in text and APP_KEY not in text


async def test_a_real_run_writes(cin7) -> None:
    result, _ = await _run(_connector(cin7.base_url), dry=False, name="Grace")
    assert result.succeeded, result.error
    assert _names(cin7) == ["Existing", "Grace"]
    assert [t.method for t in result.traces][-1] == "POST" and {t.method for t in result.traces} == {"GET", "POST"}
    text = json.dumps([t.to_dict() for t in result.traces])
    assert ACCOUNT not in text and APP_KEY not in text


async def test_a_withheld_write_is_still_vetted_by_the_egress_guard(cin7) -> None:
    connector = _connector(cin7.base_url)
    connector.actions["create_customer"].base_url = "http://169.254.169.254/ExternalApi/v2"
    result, invoker = await _run(connector, dry=True)
    assert not result.succeeded
    assert result.error.step_id == "create" and result.error.cause.code == "egress_denied"
    assert _names(cin7) == ["Existing"]


async def test_declared_success_statuses_shape_the_synthetic_answer(cin7) -> None:
    connector = _connector(cin7.base_url)
    connector.actions["create_customer"].success_statuses = [200]
    result, invoker = await _run(connector, dry=True)
    assert result.succeeded
    assert invoker.annotate(result.traces)[-1]["status"] == 200

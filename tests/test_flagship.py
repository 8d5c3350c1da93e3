"""The flagship, end to end: HubSpot contacts synced into Cin7 customers, matching by email.

Real parts only: both apps are sandboxes served from the providers' own OpenAPI
documents over HTTP on 127.0.0.1, the connectors are the ones `switchboard
connector import` wrote into examples/, and the run goes through the shared
HTTP client, the auth layer and the interpreter.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from engine.errors import ReplayDivergence
from engine.specs import load_connectors_dir, load_workflow
from engine.workflow import Dependencies, FakeClock, Interpreter, RunRecord, SequentialIds, WorkflowRegistry
from engine.http import EgressPolicy, HttpClient
from support.sandbox import running_sandbox
from switchboard.cli import cli
from runtime import build_executor

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "hubspot-contacts-to-cin7.yaml"
CONNECTORS = ROOT / "examples" / "connectors"
BOB_ID = "6f1c6a52-0000-4000-8000-000000000001"
CAROL_ID = "6f1c6a52-0000-4000-8000-000000000002"
ZED_ID = "6f1c6a52-0000-4000-8000-000000000003"


def contact(cid: str, **props) -> dict:
    return {"id": cid, "properties": props, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "archived": False}


HUBSPOT_SEED = {"/crm/v3/objects/contacts": [
    contact("101", email="ada@example.com", firstname="Ada", lastname="Lovelace", phone="+44 1"),
    contact("102", email=" Bob@Example.COM", firstname="Bob", lastname="Builder", phone="+1 2"),
    contact("103", email="carol@example.com", firstname="Carol", lastname="Jones", phone="+1 3"),
    contact("104", firstname="No", lastname="Email"),
    contact("105", email="dan@example.com", firstname="Dan", lastname="Brown"),
]}
CIN7_SEED = {"/customer": [
    # Bob exists under an old name; his email is inside Contacts[], in another case.
    {"ID": BOB_ID, "Name": "Robert Old", "Currency": "NZD", "Contacts": [{"Name": "Robert Old", "Email": "bob@example.com"}]},
    # Carol already holds exactly what the mapping produces: unchanged.
    # Her email is the second of two contacts; the other one must survive the sync.
    {"ID": CAROL_ID, "Name": "Carol Jones", "Currency": "EUR",
     "Contacts": [{"Name": "Accounts", "Email": "accounts@carol.example"},
                  {"Name": "Carol Jones", "Email": "carol@example.com", "Phone": "+1 3", "Default": True}]},
    # A customer with no HubSpot contact is left alone.
    {"ID": ZED_ID, "Name": "Zed Unrelated", "Currency": "AUD", "Contacts": [{"Name": "Zed", "Email": "zed@example.com"}]},
]}


def cin7_customers(server) -> dict[str, dict]:
    state = httpx.get(server.admin_url + "/state").json()["collections"]["/customer"]
    return {c["Name"]: {k: c.get(k) for k in ("ID", "Currency", "Contacts")} for c in state}


@pytest.fixture
def sandboxes():
    with running_sandbox("hubspot-crm-contacts-v3.json", seed=HUBSPOT_SEED) as hubspot, \
            running_sandbox("cin7-core-v2-subset.yaml", seed=CIN7_SEED) as cin7:
        yield hubspot, cin7


async def run_flagship(hubspot, cin7, record: RunRecord | None = None):
    connectors = load_connectors_dir(CONNECTORS)
    workflow = load_workflow(WORKFLOW)
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    try:
        executor = build_executor(connectors, http, credentials=None,
                                  base_urls={"hubspot": hubspot.base_url, "cin7": cin7.base_url})
        deps = Dependencies(invoker=executor, clock=FakeClock(), ids=SequentialIds("run"), workflows=WorkflowRegistry([workflow]))
        interpreter = Interpreter(deps)
        if record is not None:
            return await interpreter.replay(workflow, record)
        return await interpreter.run(workflow, {"page_size": 2, "currency": "GBP"})
    finally:
        await http.aclose()


EXPECTED = {
    "Ada Lovelace": {"Currency": "GBP", "Contacts": [{"Name": "Ada Lovelace", "Email": "ada@example.com", "Phone": "+44 1", "Default": True}]},
    "Bob Builder": {"ID": BOB_ID, "Currency": "NZD",
                    "Contacts": [{"Name": "Bob Builder", "Email": " Bob@Example.COM", "Phone": "+1 2", "Default": True}]},
    "Carol Jones": {"ID": CAROL_ID, "Currency": "EUR",
                    "Contacts": [{"Name": "Accounts", "Email": "accounts@carol.example"},
                                 {"Name": "Carol Jones", "Email": "carol@example.com", "Phone": "+1 3", "Default": True}]},
    "Dan Brown": {"Currency": "GBP", "Contacts": [{"Name": "Dan Brown", "Email": "dan@example.com", "Default": True}]},
    "Zed Unrelated": {"ID": ZED_ID, "Currency": "AUD", "Contacts": [{"Name": "Zed", "Email": "zed@example.com"}]},
}


def assert_expected_state(customers: dict[str, dict]) -> None:
    assert set(customers) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        got = customers[name]
        for key, value in expected.items():
            assert got[key] == value, (name, key, got[key])
    new_ids = {customers["Ada Lovelace"]["ID"], customers["Dan Brown"]["ID"]}
    assert len(new_ids) == 2 and not new_ids & {BOB_ID, CAROL_ID, ZED_ID}


async def test_flagship_sync_then_a_second_run_changes_nothing(sandboxes):
    hubspot, cin7 = sandboxes
    first = await run_flagship(hubspot, cin7)
    assert first.succeeded, first.error
    assert first.output == {"created": 2, "updated": 1, "unchanged": 1, "skipped": 1}
    (sync,) = [step for step in first.record.steps if step.step_id == "sync"]
    assert [(s["index"], s["reason"]) for s in sync.output["skipped"]] == [(3, "no match key")]
    after_first = cin7_customers(cin7)
    assert_expected_state(after_first)
    # three HubSpot pages of two, one Cin7 list, two creates, one update
    calls = [(t.action, t.method) for t in first.traces]
    assert calls.count(("list_contacts", "GET")) == 3
    assert calls.count(("create_customer", "POST")) == 2 and calls.count(("update_customer", "PUT")) == 1

    second = await run_flagship(hubspot, cin7)
    assert second.output == {"created": 0, "updated": 0, "unchanged": 4, "skipped": 1}
    assert {t.method for t in second.traces} == {"GET"}  # reads only
    assert cin7_customers(cin7) == after_first


async def test_flagship_replays_from_its_record_without_calling_out(sandboxes):
    hubspot, cin7 = sandboxes
    first = await run_flagship(hubspot, cin7)
    saved = json.loads(json.dumps(first.record.to_dict()))
    state = httpx.get(cin7.admin_url + "/state").json()
    replayed = await run_flagship(hubspot, cin7, record=RunRecord.from_dict(saved))
    assert replayed.output == first.output and replayed.traces == []
    assert httpx.get(cin7.admin_url + "/state").json() == state  # nothing was sent

    # The same record against a changed workflow input diverges, naming run, step and values.
    saved["input"] = {"page_size": 3, "currency": "GBP"}
    with pytest.raises(ReplayDivergence) as info:
        await run_flagship(hubspot, cin7, record=RunRecord.from_dict(saved))
    assert info.value.run_id == first.run_id and info.value.step == "contacts"
    assert '"limit": 2' in str(info.value) and '"limit": 3' in str(info.value)


def test_flagship_through_the_cli(sandboxes, tmp_path):
    hubspot, cin7 = sandboxes
    args = ["workflow", "run", str(WORKFLOW), "--connectors", str(CONNECTORS), "--input", '{"page_size": 5}',
            "--base-url", f"hubspot={hubspot.base_url}", "--base-url", f"cin7={cin7.base_url}", "--json",
            "--record", str(tmp_path / "record.json")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["status"] == "succeeded" and printed["output"]["created"] == 2
    assert all(t["status"] == 200 for t in printed["trace"])
    assert json.loads((tmp_path / "record.json").read_text())["workflow_id"] == "hubspot-contacts-to-cin7-customers"

    bad = CliRunner().invoke(cli, ["workflow", "run", str(WORKFLOW), "--connectors", str(CONNECTORS), "--input", '{"page_size": 0}'])
    assert bad.exit_code != 0 and "page_size" in bad.output
    bad_url = CliRunner().invoke(cli, args[:5] + ["--base-url", "hubspot-no-equals"])
    assert bad_url.exit_code == 2 and "CONNECTOR=" in bad_url.output

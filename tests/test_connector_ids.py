"""``connector test`` finds its own ids: id extraction from envelopes and casings, parameter matching,
the call order of the resource graph, drift apart from failures, and the sandbox addressing records
under every path that names their collection."""

from __future__ import annotations

import copy
import json

import httpx
import pytest
from click.testing import CliRunner
from support.sandbox import running_sandbox

from engine import check_connector, sample_input
from engine._resource_graph import IdBook, ResourceGraph, Slot, find_id, param_names_collection, path_slots
from engine.http import EgressPolicy, HttpClient
from engine.openapi import import_connector, load_openapi
from switchboard.cli import cli
from runtime import build_executor

SID = {"type": "string", "pattern": "^CH[0-9a-f]{32}$"}


def _op(op_id: str, *, body: dict | None = None, status: str = "200", response: dict | None = None,
        params: list[dict] | None = None) -> dict:
    op: dict = {"operationId": op_id, "parameters": params or [],
                "responses": {status: {"description": "ok", **({"content": {"application/json": {"schema": response}}}
                                                                   if response else {})}}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _path(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


CONVERSATION = {"type": "object", "properties": {"sid": SID, "account_sid": {"type": "string"},
                                                  "friendly_name": {"type": "string"}}}
MESSAGE = {"type": "object", "properties": {"sid": {"type": "string"}, "conversation_sid": {"type": "string"},
                                             "body": {"type": "string"}}}
EMPLOYEE = {"type": "object", "properties": {"employeeID": {"type": "string", "format": "uuid"},
                                              "firstName": {"type": "string"}}, "required": ["firstName"]}
ENVELOPE = {"type": "object", "properties": {"pagination": {"type": "object"}, "problem": {"type": "object"},
                                              "employee": EMPLOYEE}}
SUMMARY = {"type": "object", "properties": {"employeeID": {"type": "string"}, "days": {"type": "integer"}}}

# Twilio's sid-named records, nested under a differently named parameter, and Xero's envelopes.
DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "Ids", "version": "1"},
    "servers": [{"url": "https://ids.example.com"}],
    "paths": {
        "/Conversations": {
            "post": _op("CreateConversation", status="201", response=CONVERSATION,
                        body={"type": "object", "properties": {"friendly_name": {"type": "string"}}}),
            "get": _op("ListConversation", response={"type": "object", "properties": {
                "conversations": {"type": "array", "items": CONVERSATION},
                "meta": {"type": "object", "properties": {"key": {"type": "string"}}}}}),
        },
        "/Conversations/{Sid}": {
            "get": _op("FetchConversation", response=CONVERSATION, params=[_path("Sid", SID)]),
            "delete": _op("DeleteConversation", status="204", params=[_path("Sid", SID)]),
        },
        "/Conversations/{ConversationSid}/Messages": {
            "post": _op("CreateMessage", status="201", response=MESSAGE, params=[_path("ConversationSid", SID)],
                        body={"type": "object", "properties": {"body": {"type": "string"}}}),
            "get": _op("ListMessage", params=[_path("ConversationSid", SID)], response={"type": "object", "properties": {
                "messages": {"type": "array", "items": MESSAGE}}}),
        },
        "/Conversations/{ConversationSid}/Messages/{Sid}": {
            "get": _op("FetchMessage", response=MESSAGE, params=[_path("ConversationSid", SID), _path("Sid")]),
            "delete": _op("DeleteMessage", status="204", params=[_path("ConversationSid", SID), _path("Sid")]),
        },
        "/Employees": {
            "post": _op("CreateEmployee", response=ENVELOPE, body=EMPLOYEE),
            "get": _op("GetEmployees", response={"type": "object", "properties": {
                "pagination": {"type": "object"}, "employees": {"type": "array", "items": EMPLOYEE}}}),
        },
        "/Employees/{EmployeeID}": {
            "get": _op("GetEmployee", response=ENVELOPE, params=[_path("EmployeeID", {"type": "string", "format": "uuid"})]),
        },
        "/Summaries/{EmployeeID}": {
            "get": _op("GetSummary", response=SUMMARY, params=[_path("EmployeeID", {"type": "string", "format": "uuid"})]),
        },
    },
}


@pytest.fixture(scope="module")
def document():
    return load_openapi(copy.deepcopy(DOCUMENT))


@pytest.fixture(scope="module")
def connector(document):
    return import_connector(document, connector_id="ids").connector


async def _check(connector, base_url: str):
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    try:
        executor = build_executor({connector.id: connector}, http, credentials=None, base_urls={connector.id: base_url})
        return await check_connector(connector, executor)
    finally:
        await http.aclose()


# -- id extraction and parameter matching ------------------------------------------------------------

@pytest.mark.parametrize("body, hints, name, expected", [
    # Xero: the record in an envelope beside paging and error members, its id named after the parameter
    ({"pagination": {"page": 1}, "problem": None, "employee": {"payrollCalendarID": "p1", "employeeID": "e1"}},
     ("EmployeeID",), "Employees", ("e1", "/employee/employeeID")),
    # Twilio: a list whose envelope's meta carries a ``key`` that is not an id
    ({"meta": {"key": "conversations"}, "conversations": [{"account_sid": "AC1", "sid": "CH1"}]},
     ("Sid", "ConversationSid"), "Conversations", ("CH1", "/conversations/0/sid")),
    ({"data": {"id": 7, "type": "folder"}}, (), "folders", (7, "/data/id")),
    ({"ID": "c-9", "Name": "x"}, ("id",), "customer", ("c-9", "/ID")),
    ([{"uuid": "u1"}], (), "", ("u1", "/0/uuid")),
    # the only fitting id field named otherwise than the parameter (Xero's statutoryLeaveID)
    ({"statutorySickLeave": {"employeeID": "e1", "leaveTypeID": "l1", "statutoryLeaveID": "s1"}},
     ("StatutorySickLeaveID",), "Sick", ("s1", "/statutorySickLeave/statutoryLeaveID")),
    ({"payRunCalendar": {"payrollCalendarID": "c1", "name": "Weekly"}}, ("PayRunCalendarID",), "PayRunCalendars",
     ("c1", "/payRunCalendar/payrollCalendarID")),
    ({"ok": True, "warning": "none"}, ("channel",), "", None),
    ({"id": ""}, (), "", None),
])
def test_find_id_reads_any_envelope_and_casing(body, hints, name, expected):
    assert find_id(body, hints, name) == expected


@pytest.mark.parametrize("param, collection, names", [
    ("EmployeeID", "Employees", True), ("employee_id", "Employees", True), ("employeeId", "Employees", True),
    ("ConversationSid", "Conversations", True), ("ChatServiceSid", "Services", True), ("category", "Categories", True),
    ("Sid", "Conversations", False), ("id", "Benefits", False), ("scope", "metadata_templates", False),
    ("EmployeeID", "Timesheets", False),
])
def test_parameter_names_a_collection_case_insensitively(param, collection, names):
    assert param_names_collection(param, collection) is names


def test_path_parameters_are_slots_of_collections_whatever_they_are_called():
    assert path_slots("/v1/Conversations/{ConversationSid}/Messages/{Sid}") == [
        Slot("ConversationSid", "/v1/Conversations"), Slot("Sid", "/v1/Conversations/{}/Messages")]
    assert path_slots("/Conversations/{Sid}") == [Slot("Sid", "/Conversations")]


def test_order_creates_parents_first_and_deletes_children_first(connector):
    order = ResourceGraph(connector).order()
    position = {name: order.index(name) for name in connector.actions}
    reads = [n for n in connector.actions if n.startswith(("fetch", "list", "get"))]
    assert position["create_employee"] < position["create_message"]
    assert position["create_conversation"] < position["create_message"] < min(position[n] for n in reads)
    assert max(position[n] for n in reads) < position["delete_message"] < position["delete_conversation"] == len(order) - 1


def test_ids_fill_the_parameters_that_name_their_collection(connector):
    graph = ResourceGraph(connector)
    ids = IdBook(graph)
    ids.remember("/Conversations", {"sid": "CH" + "a" * 32, "account_sid": "AC1"}, "create_conversation", created=True)
    ids.remember("/Employees", {"pagination": {}, "employee": {"employeeID": "4ff1e5cc-9835-40d5-bb18-09fdb118db9c"}},
                 "create_employee", created=True)
    # ConversationSid on /Conversations/{ConversationSid}/Messages, Sid on /Conversations/{Sid}
    assert sample_input("create_message", connector.actions["create_message"], ids)["ConversationSid"] == "CH" + "a" * 32
    assert sample_input("fetch_conversation", connector.actions["fetch_conversation"], ids)["Sid"] == "CH" + "a" * 32
    # a parameter whose own prefix no call creates or lists takes the collection its name names
    assert sample_input("get_summary", connector.actions["get_summary"], ids)["EmployeeID"] == \
        "4ff1e5cc-9835-40d5-bb18-09fdb118db9c"
    # a listed id never replaces a created one
    ids.remember("/Conversations", {"conversations": [{"sid": "CH" + "b" * 32}]}, "list_conversation", created=False)
    assert ids.ids["/Conversations"].value == "CH" + "a" * 32


async def test_a_listed_id_that_does_not_fit_its_parameter_falls_back_to_a_sample_with_a_note(connector):
    from engine._connector_check import _prepare

    ids = IdBook(ResourceGraph(connector))
    ids.remember("/Employees", {"employees": [{"employeeID": "not-a-uuid"}]}, "get_employees", created=False)
    prepared = _prepare("get_employee", connector.actions["get_employee"], ids)
    assert prepared.value["EmployeeID"] != "not-a-uuid"
    assert prepared.notes and "'not-a-uuid' from get_employees /employees/0/employeeID does not fit" in prepared.notes[0]
    assert "sent a sample" in prepared.notes[0]


# -- against a real sandbox ---------------------------------------------------------------------------

async def test_every_action_passes_with_ids_from_envelopes_and_sids(document, connector):
    with running_sandbox(document) as server:
        report = await _check(connector, server.base_url)
    summary = report.summary()
    assert summary["failed"] == [] and summary["drift"] == [], json.dumps(summary, indent=1)
    assert report.passed == len(connector.actions)


def test_sandbox_finds_a_created_record_under_every_path_that_names_its_collection(document):
    with running_sandbox(document) as server, httpx.Client(base_url=server.base_url) as client:
        sid = client.post("/Conversations", json={"friendly_name": "x"}).json()["sid"]
        assert client.get(f"/Conversations/{sid}").status_code == 200
        created = client.post(f"/Conversations/{sid}/Messages", json={"body": "hi"})
        assert created.status_code == 201 and created.json()["conversation_sid"] == sid
        unknown = "CH" + "0" * 32
        missing = client.post(f"/Conversations/{unknown}/Messages", json={"body": "hi"})
        assert missing.status_code == 404 and unknown in missing.json()["error"]["message"]
        # Xero: the create answers {"employee": {...}}; the id it returns addresses the record
        employee = client.post("/Employees", json={"firstName": "Ada"}).json()
        employee_id = employee["employee"]["employeeID"]
        fetched = client.get(f"/Employees/{employee_id}")
        assert fetched.status_code == 200 and fetched.json()["employee"]["firstName"] == "Ada"


async def test_no_id_is_a_category_that_names_the_failed_create(document, connector):
    # the create of conversations sends a number where the app wants text: refused, children have no id to use
    broken = connector.model_copy(deep=True)
    broken.actions["create_conversation"].body = {"friendly_name": 5}
    with running_sandbox(document) as server:
        report = await _check(broken, server.base_url)
    by_action = {c.action: c for c in report.checks}
    fetch = by_action["fetch_message"]
    assert fetch.outcome == "failed" and fetch.category == "no_id", fetch
    assert fetch.reason.startswith("no id for ConversationSid (/Conversations: create_conversation failed (input_refused))")
    assert by_action["create_conversation"].category == "input_refused" and by_action["create_conversation"].status == 422
    assert report.categories() == {"no_id": 6, "input_refused": 1}, report.summary()["failed"]


# -- drift ---------------------------------------------------------------------------------------------

def _printed(output: str) -> str:
    """What the command printed, without the access log of the sandbox served in this process."""
    return "\n".join(line for line in output.splitlines() if "[uvicorn." not in line and "Shutting down" not in line)


def _drifting(connector):
    """The connector with a documented output the sandbox's answers contradict (an enum, a required member)."""
    changed = connector.model_copy(deep=True)
    changed.actions["fetch_conversation"].output = {
        "type": "object", "required": ["unique_name"],
        "properties": {"friendly_name": {"type": "string", "enum": ["never"]}, "unique_name": {"type": "string"}}}
    return changed


async def test_a_success_that_contradicts_the_output_schema_is_drift_with_pointers_not_failure(document, connector):
    with running_sandbox(document) as server:
        report = await _check(_drifting(connector), server.base_url)
    check = next(c for c in report.checks if c.action == "fetch_conversation")
    assert check.outcome == "drift" and check.status == 200 and check.schema_ok is False
    assert {p["pointer"] for p in check.drift} == {"", "/friendly_name"}
    summary = report.summary()
    assert summary["failed"] == [] and [d["action"] for d in summary["drift"]] == ["fetch_conversation"]
    assert summary["passed"] == len(connector.actions) - 1


def test_cli_reports_drift_beside_failed_and_exits_zero_on_drift_alone(document, connector, tmp_path):
    spec = tmp_path / "ids.json"
    spec.write_text(_drifting(connector).model_dump_json(exclude_none=True))
    with running_sandbox(document) as server:
        as_json = CliRunner().invoke(cli, ["connector", "test", str(spec), "--base-url", server.base_url, "--json"])
        server.sandbox.reset()  # the first run's records would collide with the second's creates
        shown = CliRunner().invoke(cli, ["connector", "test", str(spec), "--base-url", server.base_url])
    assert as_json.exit_code == 0, as_json.output
    printed = json.loads(_printed(as_json.output))
    assert printed["failed"] == [] and printed["categories"] == {}
    assert printed["drift"][0]["action"] == "fetch_conversation"
    assert [p["pointer"] for p in printed["drift"][0]["problems"]] == ["", "/friendly_name"]
    assert shown.exit_code == 0
    lines = _printed(shown.output).splitlines()
    assert lines[0] == f"ids: {len(connector.actions)} actions: {len(connector.actions) - 1} passed, 1 drift, 0 failed"
    assert any(line.startswith("drift:") for line in lines) and "fetch_conversation" in shown.output

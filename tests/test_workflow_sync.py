"""The sync step: match by key, create or update, unchanged and skipped records (in-memory apps)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from engine.errors import StepFailed, StepValueError, SyncConfigError
from engine.specs import load_workflow
from engine.workflow import Dependencies, FakeClock, Interpreter, SequentialIds, is_subset
from test_workflow_apps import MemoryApps

HUBSPOT = [
    {"id": "h1", "properties": {"email": "ada@x.test", "firstname": "Ada", "lastname": "Lovelace"}},
    {"id": "h2", "properties": {"email": "grace@x.test", "firstname": "Grace", "lastname": "Hopper"}},
    {"id": "h3", "properties": {"email": "alan@x.test", "firstname": "Alan", "lastname": "Turing"}},
    {"id": "h4", "properties": {"firstname": "No", "lastname": "Email"}},
    {"id": "h5", "properties": {"email": " Alan@X.test ", "firstname": "Alan", "lastname": "Turing"}},
]
CIN7 = [
    {"ID": "c-1", "Name": "Ada L", "Status": "Active", "Contacts": [{"Name": "Ada L", "Email": "ADA@x.test"}]},
    {"ID": "c-2", "Name": "Grace Hopper", "Status": "Active", "Contacts": [
        {"Name": "Grace Hopper", "Email": "grace@x.test", "Phone": "555"},
        {"Name": "Billing", "Email": "billing@navy.test"}]},
]
FLAGSHIP = {
    "id": "hubspot-contacts-to-cin7",
    "steps": [
        {"id": "contacts", "action": "hubspot.list_contacts"},
        {"id": "sync_customers", "sync": {
            "source": "{{ steps.contacts.items }}",
            "target": {"list": "cin7.list_customers", "create": "cin7.create_customers",
                       "update": "cin7.update_customers",
                       "update_input": {"id": "{{ target.ID }}", "body": "{{ fields }}"}},
            "match": {"source": "properties.email", "target": "Contacts.Email"},
            "map": {
                "Name": "{{ source.properties.firstname & ' ' & source.properties.lastname }}",
                "Contacts": [{"Name": "{{ source.properties.firstname & ' ' & source.properties.lastname }}",
                              "Email": "{{ $lowercase($trim(source.properties.email)) }}"}],
            },
        }},
    ],
}


def apps_with(hubspot: list[dict], cin7: list[dict], **cin7_options: Any) -> MemoryApps:
    apps = MemoryApps()
    apps.crm("hubspot", "contacts", records=hubspot)
    apps.crm("cin7", "customers", records=cin7, id_field="ID", **cin7_options)
    return apps


async def run(spec: dict, apps: MemoryApps, input: Any = None):
    deps = Dependencies(invoker=apps, clock=FakeClock(), ids=SequentialIds(), random=random.Random(1))
    return await Interpreter(deps).run(load_workflow(spec), input)


async def test_flagship_sync_creates_updates_skips_and_then_changes_nothing() -> None:
    apps = apps_with(HUBSPOT, CIN7)
    result = await run(FLAGSHIP, apps)
    assert result.status == "succeeded", result.error
    assert result.output == {
        "created": 1, "updated": 1, "unchanged": 2,
        "skipped": [{"index": 3, "reason": "no match key"}],
        "results": [
            {"index": 0, "key": "ada@x.test", "op": "updated", "target_id": "c-1"},
            {"index": 1, "key": "grace@x.test", "op": "unchanged", "target_id": "c-2"},
            {"index": 2, "key": "alan@x.test", "op": "created", "target_id": "customers-3"},
            {"index": 3, "key": None, "op": "skipped"},
            # the duplicate (other case, spaces) matches the record the sync just created
            {"index": 4, "key": " Alan@X.test ", "op": "unchanged", "target_id": "customers-3"},
        ],
    }
    assert apps.collections["cin7.customers"] == [
        {"ID": "c-1", "Name": "Ada Lovelace", "Status": "Active",
         "Contacts": [{"Name": "Ada Lovelace", "Email": "ada@x.test"}]},
        CIN7[1],
        {"ID": "customers-3", "Name": "Alan Turing", "Contacts": [{"Name": "Alan Turing", "Email": "alan@x.test"}]},
    ]
    [update] = apps.actions("cin7.update_customers")
    assert update.input["id"] == "c-1" and update.step_path == "sync_customers/update/0"
    [create] = apps.actions("cin7.create_customers")
    assert create.step_path == "sync_customers/create/2"
    assert create.input == {"body": {"Name": "Alan Turing",
                                     "Contacts": [{"Name": "Alan Turing", "Email": "alan@x.test"}]}}
    [listing] = apps.actions("cin7.list_customers")
    assert listing.paginate is True and listing.step_path == "sync_customers/list"

    before = copy.deepcopy(apps.collections["cin7.customers"])
    again = await run(FLAGSHIP, apps)
    assert (again.output["created"], again.output["updated"], again.output["unchanged"]) == (0, 0, 4)
    assert apps.collections["cin7.customers"] == before
    assert len(apps.actions("cin7.create_customers")) == 1 and len(apps.actions("cin7.update_customers")) == 1


async def test_case_sensitive_match_creates_instead() -> None:
    spec = copy.deepcopy(FLAGSHIP)
    spec["steps"][1]["sync"]["match"]["case_sensitive"] = True
    apps = apps_with(HUBSPOT[:1], CIN7)
    result = await run(spec, apps)
    assert result.output["results"] == [{"index": 0, "key": "ada@x.test", "op": "created", "target_id": "customers-3"}]


async def test_skip_unchanged_off_updates_matching_records() -> None:
    spec = copy.deepcopy(FLAGSHIP)
    spec["steps"][1]["sync"]["skip_unchanged"] = False
    apps = apps_with(HUBSPOT[1:2], CIN7)
    result = await run(spec, apps)
    assert result.output["updated"] == 1 and result.output["unchanged"] == 0


def simple_sync(**target: Any) -> dict:
    return {"id": "s", "input": {"type": "object"}, "steps": [{"id": "sync", "sync": {
        "source": "{{ input.people }}", "target": {"list": "crm.list_people", **target},
        "match": {"source": "email", "target": "email"},
        "map": {"email": "{{ source.email }}", "name": "{{ source.name }}"},
    }}]}


@pytest.mark.parametrize("shape", [
    lambda items: items,                                   # a plain list
    lambda items: {"total": len(items), "people": items},  # one list-valued property
    lambda items: {"items": items, "pages": 1},            # a paginated result
])
async def test_list_results_the_sync_understands(shape) -> None:
    apps = MemoryApps()
    apps.crm("crm", "people", records=[{"id": "p1", "email": "a@x.test", "name": "A"}], list_shape=shape)
    result = await run(simple_sync(create="crm.create_people"), apps,
                       {"people": [{"email": "a@x.test", "name": "A"}, {"email": "b@x.test", "name": "B"}]})
    assert [r["op"] for r in result.output["results"]] == ["unchanged", "created"]


async def test_list_result_without_one_list_is_a_config_error() -> None:
    apps = MemoryApps()
    apps.crm("crm", "people", list_shape=lambda items: {"people": items, "others": []})
    result = await run(simple_sync(create="crm.create_people"), apps, {"people": [{"email": "a@x.test"}]})
    assert isinstance(result.error, SyncConfigError) and result.error.step_id == "sync"
    assert "crm.list_people" in str(result.error) and "['people', 'others']" in str(result.error)


async def test_missing_create_or_update_is_a_config_error_only_when_needed() -> None:
    apps = MemoryApps()
    apps.crm("crm", "people", records=[{"id": "p1", "email": "a@x.test", "name": "A"}])
    # nothing to create or update: no action needed
    ok = await run(simple_sync(), apps, {"people": [{"email": "a@x.test", "name": "A"}]})
    assert ok.status == "succeeded" and ok.output["unchanged"] == 1
    needs_create = await run(simple_sync(update="crm.update_people"), apps, {"people": [{"email": "new@x.test"}]})
    assert isinstance(needs_create.error, SyncConfigError) and "target.create" in str(needs_create.error)
    needs_update = await run(simple_sync(create="crm.create_people"), apps,
                             {"people": [{"email": "a@x.test", "name": "Z"}]})
    assert isinstance(needs_update.error, SyncConfigError) and "target.update" in str(needs_update.error)
    assert needs_update.error.http_status == 422 and needs_update.error.run_id == "run-1"


async def test_bad_action_name_source_and_failing_write() -> None:
    apps = MemoryApps()
    apps.crm("crm", "people")
    bad_name = simple_sync()
    bad_name["steps"][0]["sync"]["target"]["list"] = "nodot"
    assert isinstance((await run(bad_name, apps, {"people": []})).error, SyncConfigError)
    bad_source = await run(simple_sync(), apps, {"people": "everyone"})
    assert isinstance(bad_source.error, StepValueError) and bad_source.error.pointer == "/steps/0/sync/source"
    failing = await run(simple_sync(create="crm.create_nothing"), apps, {"people": [{"email": "a@x.test"}]})
    assert isinstance(failing.error, StepFailed) and failing.error.action == "crm.create_nothing"
    assert failing.error.step_path == "sync/create/0"


async def test_numeric_keys_and_list_source_keys() -> None:
    apps = MemoryApps()
    apps.crm("crm", "people", records=[{"id": "p1", "code": 7, "name": "A"}, {"id": "p2", "code": "x1", "name": "B"}])
    spec = simple_sync(create="crm.create_people", update="crm.update_people",
                       update_input={"id": "{{ target.id }}", "body": "{{ fields }}"})
    spec["steps"][0]["sync"]["match"] = {"source": "codes", "target": "code"}
    spec["steps"][0]["sync"]["map"] = {"name": "{{ source.name }}"}
    result = await run(spec, apps, {"people": [{"codes": [7.0], "name": "A"}, {"codes": ["", "X1"], "name": "B2"},
                                               {"codes": [], "name": "C"}]})
    assert [(r["op"], r.get("target_id")) for r in result.output["results"]] == [
        ("unchanged", "p1"), ("updated", "p2"), ("skipped", None)]
    assert apps.collections["crm.people"][1] == {"id": "p2", "code": "x1", "name": "B2"}


@pytest.mark.parametrize("fields, target, expected", [
    ({"a": 1}, {"a": 1, "b": 2}, True),
    ({"a": 1}, {"a": 2}, False),
    ({"a": None}, {"b": 1}, True),
    ({"a": {"b": [1, {"c": 2}]}}, {"a": {"b": [1, {"c": 2, "d": 3}, 4]}}, True),
    ({"a": [1, 2]}, {"a": [1]}, False),
    ({"a": [{"x": 1}]}, {"a": [{"x": 2}]}, False),
    ({"a": True}, {"a": 1}, False),
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": 1}, None, False),
    ("x", "x", True),
])
def test_is_subset(fields: Any, target: Any, expected: bool) -> None:
    assert is_subset(fields, target) is expected

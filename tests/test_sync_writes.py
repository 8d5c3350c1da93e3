"""Sync against apps that answer writes in envelopes, and against lists cut short (real sandboxes)."""

from __future__ import annotations

import httpx

from engine.http import EgressPolicy, HttpClient
from engine.specs import load_connectors_dir, load_workflow
from engine.workflow import Dependencies, FakeClock, Interpreter, SequentialIds
from support.sandbox import running_sandbox
from runtime import build_executor
from test_flagship import CONNECTORS, WORKFLOW, contact


async def run(workflow, hubspot, cin7, input_=None):
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    try:
        executor = build_executor(load_connectors_dir(CONNECTORS), http, credentials=None,
                                  base_urls={"hubspot": hubspot.base_url, "cin7": cin7.base_url})
        return await Interpreter(Dependencies(invoker=executor, clock=FakeClock(), ids=SequentialIds("r"))).run(workflow, input_ or {})
    finally:
        await http.aclose()


async def test_two_contacts_with_one_email_make_one_customer_in_one_run():
    # The second contact matches the customer the first one created; Cin7 answers the create
    # with a {"CustomerList": [...]} envelope, and the update must still carry the new ID.
    seed = {"/crm/v3/objects/contacts": [contact("1", email="alan@x.test", firstname="Alan", lastname="Turing", phone="1"),
                                         contact("2", email=" Alan@X.test ", firstname="Alan", lastname="Turing", phone="2")]}
    with running_sandbox("hubspot-crm-contacts-v3.json", seed=seed) as hubspot, running_sandbox("cin7-core-v2-subset.yaml") as cin7:
        result = await run(load_workflow(WORKFLOW), hubspot, cin7)
        assert result.succeeded, result.error
        assert result.output == {"created": 1, "updated": 1, "unchanged": 0, "skipped": 0}
        customers = httpx.get(cin7.admin_url + "/state").json()["collections"]["/customer"]
        assert [c["Name"] for c in customers] == ["Alan Turing"]
        # Two sources for one target take turns on each run (here: the phone); nothing is created again.
        again = await run(load_workflow(WORKFLOW), hubspot, cin7)
        assert again.output["created"] == 0 and len(httpx.get(cin7.admin_url + "/state").json()["collections"]["/customer"]) == 1


async def test_a_target_list_cut_short_by_max_pages_fails_instead_of_duplicating():
    spec = load_workflow(WORKFLOW).model_dump(by_alias=True, exclude_none=True)
    spec["steps"][1]["sync"]["target"]["list_input"] = {"Limit": 1}
    workflow = load_workflow(spec)
    connectors_dir = CONNECTORS
    seed = {"/customer": [{"Name": f"C{i}", "Currency": "USD", "Contacts": [{"Email": f"c{i}@x.test"}]} for i in range(3)]}
    with running_sandbox("hubspot-crm-contacts-v3.json", seed={"/crm/v3/objects/contacts": [contact("9", email="c2@x.test")]}) as hubspot, \
            running_sandbox("cin7-core-v2-subset.yaml", seed=seed) as cin7:
        connectors = load_connectors_dir(connectors_dir)
        connectors["cin7"].actions["list_customers"].pagination.max_pages = 2
        http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
        try:
            executor = build_executor(connectors, http, credentials=None, base_urls={"hubspot": hubspot.base_url, "cin7": cin7.base_url})
            result = await Interpreter(Dependencies(invoker=executor, clock=FakeClock())).run(workflow, {})
        finally:
            await http.aclose()
        assert not result.succeeded and result.error.code == "sync_config_invalid" and "page limit" in str(result.error)
        assert len(httpx.get(cin7.admin_url + "/state").json()["collections"]["/customer"]) == 3  # nothing created

"""The platform's own Integration Agent (``agents.build_graph``, offline model) through the threads
API over real HTTP: the flagship prompt streams its tool calls and stops at the review interrupt,
an answer the graph cannot read leaves the review pending, and approval publishes.

The factory is the default one with the repository's OpenAPI documents as the discovery folder
(the platform's own setting for that folder belongs to the agents' tools).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import store
from agents import build_graph
from support.platform import Tenant, app_database, client, make_tenant, running_platform
from support.threads import read_sse
from tools import ToolContext

DOCUMENTS = Path(__file__).resolve().parent / "data" / "openapi"
FLAGSHIP = "Sync HubSpot contacts to Cin7 customers, matching by email"
WORKFLOW = "hubspot-contacts-to-cin7-customers"


def platform_graphs(name: str, ctx: ToolContext, checkpointer: Any) -> Any:
    return build_graph(name, dataclasses.replace(ctx, documents=DOCUMENTS), checkpointer=checkpointer)


@pytest.fixture(scope="module")
def http(migrated_database_url: str) -> Iterator[httpx.Client]:
    with running_platform(migrated_database_url, graph_factory=platform_graphs) as (url, _):
        with client(url) as c:
            yield c


@pytest.fixture(scope="module")
def tenant(migrated_database_url: str) -> Tenant:
    with app_database(migrated_database_url) as db:
        return make_tenant(db, "Threads flagship", customers=1)


def events(http: httpx.Client, tenant: Tenant, run: dict[str, Any]) -> list[Any]:
    with http.stream("GET", run["events_url"], headers=tenant.headers()) as response:
        assert response.status_code == 200
        return list(read_sse(response))


def test_the_integration_agent_builds_stops_for_review_and_publishes_on_approval(
    http: httpx.Client, tenant: Tenant, migrated_database_url: str
) -> None:
    h = tenant.headers(tenant.customers[0])
    created = http.post("/v1/threads", headers=h, json={"graph": "integration_agent"})
    assert created.status_code == 201, created.text
    thread = created.json()
    assert thread["customer_id"] == tenant.customers[0]
    run = http.post(f"/v1/threads/{thread['id']}/messages", headers=h, json={"content": FLAGSHIP}).json()
    built = events(http, tenant, run)
    calls = [e.data["name"] for e in built if e.event == "tool_call"]
    assert calls[:3] == ["search_catalog", "find_api_description", "import_api"] and calls[-1] == "request_review"
    results = [e.data for e in built if e.event == "tool_result"]
    assert len(results) == len(calls) and all(r["status"] == "success" for r in results), results
    assert {e.data["counted"] for e in built if e.event == "usage"} == {"offline"}
    assert built[-1].event == "interrupt"
    review = built[-1].data["interrupts"][0]["value"]
    assert review["type"] == "review" and review["workflow"] == WORKFLOW
    assert http.get(f"/v1/threads/{thread['id']}", headers=h).json()["status"] == "interrupted"

    # An answer the review cannot take is refused before any run, and the review stays pending.
    for answer in ({"action": "maybe"}, {"action": "reject"}, {"action": "reject", "comments": " "}, "approve"):
        unreadable = http.post(f"/v1/threads/{thread['id']}/resume", headers=h, json={"resume": answer})
        assert unreadable.status_code == 422 and unreadable.json()["code"] == "review_answer_invalid", unreadable.text
    assert http.get(f"/v1/threads/{thread['id']}", headers=h).json()["status"] == "interrupted"
    assert len(http.get(f"/v1/threads/{thread['id']}/runs", headers=h).json()["items"]) == 1

    approved = http.post(f"/v1/threads/{thread['id']}/resume", headers=h, json={"resume": {"action": "approve"}})
    assert approved.status_code == 202, approved.text
    published = events(http, tenant, approved.json())
    assert published[-1].event == "done" and published[-1].data["status"] == "completed", published[-1]
    assert {"review", "publish"} <= {e.data.get("node") for e in published if e.event == "step"}
    state = http.get(f"/v1/threads/{thread['id']}/state", headers=h).json()
    assert state["values"]["published"]["errors"] == [] and state["next"] == []
    with app_database(migrated_database_url) as db, db.tenant(tenant.org_id) as tx:
        assert store.Workflows(tx).get(tenant.org_id, WORKFLOW)["latest_version"] == 1

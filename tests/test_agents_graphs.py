"""The Integration Agent and the Connector Agent as LangGraph graphs, on a real platform (Postgres,
hosted sandboxes built from the repository's documents), with the offline model.

The flagship is built from the prompt alone: the agent imports HubSpot and Cin7 from the local
documents, tests them on their sandboxes, maps the fields, writes, validates and dry-runs the
workflow and stops for review; approved, it publishes and deploys, and the published workflow,
run for a test customer whose connections target the seeded sandboxes, leaves Cin7 as expected
and changes nothing on a second run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import runtime
import store
from agents import AgentError, GraphUnavailable, UnknownGraph, build_graph
from support.platform import Tenant, make_tenant
from switchboard.app import open_platform
from switchboard.settings import Settings
from test_flagship import BOB_ID, CAROL_ID, CIN7_SEED, HUBSPOT_SEED, ZED_ID
from tools import ToolContext, default_registry

pytestmark = pytest.mark.asyncio(loop_scope="module")

DOCUMENTS = Path(__file__).resolve().parent / "data" / "openapi"
FLAGSHIP = "Sync HubSpot contacts to Cin7 customers, matching by email"
WORKFLOW = "hubspot-contacts-to-cin7-customers"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(migrated_database_url: str) -> AsyncIterator[runtime.Platform]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(database_url=migrated_database_url, data_dir=Path(data_dir))
        async with open_platform(settings) as p:
            yield p


def context(platform: runtime.Platform, tenant: Tenant, **fields: Any) -> ToolContext:
    principal = runtime.authenticate_key(platform.db, tenant.org_id, tenant.key, None)
    return ToolContext(platform, principal, **({"customer_id": tenant.customers[0], "thread_id": "thr_graph",
                                                "documents": DOCUMENTS} | fields))


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 200}


def tool_calls(messages: list[Any]) -> list[str]:
    return [c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]


def errors(messages: list[Any]) -> list[str]:
    return [m.content for m in messages if isinstance(m, ToolMessage) and m.status == "error"]


async def build_to_review(graph: Any, thread: str, prompt: str = FLAGSHIP) -> dict[str, Any]:
    state = await graph.ainvoke({"messages": [{"role": "user", "content": prompt}]}, config(thread))
    assert "__interrupt__" in state, state["messages"][-1].content
    return state


async def test_unknown_and_unbuilt_graphs_are_refused(platform: runtime.Platform, db: store.Database) -> None:
    ctx = context(platform, make_tenant(db, "Graphs none", customers=1))
    with pytest.raises(UnknownGraph) as unknown:
        build_graph("nope", ctx)
    assert unknown.value.code == "unknown_graph" and unknown.value.http_status == 404
    with pytest.raises(GraphUnavailable) as unbuilt:
        build_graph("home", ctx)
    assert isinstance(unbuilt.value, AgentError) and "home" in str(unbuilt.value)


async def test_the_flagship_is_built_reviewed_published_and_runs(platform: runtime.Platform, db: store.Database) -> None:
    tenant = make_tenant(db, "Graphs flagship", customers=1)
    ctx = context(platform, tenant)
    graph = build_graph("integration_agent", ctx, checkpointer=InMemorySaver())
    state = await build_to_review(graph, "flagship")
    calls = tool_calls(state["messages"])
    assert calls == ["search_catalog", "find_api_description", "import_api", "test_connector", "validate_connector",
                     "search_catalog", "find_api_description", "import_api", "test_connector", "validate_connector",
                     "propose_mapping", "write_workflow_draft", "validate_workflow", "dry_run_workflow",
                     "request_review"], calls
    assert errors(state["messages"]) == []
    (pending,) = state["__interrupt__"]
    review = pending.value
    assert review["type"] == "review" and review["workflow"] == WORKFLOW and review["valid"] is True
    assert review["first_version"] and review["diff"] and review["dry_run"]["status"] == "completed"
    assert "match: properties.email = Contacts.Email" in review["summary"], review["summary"]
    # Nothing is published before the builder answers.
    with db.tenant(tenant.org_id) as tx:
        assert store.Workflows(tx).get(tenant.org_id, WORKFLOW)["latest_version"] is None

    done = await graph.ainvoke(Command(resume={"action": "approve"}), config("flagship"))
    published = {(p["kind"], p["key"]): p for p in done["published"]["published"]}
    assert done["published"]["errors"] == []
    assert published[("workflow", WORKFLOW)]["version"] == 1 and published[("workflow", WORKFLOW)]["deployed_to"]
    assert {("connector", "hubspot"), ("connector", "cin7")} <= set(published)

    # The test customer's connections target the seeded hosted sandboxes; the published version runs.
    customer = tenant.customers[0]
    principal = ctx.principal
    for key, seed in (("hubspot", HUBSPOT_SEED), ("cin7", CIN7_SEED)):
        await platform.sandboxes.seed(principal, key, seed)
        with platform.db.tenant(tenant.org_id) as tx:
            runtime.create_connection(tx, tenant.org_id, customer, key, name=key, auth=None,
                                      encryptor=platform.encryptor, target="sandbox")
    outputs = []
    for _ in range(2):
        started = await platform.runs.start(principal, WORKFLOW, customer_id=customer, input={"currency": "GBP"},
                                            inline=True)
        assert started.execution["status"] == "completed", started.execution
        outputs.append(started.execution["output"])
    # Bob and Carol are matched by email and updated (the agent's map replaces a customer's Contacts
    # with the synced contact, unlike the hand-written example that keeps the others).
    assert outputs[0] == {"created": 2, "updated": 2, "unchanged": 0, "skipped": 1}, outputs[0]
    assert outputs[1] == {"created": 0, "updated": 0, "unchanged": 4, "skipped": 1}, outputs[1]
    customers = {c["Name"]: c for c in (await platform.sandboxes.state(principal, "cin7"))["collections"]["/customer"]}
    assert set(customers) == {"Ada Lovelace", "Bob Builder", "Carol Jones", "Dan Brown", "Zed Unrelated"}
    assert customers["Bob Builder"]["ID"] == BOB_ID and customers["Bob Builder"]["Currency"] == "NZD"
    assert customers["Carol Jones"]["ID"] == CAROL_ID and customers["Zed Unrelated"]["ID"] == ZED_ID
    assert customers["Ada Lovelace"]["Currency"] == "GBP"
    assert customers["Ada Lovelace"]["Contacts"][0]["Email"] == "ada@example.com"


async def test_a_rejection_is_acted_on_or_answered_with_what_it_cannot_do(platform: runtime.Platform,
                                                                        db: store.Database) -> None:
    tenant = make_tenant(db, "Graphs reject", customers=1)
    ctx = context(platform, tenant)
    graph = build_graph("integration_agent", ctx, checkpointer=InMemorySaver())
    await build_to_review(graph, "reject")

    state = await graph.ainvoke(Command(resume={"action": "reject", "comments": "Set Currency to GBP. Run every hour."}),
                                config("reject"))
    (pending,) = state["__interrupt__"]
    calls = tool_calls(state["messages"])
    assert calls[-4:] == ["patch_workflow_draft", "validate_workflow", "dry_run_workflow", "request_review"], calls
    with db.tenant(tenant.org_id) as tx:
        draft = store.Workflows(tx).get(tenant.org_id, WORKFLOW)["draft"]
    assert draft["trigger"] == {"kind": "schedule", "cron": "0 * * * *"}
    assert draft["steps"][1]["sync"]["map"]["Currency"] == "GBP"
    assert "currency" not in ((draft.get("input") or {}).get("properties") or {}), draft.get("input")
    assert "changed after review" in pending.value["summary"]

    again = await graph.ainvoke(Command(resume={"action": "reject", "comments": "Translate the names to French"}),
                                config("reject"))
    (pending,) = again["__interrupt__"]
    assert "cannot act on these comments" in pending.value["summary"]
    assert "Translate the names to French" in pending.value["summary"]
    assert tool_calls(again["messages"])[-1] == "request_review"
    with pytest.raises(AgentError):
        await graph.ainvoke(Command(resume={"action": "maybe"}), config("reject"))


async def test_prompts_of_other_shapes_get_a_clear_refusal(platform: runtime.Platform, db: store.Database) -> None:
    graph = build_graph("integration_agent", context(platform, make_tenant(db, "Graphs refuse", customers=1)))
    state = await graph.ainvoke({"messages": [{"role": "user", "content": "Write me a poem about integrations"}]})
    final = state["messages"][-1].content
    assert final.startswith("offline planner: cannot do this") and "handles:" in final
    assert tool_calls(state["messages"]) == []


async def test_a_tool_error_reaches_the_model_as_a_tool_message(platform: runtime.Platform, db: store.Database) -> None:
    # A Viewer may search but not import: the refusal is a tool message, and the run ends with a report.
    tenant = make_tenant(db, "Graphs viewer", customers=1)
    from switchboard import bootstrap

    _, key = bootstrap.create_api_key(db, tenant.org_id, "viewer", role_id="viewer")
    principal = runtime.authenticate_key(platform.db, tenant.org_id, key, None)
    ctx = ToolContext(platform, principal, customer_id=tenant.customers[0], documents=DOCUMENTS)
    graph = build_graph("connector_agent", ctx)
    state = await graph.ainvoke({"messages": [{"role": "user", "content": "Build a connector for Cin7"}]})
    failed = [m for m in state["messages"] if isinstance(m, ToolMessage) and m.status == "error"]
    assert failed and json.loads(failed[0].content)["error"]["code"] == "forbidden"
    assert state["report"]["connector"] is None and state["report"]["errors"][0]["tool"] == "import_api"
    assert "error in import_api" in state["messages"][-1].content

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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import runtime
import store
from agents import GRAPHS, AgentError, GraphUnavailable, ModelSetting, UnknownGraph, build_graph, review_answer
from support.fake_openai import FakeOpenAI, Reply, ScriptedCall
from support.platform import Tenant, make_tenant
from support.servers import serve_app
from switchboard.app import open_platform
from switchboard.settings import Settings
from test_flagship import BOB_ID, CAROL_ID, CIN7_SEED, EXPECTED, HUBSPOT_SEED, ZED_ID
from tools import ToolContext, default_registry

pytestmark = pytest.mark.asyncio(loop_scope="module")

DOCUMENTS = Path(__file__).resolve().parent / "data" / "openapi"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hubspot-contacts-to-cin7.yaml"
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
    # Every graph of GRAPHS is built now (GraphUnavailable stays for a table without a row).
    for name in GRAPHS:
        assert build_graph(name, ctx).name == name
    assert issubclass(GraphUnavailable, AgentError) and GraphUnavailable.code == "graph_unavailable"


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
    # Bob is matched by email (in another case) and updated; Carol already holds what the map gives.
    assert outputs[0] == {"created": 2, "updated": 1, "unchanged": 1, "skipped": 1}, outputs[0]
    assert outputs[1] == {"created": 0, "updated": 0, "unchanged": 4, "skipped": 1}, outputs[1]
    customers = {c["Name"]: c for c in (await platform.sandboxes.state(principal, "cin7"))["collections"]["/customer"]}
    assert set(customers) == {"Ada Lovelace", "Bob Builder", "Carol Jones", "Dan Brown", "Zed Unrelated"}
    assert customers["Bob Builder"]["ID"] == BOB_ID and customers["Bob Builder"]["Currency"] == "NZD"
    assert customers["Carol Jones"]["ID"] == CAROL_ID and customers["Zed Unrelated"]["ID"] == ZED_ID
    assert customers["Ada Lovelace"]["Currency"] == "GBP"
    assert customers["Ada Lovelace"]["Contacts"] == [{"Email": "ada@example.com", "Phone": "+44 1"}]
    # Carol's other contact is kept; Bob's contact is updated in place, keeping its name.
    assert customers["Carol Jones"]["Contacts"] == CIN7_SEED["/customer"][1]["Contacts"]
    assert customers["Bob Builder"]["Contacts"] == [{"Name": "Robert Old", "Email": " Bob@Example.COM", "Phone": "+1 2"}]


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
    with pytest.raises(AgentError) as bad:
        review_answer({"action": "maybe"})
    assert bad.value.code == "review_answer_invalid" and bad.value.http_status == 422
    # An answer that is not one is asked again, saying why; approved, the patched draft is published.
    asked = await graph.ainvoke(Command(resume={"action": "maybe"}), config("reject"))
    (pending,) = asked["__interrupt__"]
    assert "not \"{'action': 'maybe'}\"" in pending.value["problem"] and pending.value["workflow"] == WORKFLOW
    done = await graph.ainvoke(Command(resume={"action": "approve"}), config("reject"))
    assert done["published"]["errors"] == [], done["published"]
    with db.tenant(tenant.org_id) as tx:
        published = store.Workflows(tx).version(tenant.org_id, WORKFLOW, 1)["spec"]
    assert published["trigger"] == {"kind": "schedule", "cron": "0 * * * *"}


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


# -- the same flagship through a real-model path: the fake OpenAI-compatible server ---------------

@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    server = FakeOpenAI()
    with serve_app(server.app) as url:
        yield server, url


def flagship_script(bad_call: bool = True) -> list[Reply]:
    """What a tool-calling model does for the flagship: import both apps, write the example
    workflow, validate it (once with a wrong key: the error comes back as a tool message), dry-run
    it and ask for review."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    calls = [
        ScriptedCall("search_catalog", {"query": "HubSpot contacts Cin7 customers"}, id="call_search"),
        ScriptedCall("import_api", {"document": "hubspot-crm-contacts-v3.json", "connector_id": "hubspot"}, id="call_hs"),
        ScriptedCall("import_api", {"document": "cin7-core-v2-subset.yaml", "connector_id": "cin7"}, id="call_cin7"),
        ScriptedCall("write_workflow_draft", {"spec": spec}, id="call_write"),
        ScriptedCall("validate_workflow", {"workflow": "no-such-workflow"}, id="call_bad"),
        ScriptedCall("validate_workflow", {"workflow": WORKFLOW}, id="call_validate"),
        ScriptedCall("dry_run_workflow", {"workflow": WORKFLOW, "input": {"currency": "GBP"}}, id="call_dry"),
        ScriptedCall("request_review", {"kind": "workflow", "key": WORKFLOW,
                                        "summary": "HubSpot contacts synced into Cin7 customers by email"}, id="call_review"),
    ]
    return [Reply(tool_calls=(call,), prompt_tokens=100 + n, completion_tokens=20) for n, call in enumerate(calls)
            if bad_call or call.id != "call_bad"]


@pytest.mark.parametrize("path", ["openai", "litellm"])
async def test_the_flagship_through_the_fake_openai_server(path: str, fake: tuple[FakeOpenAI, str],
                                                          platform: runtime.Platform, db: store.Database) -> None:
    server, url = fake
    server.replies.clear()
    server.requests.clear()
    server.enqueue(*flagship_script())
    tenant = make_tenant(db, f"Graphs {path}", customers=1)
    ctx = context(platform, tenant)
    setting = {"openai": "openai:fake-gpt", "litellm": "litellm:openai/fake-gpt"}[path]
    model = ModelSetting.parse(setting, base_url=f"{url}/v1", api_key="sk-fake", max_retries=0)
    graph = build_graph("integration_agent", ctx, model=model, checkpointer=InMemorySaver())

    chunks = 0
    async for mode, item in graph.astream({"messages": [{"role": "user", "content": FLAGSHIP}]}, config(path),
                                          stream_mode=["messages", "updates"]):
        chunks += mode == "messages"
    state = await graph.aget_state(config(path))
    (pending,) = state.interrupts
    assert pending.value["workflow"] == WORKFLOW and pending.value["valid"] and pending.value["dry_run"]["status"] == "completed"
    assert chunks > len(server.requests)  # streamed: each answer came in several chunks
    messages = state.values["messages"]
    answers = [m for m in messages if isinstance(m, AIMessage)]
    assert all(m.usage_metadata and m.usage_metadata["total_tokens"] > 0 for m in answers)
    # The wrong key came back to the model as an error tool message, and the run went on.
    (bad,) = [m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id == "call_bad"]
    assert bad.status == "error" and json.loads(bad.content)["error"]["code"] == "not_found"
    sent = server.requests[5]["messages"]
    assert any(m["role"] == "tool" and m["tool_call_id"] == "call_bad" and "not_found" in m["content"] for m in sent)
    first = server.requests[0]
    assert first["messages"][0]["role"] == "system" and "Integration Agent" in first["messages"][0]["content"]
    assert len(first["tools"]) == len(default_registry())

    done = await graph.ainvoke(Command(resume={"action": "approve"}), config(path))
    assert done["published"]["errors"] == [] and len(server.requests) == 8  # publishing takes no model call
    assert {(p["kind"], p["key"]) for p in done["published"]["published"]} == {
        ("connector", "hubspot"), ("connector", "cin7"), ("workflow", WORKFLOW)}

    customer = tenant.customers[0]
    for key, seed in (("hubspot", HUBSPOT_SEED), ("cin7", CIN7_SEED)):
        await platform.sandboxes.seed(ctx.principal, key, seed)
        with platform.db.tenant(tenant.org_id) as tx:
            runtime.create_connection(tx, tenant.org_id, customer, key, name=key, auth=None,
                                      encryptor=platform.encryptor, target="sandbox")
    outputs = []
    for _ in range(2):
        started = await platform.runs.start(ctx.principal, WORKFLOW, customer_id=customer,
                                            input={"currency": "GBP", "page_size": 2}, inline=True)
        assert started.execution["status"] == "completed", started.execution
        outputs.append(started.execution["output"])
    assert outputs == [{"created": 2, "updated": 1, "unchanged": 1, "skipped": 1},
                       {"created": 0, "updated": 0, "unchanged": 4, "skipped": 1}], outputs
    customers = {c["Name"]: c for c in (await platform.sandboxes.state(ctx.principal, "cin7"))["collections"]["/customer"]}
    assert set(customers) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        assert {k: customers[name].get(k) for k in expected} == expected, name


# -- the other two shapes -----------------------------------------------------------------------

async def test_an_event_prompt_triggers_on_the_connector_event(platform: runtime.Platform, db: store.Database) -> None:
    # The builder has HubSpot with a polling event for new contacts (the document declares none).
    tenant = make_tenant(db, "Graphs event", customers=1)
    ctx = context(platform, tenant)
    registry = default_registry()
    imported = await registry.invoke(ctx, "import_api", {"document": "hubspot-crm-contacts-v3.json", "connector_id": "hubspot"})
    assert "error" not in imported, imported
    event = {"kind": "polling", "action": "list_contacts", "key": "id", "version": "updatedAt", "interval": "5m"}
    patched = await registry.invoke(ctx, "patch_connector_draft", {"connector": "hubspot", "patch": [
        {"op": "add", "path": "/events/contact_created", "value": event}]})
    assert "error" not in patched, patched
    graph = build_graph("integration_agent", ctx, checkpointer=InMemorySaver())
    state = await build_to_review(graph, "event", "When a contact is created in HubSpot, create a customer in Cin7")
    assert tool_calls(state["messages"])[:2] == ["search_catalog", "validate_connector"]  # HubSpot found, not imported
    with db.tenant(tenant.org_id) as tx:
        draft = store.Workflows(tx).get(tenant.org_id, WORKFLOW)["draft"]
    assert draft["trigger"] == {"kind": "app_event", "connector": "hubspot", "event": "contact_created"}
    (step,) = draft["steps"]
    assert step["action"] == "cin7.create_customer"
    assert step["input"]["body"]["Name"] == "{{ $trim($join([trigger.record.properties.firstname, trigger.record.properties.lastname], ' ')) }}"
    assert state["__interrupt__"][0].value["dry_run"]["status"] == "completed"


async def test_a_copy_prompt_copies_only_what_is_missing(platform: runtime.Platform, db: store.Database) -> None:
    tenant = make_tenant(db, "Graphs copy", customers=1)
    graph = build_graph("integration_agent", context(platform, tenant), checkpointer=InMemorySaver())
    state = await build_to_review(graph, "copy", "Every day, copy contacts from HubSpot to Cin7 customers")
    with db.tenant(tenant.org_id) as tx:
        draft = store.Workflows(tx).get(tenant.org_id, WORKFLOW)["draft"]
    sync = draft["steps"][1]["sync"]
    assert draft["trigger"] == {"kind": "schedule", "cron": "0 0 * * *"}
    assert sync["match"] == {"source": "properties.email", "target": "Contacts.Email", "case_sensitive": False}
    assert "update" not in sync["target"] and sync["target"]["create"] == "cin7.create_customer"
    assert "__interrupt__" in state


async def test_a_prompt_the_connectors_cannot_serve_stops_with_the_reason(platform: runtime.Platform,
                                                                         db: store.Database) -> None:
    graph = build_graph("integration_agent", context(platform, make_tenant(db, "Graphs stop", customers=1)))
    state = await graph.ainvoke({"messages": [{"role": "user", "content": "Every day, copy contacts from HubSpot to Cin7"}]})
    final = state["messages"][-1].content.splitlines()
    assert final[0] == "offline planner: stopped" and "__interrupt__" not in state
    assert final[2].startswith("reason: the Cin7 connector 'cin7' has no action to create a contact; its actions: "
                               "create_customer"), final


async def test_the_loop_stops_at_its_bound_with_a_report() -> None:
    from langchain_core.tools import tool
    from langgraph.graph import START, StateGraph

    from agents import OfflineChatModel, Plan, PlanStep
    from agents._loop import AgentState, add_agent_loop

    @tool
    def lookup(query: str) -> str:
        """Look something up (always fails)."""
        raise RuntimeError("the directory is down")

    # A plan that never gets what it wants: it calls lookup again and again.
    model = OfflineChatModel(plan=Plan((PlanStep("lookup", lambda s: {"query": "x"}, done=lambda s: False, attempts=99),)))

    async def prompt(state: AgentState) -> str:
        return "test"

    graph = StateGraph(AgentState)
    add_agent_loop(graph, name="looper", model=model, tools=[lookup], system_prompt=prompt, max_steps=3)
    graph.add_edge(START, "agent")
    state = await graph.compile().ainvoke({"messages": [{"role": "user", "content": FLAGSHIP}]})
    results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    # Two calls ran and failed as tool messages (the exception reached the model, not the caller);
    # the third model call's was answered "not run" and the run ended with the graph's report.
    assert [m.status for m in results] == ["error"] * 3
    assert "the directory is down" in results[0].content and "step_limit" in results[-1].content
    assert state["report"] == {"status": "step_limit", "max_steps": 3, "tool_calls": 2, "succeeded": [],
                               "pending": ["lookup"]}
    assert state["messages"][-1].content.startswith("switchboard graph looper: stopped")


async def test_a_review_resumes_from_a_postgres_checkpoint_in_another_graph(platform: runtime.Platform,
                                                                          db: store.Database, fresh_db: str) -> None:
    # LangGraph's Postgres checkpointer, as threads use it: the state survives serialization, and
    # a graph built afresh (another process, a new context with no approvals) takes the answer.
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    tenant = make_tenant(db, "Graphs postgres", customers=1)
    async with AsyncPostgresSaver.from_conn_string(fresh_db) as saver:
        await saver.setup()
        await build_to_review(build_graph("integration_agent", context(platform, tenant), checkpointer=saver), "pg")
        again = build_graph("integration_agent", context(platform, tenant), checkpointer=saver)
        snapshot = await again.aget_state(config("pg"))
        assert snapshot.next == ("review",) and snapshot.interrupts[0].value["workflow"] == WORKFLOW
        done = await again.ainvoke(Command(resume={"action": "approve"}), config("pg"))
        assert done["published"]["errors"] == [] and done["messages"][-1].content.startswith(
            "switchboard graph integration_agent: published")
        # Publishing again from the same checkpoint (a node re-run) publishes nothing twice.
        await again.aupdate_state(config("pg"), {"review": done["review"]}, as_node="review")
        rerun = await again.ainvoke(None, config("pg"))
    assert [p.get("already") for p in rerun["published"]["published"]] == [True], rerun["published"]
    with db.tenant(tenant.org_id) as tx:
        assert store.Workflows(tx).get(tenant.org_id, WORKFLOW)["latest_version"] == 1
        assert store.Connectors(tx).get(tenant.org_id, "cin7")["published_version"] == 1

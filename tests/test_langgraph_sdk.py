"""The official ``langgraph-sdk`` client against the platform's /v1/langgraph routes, over real
HTTP on 127.0.0.1 with the platform's headers: it searches the assistants (one per graph), creates
a thread, streams a run in the values, updates and messages modes until the review interrupt,
reads the state, resumes with ``command={"resume": ...}`` and sees the run complete. Another
organization's key gets 404s for that thread.

Two graphs run the same path: a small review graph (a fake chat model streaming tokens, an
interrupt, a publish node) that the test serves through ``app.state.graph_factory``, and the real
Integration Agent with the offline model on the flagship prompt.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

import agents
from support.platform import Tenant, app_database, make_tenant
from support.servers import serve_app
from switchboard.app import create_app
from switchboard.settings import Settings
from tools import ToolContext

FLAGSHIP = "Sync HubSpot contacts to Cin7 customers, matching by email"
WORKFLOW = "hubspot-contacts-to-cin7-customers"
DOCUMENTS = Path(__file__).resolve().parent / "data" / "openapi"


class ReviewState(TypedDict, total=False):
    messages: Annotated[list, add_messages]
    review: dict[str, Any]
    published: bool


def nested_graph(checkpointer: Any) -> Any:
    """A graph whose one node is a subgraph (as Home runs the other agents)."""
    inner = StateGraph(ReviewState)
    inner.add_node("answer", lambda state: {"messages": [AIMessage(content="from the subgraph")]})
    inner.add_edge(START, "answer")
    inner.add_edge("answer", END)
    outer = StateGraph(ReviewState)
    outer.add_node("inner", inner.compile())
    outer.add_edge(START, "inner")
    outer.add_edge("inner", END)
    return outer.compile(checkpointer=checkpointer)


def review_graph(name: str, ctx: Any, checkpointer: Any) -> Any:
    """A graph of the shape the agents have: a model call, a review interrupt, publish on approve
    (for ``home``: a graph with a subgraph)."""
    if name == "home":
        return nested_graph(checkpointer)
    model = GenericFakeChatModel(messages=iter([AIMessage(content="I will sync the contacts to customers")]))

    async def plan(state: ReviewState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def review(state: ReviewState) -> dict[str, Any]:
        answer = interrupt({"type": "review", "summary": "sync contacts by email", "workflow": "contacts-sync"})
        return {"review": answer}

    def publish(state: ReviewState) -> dict[str, Any]:
        approved = state["review"].get("action") == "approve"
        return {"published": approved, "messages": [AIMessage(content="published" if approved else "not published")]}

    builder = StateGraph(ReviewState)
    builder.add_node("plan", plan)
    builder.add_node("review", review)
    builder.add_node("publish", publish)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder.compile(checkpointer=checkpointer)


def platform_graphs(name: str, ctx: ToolContext, checkpointer: Any) -> Any:
    """The platform's graphs (offline model), discovering APIs among the repository's documents."""
    return agents.build_graph(name, dataclasses.replace(ctx, documents=DOCUMENTS), checkpointer=checkpointer)


@contextmanager
def serving(database_url: str, factory: Any) -> Iterator[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-langgraph-"))
    try:
        app = create_app(Settings(database_url=database_url, data_dir=data_dir), graph_factory=factory)
        with serve_app(app, lifespan="on") as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def served(migrated_database_url: str) -> Iterator[str]:
    with serving(migrated_database_url, review_graph) as url:
        yield url


@pytest.fixture(scope="module")
def served_agents(migrated_database_url: str) -> Iterator[str]:
    with serving(migrated_database_url, platform_graphs) as url:
        yield url


@pytest.fixture(scope="module")
def tenants(migrated_database_url: str) -> tuple[Tenant, Tenant]:
    with app_database(migrated_database_url) as db:
        return make_tenant(db, "Langgraph A"), make_tenant(db, "Langgraph B")


@pytest.fixture
async def client(served: str, tenants: tuple[Tenant, Tenant]) -> AsyncIterator[Any]:
    async with get_client(url=f"{served}/v1/langgraph", api_key=None, headers=tenants[0].headers()) as c:
        yield c


@pytest.fixture
async def other(served: str, tenants: tuple[Tenant, Tenant]) -> AsyncIterator[Any]:
    async with get_client(url=f"{served}/v1/langgraph", api_key=None, headers=tenants[1].headers()) as c:
        yield c


async def collect(stream: AsyncIterator[Any]) -> list[tuple[str, Any]]:
    return [(part.event, part.data) for part in [p async for p in stream]]


async def test_assistants_are_one_per_graph(client: Any) -> None:
    found = await client.assistants.search()
    assert sorted(a["graph_id"] for a in found) == sorted(agents.GRAPHS)
    assert len({a["assistant_id"] for a in found}) == len(agents.GRAPHS)
    again = await client.assistants.search(graph_id="integration_agent")
    assert [a["assistant_id"] for a in again] == [a["assistant_id"] for a in found if a["graph_id"] == "integration_agent"]
    one = await client.assistants.get(again[0]["assistant_id"])
    assert one["graph_id"] == "integration_agent"
    with pytest.raises(NotFoundError):
        await client.assistants.get("no-such-assistant")


async def test_a_run_streams_to_the_review_interrupt_and_resumes_to_publish(
    client: Any, other: Any, served: str, tenants: tuple[Tenant, Tenant]
) -> None:
    (assistant,) = await client.assistants.search(graph_id="integration_agent")
    thread = await client.threads.create(metadata={"purpose": "sdk test"})
    assert thread["status"] == "idle"

    parts = await collect(client.runs.stream(
        thread["thread_id"], assistant["assistant_id"], input={"messages": [{"role": "user", "content": FLAGSHIP}]},
        stream_mode=["values", "updates", "messages"],
    ))
    events = [event for event, _ in parts]
    assert events[0] == "metadata" and events[-1] == "end", events
    assert {"values", "updates", "messages/metadata", "messages/partial"} <= set(events), events
    # The checkpoint's thread id is namespaced by organization; clients see the thread's own id only.
    assert tenants[0].org_id not in json.dumps(parts)
    # Token chunks accumulate: the last partial is the whole message.
    partials = [data[0]["content"] for event, data in parts if event == "messages/partial"]
    assert len(partials) > 1 and partials[-1] == "I will sync the contacts to customers"
    updates = [data for event, data in parts if event == "updates"]
    assert updates[-1]["__interrupt__"][0]["value"]["type"] == "review"
    last_values = [data for event, data in parts if event == "values"][-1]
    assert last_values["__interrupt__"][0]["value"]["workflow"] == "contacts-sync"
    assert [m["type"] for m in last_values["messages"]] == ["human", "ai"]

    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["review"]
    assert state["tasks"][0]["interrupts"][0]["value"]["type"] == "review"
    assert state["interrupts"][0]["value"]["summary"] == "sync contacts by email"
    assert state["checkpoint"]["thread_id"] == thread["thread_id"] and tenants[0].org_id not in json.dumps(state)
    got = await client.threads.get(thread["thread_id"])
    assert got["status"] == "interrupted"
    # It is the platform's thread and run: /v1/threads shows the run's typed events.
    (run,) = await client.runs.list(thread["thread_id"])
    async with httpx.AsyncClient(base_url=served, headers=tenants[0].headers()) as http:
        text = (await http.get(f"/v1/threads/{thread['thread_id']}/runs/{run['run_id']}/events")).text
    kinds = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert "token" in kinds and kinds[-1] == "interrupt", kinds

    # Another organization sees nothing of it.
    with pytest.raises(NotFoundError):
        await other.threads.get(thread["thread_id"])
    with pytest.raises(NotFoundError):
        await other.threads.get_state(thread["thread_id"])
    with pytest.raises(NotFoundError):
        await collect(other.runs.stream(thread["thread_id"], assistant["assistant_id"],
                                        command={"resume": {"action": "approve"}}))
    assert thread["thread_id"] not in [t["thread_id"] for t in await other.threads.search(limit=100)]

    parts = await collect(client.runs.stream(
        thread["thread_id"], assistant["assistant_id"], command={"resume": {"action": "approve"}},
        stream_mode=["values", "messages", "messages-tuple"],
    ))
    assert parts[-1][0] == "end"
    # A message a node returns whole (not streamed by a model) comes as one tuple with its metadata.
    (tuple_part,) = [data for event, data in parts if event == "messages"]
    assert tuple_part[0]["content"] == "published" and tuple_part[1]["langgraph_node"] == "publish"
    assert tuple_part[1]["thread_id"] == thread["thread_id"]
    completes = [data[0]["content"] for event, data in parts if event == "messages/complete"]
    assert completes == ["published"]
    final = [data for event, data in parts if event == "values"][-1]
    assert final["published"] is True and "__interrupt__" not in final
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == [] and state["values"]["published"] is True
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"
    runs = await client.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["success", "interrupted"]
    history = await client.threads.get_history(thread["thread_id"], limit=20)
    assert history[0]["next"] == [] and ["review"] in [h["next"] for h in history]
    assert all(h["checkpoint"]["thread_id"] == thread["thread_id"] for h in history)
    # Over: cancelling is a conflict. Another organization can neither cancel nor delete.
    with pytest.raises(ConflictError):
        await client.runs.cancel(thread["thread_id"], runs[0]["run_id"])
    with pytest.raises(NotFoundError):
        await other.runs.cancel(thread["thread_id"], runs[0]["run_id"])
    with pytest.raises(NotFoundError):
        await other.threads.delete(thread["thread_id"])
    await client.threads.delete(thread["thread_id"])
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread["thread_id"])


async def test_refusals_are_problem_responses(client: Any) -> None:
    (assistant,) = await client.assistants.search(graph_id="integration_agent")
    thread = await client.threads.create()
    # Nothing waits at an interrupt: a resume is a conflict.
    with pytest.raises(ConflictError):
        await collect(client.runs.stream(thread["thread_id"], assistant["assistant_id"],
                                         command={"resume": {"action": "approve"}}))
    # What this server does not do is refused by name, as problem+json.
    with pytest.raises(UnprocessableEntityError) as unsupported:
        await collect(client.runs.stream(thread["thread_id"], assistant["assistant_id"],
                                         input={"messages": [{"role": "user", "content": "hi"}]},
                                         interrupt_before=["review"]))
    assert unsupported.value.response.headers["content-type"].startswith("application/problem+json")
    assert [e["pointer"] for e in unsupported.value.response.json()["errors"]] == ["/body/interrupt_before"]
    with pytest.raises(UnprocessableEntityError) as configured:
        await collect(client.runs.stream(thread["thread_id"], assistant["assistant_id"],
                                         input={"messages": [{"role": "user", "content": "hi"}]},
                                         config={"configurable": {"thread_id": "elsewhere"}}))
    assert [e["pointer"] for e in configured.value.response.json()["errors"]] == ["/body/config"]
    # Checkpoint configs name the organization's namespace: those modes are not offered.
    with pytest.raises(UnprocessableEntityError):
        await collect(client.runs.stream(thread["thread_id"], assistant["assistant_id"],
                                         input={"messages": [{"role": "user", "content": "hi"}]},
                                         stream_mode="checkpoints"))
    with pytest.raises(UnprocessableEntityError) as shape:
        await collect(client.runs.stream(thread["thread_id"], assistant["assistant_id"], input={"messages": []}))
    assert [e["pointer"] for e in shape.value.response.json()["errors"]] == ["/body/input"]
    with pytest.raises(NotFoundError):
        await collect(client.runs.stream(thread["thread_id"], "no-such-graph",
                                         input={"messages": [{"role": "user", "content": "hi"}]}))
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"
    assert await client.runs.list(thread["thread_id"]) == []


async def test_runs_wait_answers_with_the_state_the_run_leaves(client: Any) -> None:
    thread = await client.threads.create(graph_id="connector_agent")
    assert thread["metadata"]["graph_id"] == "connector_agent"
    values = await client.runs.wait(thread["thread_id"], "connector_agent",
                                    input={"messages": [{"role": "user", "content": FLAGSHIP}]})
    assert values["__interrupt__"][0]["value"]["type"] == "review"
    # A thread runs the graph it was made for (runs.wait raises httpx's error, not the SDK's typed one).
    with pytest.raises(httpx.HTTPStatusError) as other_graph:
        await client.runs.wait(thread["thread_id"], "integration_agent", command={"resume": {"action": "approve"}})
    assert other_graph.value.response.status_code == 409
    # An answer the review cannot read is the Threads service's 422, before any run.
    with pytest.raises(UnprocessableEntityError) as unreadable:
        await collect(client.runs.stream(thread["thread_id"], "connector_agent", command={"resume": {"action": "maybe"}}))
    assert unreadable.value.response.json()["code"] == "review_answer_invalid"
    values = await client.runs.wait(thread["thread_id"], "connector_agent",
                                    command={"resume": {"action": "reject", "comments": "not yet"}})
    assert values["published"] is False and values["messages"][-1]["content"] == "not published"
    assert [r["status"] for r in await client.runs.list(thread["thread_id"])] == ["success", "interrupted"]


async def test_the_integration_agent_builds_the_flagship_stops_for_review_and_publishes(
    served_agents: str, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    # Acting for the test customer: the agent's dry runs and the thread are that customer's.
    async with get_client(url=f"{served_agents}/v1/langgraph", api_key=None, headers=a.headers(a.customers[0])) as client, \
            get_client(url=f"{served_agents}/v1/langgraph", api_key=None, headers=b.headers()) as other:
        found = await client.assistants.search()
        assert sorted(x["graph_id"] for x in found) == sorted(agents.GRAPHS) and len(found) == 4
        (assistant,) = [x for x in found if x["graph_id"] == "integration_agent"]
        thread = await client.threads.create()

        parts = await collect(client.runs.stream(
            thread["thread_id"], assistant["assistant_id"], input={"messages": [{"role": "user", "content": FLAGSHIP}]},
            stream_mode=["values", "updates", "messages"],
        ))
        events = [event for event, _ in parts]
        assert events[0] == "metadata" and events[-1] == "end", events
        assert {"values", "updates", "messages/metadata"} <= set(events), set(events)
        # The tool calls the model made, as the updates of its node show them.
        calls = [call["name"] for event, data in parts if event == "updates"
                 for update in data.values() if isinstance(update, dict)
                 for message in update.get("messages", []) if isinstance(message, dict)
                 for call in message.get("tool_calls") or []]
        assert calls[:3] == ["search_catalog", "find_api_description", "import_api"] and calls[-1] == "request_review"
        # Messages come with their node and the public thread id, and say the model is the offline one.
        ai = [data[0] for event, data in parts if event.startswith("messages/") and event != "messages/metadata"
              and data[0]["type"] == "ai"]
        assert ai and {m["response_metadata"].get("model_provider") for m in ai} == {"offline"}
        (review,) = [data for event, data in parts if event == "values"][-1]["__interrupt__"]
        assert review["value"]["type"] == "review" and review["value"]["workflow"] == WORKFLOW

        state = await client.threads.get_state(thread["thread_id"])
        assert state["next"] and state["interrupts"][0]["value"]["workflow"] == WORKFLOW
        assert state["tasks"][0]["interrupts"][0]["id"] == review["id"]
        assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"
        with pytest.raises(NotFoundError):
            await other.threads.get(thread["thread_id"])
        with pytest.raises(NotFoundError):
            await other.threads.get_state(thread["thread_id"])

        parts = await collect(client.runs.stream(thread["thread_id"], assistant["assistant_id"],
                                                 command={"resume": {"action": "approve"}}, stream_mode="values"))
        assert parts[-1][0] == "end", parts[-1]
        final = [data for event, data in parts if event == "values"][-1]
        assert "__interrupt__" not in final and final["published"]["errors"] == []
        published = {(p["kind"], p["key"]): p for p in final["published"]["published"]}
        assert published[("workflow", WORKFLOW)]["version"] == 1 and published[("workflow", WORKFLOW)]["deployed_to"]
        state = await client.threads.get_state(thread["thread_id"])
        assert state["next"] == [] and state["values"]["published"] == final["published"]
        assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"
    async with httpx.AsyncClient(base_url=served_agents, headers=a.headers()) as http:
        workflow = (await http.get(f"/v1/workflows/{WORKFLOW}")).json()
    assert workflow["latest_version"] == 1, workflow


async def test_subgraph_events_come_when_asked_for(client: Any) -> None:
    hi = {"messages": [{"role": "user", "content": "hi"}]}
    thread = await client.threads.create()
    root_only = await collect(client.runs.stream(thread["thread_id"], "home", input=hi, stream_mode="updates"))
    assert [e for e, _ in root_only] == ["metadata", "updates", "end"]
    both = await collect(client.runs.stream(thread["thread_id"], "home", input=hi, stream_mode="updates",
                                            stream_subgraphs=True))
    nested = [(e, data) for e, data in both if e.startswith("updates|inner:")]
    assert len(nested) == 1 and nested[0][1]["answer"]["messages"][0]["content"] == "from the subgraph"

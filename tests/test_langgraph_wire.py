"""The LangGraph wire format of /v1/langgraph, part by part: the events one graph stream becomes
per stream mode, what run metadata a client may see, and the run tap's tee (the stream its
caller asked for is the graph's own, whatever extra modes the tap adds)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Interrupt, interrupt

import pytest

from api._langgraph._service import END_OF_STREAM, RunTaps
from api._langgraph._wire import StreamEncoder, public_metadata, thread_state

ORG = "org_secret"
KEY = f"{ORG}:thr_1"


class State(TypedDict, total=False):
    messages: Annotated[list, add_messages]
    answer: Any


def graph(name: str = "g", ctx: Any = None, checkpointer: Any = None) -> Any:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three")]))

    async def talk(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def ask(state: State) -> dict[str, Any]:
        return {"answer": interrupt({"type": "review"})}

    builder = StateGraph(State)
    builder.add_node("talk", talk)
    builder.add_node("ask", ask)
    builder.add_edge(START, "talk")
    builder.add_edge("talk", "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


INPUT = {"messages": [{"role": "user", "content": "hi"}]}


def config() -> dict[str, Any]:
    return {"configurable": {"thread_id": KEY, "org_id": ORG}}


async def encoded(modes: list[str]) -> list[tuple[str, Any]]:
    encoder = StreamEncoder(modes, {"thread_id": "thr_1"})
    g = graph()
    return [pair async for ns, mode, chunk in g.astream(INPUT, config(), stream_mode=encoder.graph_modes, subgraphs=True)
            for pair in encoder.encode(ns, mode, chunk)]


async def test_messages_accumulate_chunks_and_tuples_carry_public_metadata() -> None:
    events = await encoded(["messages", "messages-tuple"])
    names = [name for name, _ in events if name.startswith("messages/")]
    assert names[0] == "messages/metadata" and names.count("messages/metadata") == 1
    partials = [data[0]["content"] for name, data in events if name == "messages/partial"]
    assert partials == ["one", "one ", "one two", "one two ", "one two three"]
    tuples = [data for name, data in events if name == "messages"]
    assert "".join(t[0]["content"] for t in tuples) == "one two three"
    for _message, metadata in tuples:
        assert metadata["thread_id"] == "thr_1" and metadata["langgraph_node"] == "talk"
        # The run's configuration (LangGraph copies its scalars into the metadata) stays private.
        assert "org_id" not in metadata and ORG not in str(metadata)


async def test_values_and_updates_show_the_interrupt() -> None:
    events = await encoded(["values", "updates"])
    updates = [data for name, data in events if name == "updates"]
    assert list(updates[0]) == ["talk"] and updates[-1]["__interrupt__"][0]["value"] == {"type": "review"}
    values = [data for name, data in events if name == "values"]
    assert values[-1]["__interrupt__"][0]["id"] and [m["type"] for m in values[-1]["messages"]] == ["human", "ai"]
    assert not any(name.startswith("messages") for name, _ in events)


def test_public_metadata_keeps_the_graphs_keys_only() -> None:
    kept = public_metadata({"langgraph_node": "n", "ls_provider": "offline", "tags": ["t"], "org_id": ORG,
                            "thread_id": KEY, "user": "u"}, {"thread_id": "thr_1"})
    assert kept == {"langgraph_node": "n", "ls_provider": "offline", "tags": ["t"], "thread_id": "thr_1"}


async def test_thread_state_names_the_public_thread_and_the_pending_interrupt() -> None:
    g = graph()
    await g.ainvoke(INPUT, config())
    state = thread_state(await g.aget_state(config()), "thr_1", {"graph_id": "g"})
    assert state["next"] == ["ask"] and state["tasks"][0]["interrupts"][0]["value"] == {"type": "review"}
    assert state["checkpoint"]["thread_id"] == "thr_1" and state["parent_checkpoint"]["thread_id"] == "thr_1"
    assert state["metadata"]["graph_id"] == "g" and ORG not in str(state)


def normal(value: Any) -> Any:
    """``value`` without what differs between two runs (message and interrupt ids, task ids)."""
    if isinstance(value, BaseMessage):
        return (type(value).__name__, value.content)
    if isinstance(value, Interrupt):
        return ("Interrupt", value.value)
    if isinstance(value, dict):
        if "langgraph_node" in value:
            return ("metadata", value["langgraph_node"])
        return {key: normal(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, [normal(item) for item in value])
    return value


@pytest.mark.parametrize(("stream_mode", "subgraphs"), [
    ("updates", False), ("updates", True), (["updates", "messages"], False), (["updates", "messages"], True),
])
async def test_a_tapped_graph_streams_to_its_caller_as_the_graph_would(stream_mode: Any, subgraphs: bool) -> None:
    plain = [item async for item in graph().astream(INPUT, config(), stream_mode=stream_mode, subgraphs=subgraphs)]
    taps = RunTaps()
    tap = taps.open(ORG, "thr_1", ["values"])
    tapped = taps.wrap(graph)("g", None, InMemorySaver())
    seen = [item async for item in tapped.astream(INPUT, config(), stream_mode=stream_mode, subgraphs=subgraphs)]
    taps.close(tap)
    assert normal(seen) == normal(plain) and len(plain) > 1
    parts = []
    while not tap.parts.empty():
        parts.append(tap.parts.get_nowait())
    assert parts[-1] is END_OF_STREAM
    modes = {mode for _ns, mode, _chunk in parts[:-1]}
    assert "values" in modes and set([stream_mode] if isinstance(stream_mode, str) else stream_mode) <= modes
    # Closed: the same graph streams without teeing.
    untapped = taps.wrap(graph)("g", None, InMemorySaver())
    again = [item async for item in untapped.astream(INPUT, config(),
                                                  stream_mode=stream_mode, subgraphs=subgraphs)]
    assert again and tap.parts.empty()


async def test_a_second_tap_on_a_thread_is_refused_as_busy() -> None:
    from agents import ThreadBusy

    taps = RunTaps()
    first = taps.open(ORG, "thr_1", ["values"])
    with pytest.raises(ThreadBusy):
        taps.open(ORG, "thr_1", ["updates"])
    taps.close(first)
    taps.close(taps.open(ORG, "thr_1", ["updates"]))
    await asyncio.sleep(0)

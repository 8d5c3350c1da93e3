"""A small scripted graph for thread tests, and an SSE reader.

The graph (name ``scripted``) routes on the first word of the user's message:

* ``fail ...``: a node raises an error whose text holds a secret (it must not reach a client);
* ``slow ...``: plan, the ``lookup`` tool, then ``wait`` until the test opens ``gate``, then answer;
* ``review ...``: plan, the ``lookup`` tool, a review interrupt, then answer (what the resume said);
* anything else: plan, the ``lookup`` tool, answer.

``plan`` is a model call that asks for the ``lookup`` tool (with usage 3 in, 5 out); ``lookup``
returns JSON for the model and an artifact holding :data:`CANARY`, which no event, state or
history may show. ``answer`` streams "All done here" token by token from a fake chat model.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt

CANARY = "canary-secret-5d41402abc4b2a76"
ANSWER = "All done here"


@tool(response_format="content_and_artifact")
def lookup(q: str) -> tuple[str, dict[str, Any]]:
    """Look ``q`` up."""
    return json.dumps({"found": q}), {"found": q, "credentials": {"api_key": CANARY}}


class ScriptedGraphs:
    """The graph factory of the tests, with the gate ``slow`` runs wait on."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.built: list[tuple[str, str | None]] = []

    def __call__(self, name: str, ctx: Any, checkpointer: Any) -> Any:
        self.built.append((name, ctx.thread_id))
        return self.graph().compile(checkpointer=checkpointer)

    def graph(self) -> StateGraph:
        gate = self.gate

        def first_word(state: MessagesState) -> str:
            human = [m for m in state["messages"] if m.type == "human"][-1]
            return str(human.content).split()[0].lower()

        def route(state: MessagesState) -> str:
            return "fail" if first_word(state) == "fail" else "plan"

        def after_tools(state: MessagesState) -> str:
            return {"slow": "wait", "review": "review"}.get(first_word(state), "answer")

        def plan(state: MessagesState) -> dict[str, Any]:
            n = len(state["messages"])
            return {"messages": [AIMessage(
                "", id=f"plan-{n}", tool_calls=[{"id": f"call-{n}", "name": "lookup", "args": {"q": "contacts"}}],
                usage_metadata={"input_tokens": 3, "output_tokens": 5, "total_tokens": 8},
                response_metadata={"model_name": "scripted"})]}

        async def wait(state: MessagesState) -> dict[str, Any]:
            while not gate.is_set():
                await asyncio.sleep(0.02)
            return {}

        def review(state: MessagesState) -> dict[str, Any]:
            get_stream_writer()({"stage": "review"})
            answer = interrupt({"type": "review", "summary": "sync contacts"})
            return {"messages": [AIMessage(f"review answer: {answer['action']}", id=f"review-{len(state['messages'])}")]}

        async def answer(state: MessagesState) -> dict[str, Any]:
            model = GenericFakeChatModel(messages=iter([AIMessage(ANSWER)]))
            return {"messages": [await model.ainvoke(state["messages"])]}

        def fail(state: MessagesState) -> dict[str, Any]:
            raise RuntimeError(f"upstream refused key {CANARY}")

        builder = StateGraph(MessagesState)
        for node in (plan, wait, review, answer, fail):
            builder.add_node(node.__name__, node)
        builder.add_node("tools", ToolNode([lookup]))
        builder.add_conditional_edges(START, route, ["plan", "fail"])
        builder.add_edge("plan", "tools")
        builder.add_conditional_edges("tools", after_tools, ["wait", "review", "answer"])
        builder.add_edge("wait", "answer")
        builder.add_edge("review", "answer")
        builder.add_edge("answer", END)
        builder.add_edge("fail", END)
        return builder


@dataclass(frozen=True)
class Sse:
    """One Server-Sent Event as a client reads it."""

    id: int
    event: str
    data: dict[str, Any]


def read_sse(response: httpx.Response) -> Iterator[Sse]:
    """The events of a streamed SSE response (comments and pings skipped), as they arrive."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                yield Sse(int(fields["id"]), fields.get("event", "message"), json.loads(fields["data"]))
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value

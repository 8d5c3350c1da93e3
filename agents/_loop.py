"""The loop every agent graph shares: the model (tools bound) -> the tools -> the model, bounded.

:func:`add_agent_loop` adds three nodes to a :class:`~langgraph.graph.StateGraph` of
:class:`AgentState`:

* ``agent``: renders the role's system prompt (``prompts/``) in front of the conversation and
  calls the model with the tools bound; counts its calls in ``steps``;
* ``tools``: LangGraph's ``ToolNode`` over the registry's tools. A tool never raises (the registry
  turns every failure into ``{"error": ...}``), and whatever else goes wrong in a call (an unknown
  tool, arguments LangChain cannot pass) becomes a tool message too: the model reads the error
  and the run goes on. A result that is an error is marked ``status="error"``, so every model and
  every stream reader can tell a failed call from a successful one;
* ``limit``: reached when the model still wants tools after ``max_steps`` calls; it ends the run
  with a report that says so, what was done and what was pending.

Where the loop goes after ``tools`` (back to ``agent`` by default) and after a final answer (END
by default) is the graph's: the Integration Agent stops at its review node, the Connector Agent
writes its report.

Every node is safe to re-run from a checkpoint: ``agent`` recomputes from the messages, ``tools``
re-runs the calls of the last model message (the tools' writes are new draft versions, never a
publication), ``limit`` only reads the state.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, NotRequired, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

DEFAULT_MAX_STEPS = 40
GRAPH_LABEL = "switchboard graph"


class AgentState(TypedDict):
    """The state of every agent graph: the conversation (``add_messages``), how many model calls
    this run made, and what the graph adds (a report, the review, what was published)."""

    messages: Annotated[list[AnyMessage], add_messages]
    steps: NotRequired[int]
    report: NotRequired[dict[str, Any] | None]
    review: NotRequired[dict[str, Any] | None]
    published: NotRequired[dict[str, Any] | None]


SystemPrompt = Callable[[AgentState], Awaitable[str]]
Route = Callable[[AgentState], str]


def tool_result(message: ToolMessage) -> Any:
    """The result a tool message carries: the registry's dict (the artifact) or its JSON text parsed."""
    if isinstance(message.artifact, dict):
        return message.artifact
    text = message.content if isinstance(message.content, str) else json.dumps(message.content)
    try:
        return json.loads(text)
    except ValueError:
        return text


def is_error(result: Any) -> bool:
    """Whether a tool result is the registry's error shape ``{"error": {...}}``."""
    return isinstance(result, dict) and isinstance(result.get("error"), dict)


async def _mark_errors(request: ToolCallRequest, execute: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command]]
                       ) -> ToolMessage | Command:
    answer = await execute(request)
    if isinstance(answer, ToolMessage) and answer.status != "error" and is_error(tool_result(answer)):
        answer.status = "error"
    return answer


def _error_text(error: Exception) -> str:
    # The model reads it; the registry's shape, so every failure looks the same to it.
    return json.dumps({"error": {"code": "tool_call_failed", "message": f"{type(error).__name__}: {error}"[:500],
                                 "pointer": None}})


def prompt_text(messages: Sequence[BaseMessage]) -> str:
    """The builder's first message of the conversation (what the run was asked)."""
    for message in messages:
        if isinstance(message, HumanMessage):
            return message.content if isinstance(message.content, str) else str(message.content)
    return ""


def done_calls(messages: Sequence[BaseMessage]) -> list[tuple[str, bool]]:
    """Every tool call of the conversation, in order, with whether it succeeded."""
    names = {c["id"]: c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    return [(names.get(m.tool_call_id, m.name or "?"), m.status != "error") for m in messages
            if isinstance(m, ToolMessage)]


def graph_message(text_lines: list[tuple[str, str]], *, status: str, name: str) -> AIMessage:
    """A message the graph itself writes (not the model): labelled lines, named by the graph."""
    text = "\n".join([f"{GRAPH_LABEL} {name}: {status}", *(f"{k}: {v}" for k, v in text_lines)])
    return AIMessage(content=text, name=name, response_metadata={"model_provider": "graph", "graph": name})


def add_agent_loop(
    graph: StateGraph,
    *,
    name: str,
    model: BaseChatModel,
    tools: Sequence[Any],
    system_prompt: SystemPrompt,
    max_steps: int = DEFAULT_MAX_STEPS,
    after_tools: Route | None = None,
    after_tools_to: Sequence[str] = (),
    after_answer: str = END,
) -> None:
    """Add the ``agent``, ``tools`` and ``limit`` nodes to ``graph`` (see the module).

    ``after_tools`` picks the node after a tools step, ``agent`` or one of ``after_tools_to``
    (default: always ``agent``); ``after_answer`` is
    where a final answer (a model message with no tool call) goes. ``limit`` goes to END.
    """
    bound = model.bind_tools(list(tools))

    async def agent(state: AgentState) -> dict[str, Any]:
        system = SystemMessage(await system_prompt(state))
        answer = await bound.ainvoke([system, *state["messages"]])
        return {"messages": [answer], "steps": state.get("steps", 0) + 1}

    def route_answer(state: AgentState) -> str:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return "tools" if state.get("steps", 0) < max_steps else "limit"
        return after_answer

    def limit(state: AgentState) -> dict[str, Any]:
        messages = state["messages"]
        calls = done_calls(messages)
        pending = [c["name"] for c in messages[-1].tool_calls] if isinstance(messages[-1], AIMessage) else []
        # The pending calls never ran: answer them, so the conversation stays well formed for any
        # model that reads it later (a resumed thread).
        answers = [ToolMessage(json.dumps({"error": {"code": "step_limit", "pointer": None,
                                                     "message": f"not run: the run reached its limit of {max_steps} model calls"}}),
                               tool_call_id=c["id"], name=c["name"], status="error")
                   for c in (messages[-1].tool_calls if isinstance(messages[-1], AIMessage) else [])]
        report = {"status": "step_limit", "max_steps": max_steps, "tool_calls": len(calls),
                  "succeeded": sorted({n for n, ok in calls if ok}), "pending": pending}
        final = graph_message([
            ("reason", f"stopped after {max_steps} model calls without finishing"),
            ("tool calls made", str(len(calls))),
            ("succeeded", ", ".join(report["succeeded"]) or "none"),
            ("not run", ", ".join(pending) or "none"),
        ], status="stopped", name=name)
        return {"messages": [*answers, final], "report": report}

    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(list(tools), handle_tool_errors=_error_text, awrap_tool_call=_mark_errors))
    graph.add_node("limit", limit)
    graph.add_conditional_edges("agent", route_answer, ["tools", "limit", after_answer])
    if after_tools is None:
        graph.add_edge("tools", "agent")
    else:
        graph.add_conditional_edges("tools", after_tools, ["agent", *after_tools_to])
    graph.add_edge("limit", END)

"""``offline``: a chat model that decides tool calls by deterministic rules, for machines with no key.

It is a LangChain :class:`BaseChatModel`, so the graphs treat it like any tool-calling model: they
bind their tools, invoke it on the conversation and run the tool calls it returns. Each answer is
computed from scratch from the messages: the latest human message is parsed into an intent
(``agents._intent``), the tool calls and results after it form the state, and the graph's
:class:`~agents._planner.Plan` picks the next call (``agents._planner``). Same conversation, same
answer.

It names itself in every response (``response_metadata["model_provider"] == "offline"``) and its
final messages are labelled lines, not prose that could pass for an LLM's. It spends no tokens:
``usage_metadata`` is all zeros, and token accounting labels its calls ``offline``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agents._intent import SHAPES, Intent, Refusal, parse_intent
from agents._planner import Decision, Plan, PlanState, ToolResult, next_step

OFFLINE = "offline"
LABEL = "offline planner"


class OfflineChatModel(BaseChatModel):
    """The deterministic ``offline`` chat model.

    ``plan`` is the graph's table of steps; ``apps`` are app names the catalog knows (they help
    the intent parser split ``Google Sheets rows``). Bind tools with :meth:`bind_tools`; the model
    reads their names and argument schemas and never calls a tool that is not bound.
    """

    plan: Plan = Plan()
    apps: tuple[str, ...] = ()
    # How the builder's prompt is read: the integration shapes by default; a graph with other
    # requests (the Connector Agent's app, URL or document) brings its own reader, which returns
    # an object with ``kind``, ``as_dict()`` and ``describe()``, or a Refusal.
    reader: Callable[[str], Any] | None = None
    # What the refusal says the planner handles (the reader's shapes).
    handles: tuple[str, ...] = SHAPES

    @property
    def _llm_type(self) -> str:
        return OFFLINE

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": OFFLINE, "steps": [step.tool for step in self.plan.steps]}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind ``tools`` (LangChain tools, Pydantic models, functions or OpenAI tool dicts).

        ``tool_choice`` is accepted for compatibility and ignored: the plan decides.
        """
        return self.bind(tools=[convert_to_openai_tool(tool) for tool in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self.decide(messages, kwargs.get("tools") or ())
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": OFFLINE})

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # One chunk carrying the whole decision: the graphs stream every model the same way, and
        # there is no prose to trickle out.
        yield _as_chunk(self.decide(messages, kwargs.get("tools") or ()))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        yield _as_chunk(self.decide(messages, kwargs.get("tools") or ()))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Pure computation on the messages: no reason to hop to a thread as the default does.
        return self._generate(messages, stop, None, **kwargs)

    def decide(self, messages: Sequence[BaseMessage], tools: Sequence[Mapping[str, Any]]) -> AIMessage:
        """The answer to ``messages`` with ``tools`` (OpenAI tool dicts) bound: a tool call or a
        final labelled message. Raises :class:`~agents.errors.PlanError` for a plan whose
        arguments do not fit a bound tool's schema."""
        schemas = {tool["function"]["name"]: tool["function"].get("parameters") or {} for tool in tools}
        prompt_at = _last_human(messages)
        if prompt_at is None:
            return _final("cannot do this", [("reason", "the conversation has no prompt from the builder")])
        text = _text(messages[prompt_at])
        intent = self.reader(text) if self.reader is not None else parse_intent(text, apps=self.apps)
        if isinstance(intent, Refusal):
            return _final("cannot do this", [
                ("reason", intent.reason),
                ("handles", " | ".join(self.handles)),
                ("other requests", "need a model: set SWITCHBOARD_MODEL to openai:<model> or litellm:<provider/model>"),
            ], intent=None)
        state = PlanState(intent, _results(messages[prompt_at + 1:]))
        decision = next_step(self.plan, state, schemas)
        if decision.outcome == "call":
            assert decision.tool is not None
            call_id = f"{OFFLINE}_{_tool_call_count(messages) + 1}"
            return AIMessage(
                content="",
                tool_calls=[{"name": decision.tool, "args": dict(decision.arguments), "id": call_id, "type": "tool_call"}],
                response_metadata=_metadata("tool_calls", intent),
                usage_metadata=dict(_NO_USAGE),
            )
        return _final("done" if decision.outcome == "done" else "stopped", _report(intent, decision), intent=intent)


def _as_chunk(message: AIMessage) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=AIMessageChunk(
        content=message.content,
        tool_call_chunks=[
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
            for i, c in enumerate(message.tool_calls)
        ],
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
        chunk_position="last",
    ))


_NO_USAGE = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def _metadata(finish_reason: str, intent: Intent | None) -> dict[str, Any]:
    return {
        "model_name": OFFLINE,
        "model_provider": OFFLINE,
        "finish_reason": finish_reason,
        "offline_intent": intent.as_dict() if intent is not None else None,
    }


def _final(status: str, lines: list[tuple[str, str]], intent: Intent | None = None) -> AIMessage:
    text = "\n".join([f"{LABEL}: {status}", *(f"{key}: {value}" for key, value in lines)])
    return AIMessage(content=text, response_metadata=_metadata("stop", intent), usage_metadata=dict(_NO_USAGE))


def _report(intent: Intent, decision: Decision) -> list[tuple[str, str]]:
    lines = [("intent", _describe(intent))]
    if decision.reason:
        lines.append(("reason", decision.reason))
    lines.append(("steps done", ", ".join(decision.completed) or "none"))
    return lines


def _describe(intent: Any) -> str:
    if not isinstance(intent, Intent):
        return intent.describe()
    trigger = intent.trigger
    when = f"schedule {trigger.cron} (every {trigger.every})" if trigger.kind == "schedule" else f"event {trigger.event} in {trigger.app}"
    match = f", match by {intent.match}" if intent.match else ""
    return (f"{intent.kind} {intent.source.app} {intent.source.object} -> {intent.target.app} "
            f"{intent.target.object}{match}, {when}")


# A builder's answer to a review (``HumanMessage(..., name=REVIEW)``) is not a new request: the
# planner keeps reading the prompt before it and sees the answer as a result of the ``review`` step.
REVIEW = "review"


def _last_human(messages: Sequence[BaseMessage]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage) and messages[index].name != REVIEW:
            return index
    return None


def _tool_call_count(messages: Sequence[BaseMessage]) -> int:
    return sum(len(m.tool_calls) for m in messages if isinstance(m, AIMessage))


def _results(messages: Sequence[BaseMessage]) -> tuple[ToolResult, ...]:
    calls: dict[str, tuple[str, Mapping[str, Any]]] = {}
    results: list[ToolResult] = []
    for message in messages:
        if isinstance(message, HumanMessage) and message.name == REVIEW:
            answer = message.additional_kwargs.get("review") or {"action": "reject", "comments": _text(message)}
            results.append(ToolResult(REVIEW, message.id or "", {}, answer, answer.get("action") == "approve"))
        elif isinstance(message, AIMessage):
            for call in message.tool_calls:
                calls[call["id"] or ""] = (call["name"], call["args"])
        elif isinstance(message, ToolMessage):
            name, arguments = calls.get(message.tool_call_id, (message.name or "", {}))
            content = _parsed(_text(message))
            # A tool reports failure through the message status (LangGraph's ToolNode sets it
            # on an exception) or, when it returns a result object, through "ok": false.
            ok = message.status != "error" and not (isinstance(content, dict) and (
                content.get("ok") is False or isinstance(content.get("error"), dict)))
            results.append(ToolResult(name, message.tool_call_id, arguments, content, ok))
    return tuple(results)


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in content)


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text

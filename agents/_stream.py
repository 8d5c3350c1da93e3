"""LangGraph's stream, translated into a thread's typed events.

A run streams its graph with ``stream_mode=["messages", "updates", "custom"]`` and ``subgraphs=True``;
each item is ``(namespace, mode, chunk)``. :class:`StreamTranslator` turns those into
``(type, data)`` pairs, the event types of ``store.THREAD_EVENT_TYPES``:

* ``token``: ``{"delta", "message_id", "node", "namespace"}``, a piece of an AI message's text
  (``messages`` mode);
* ``tool_call``: ``{"id", "name", "args", "node", "namespace"}``, once per tool call of an AI
  message (``updates`` mode: whole calls, not the chunks a streaming model splits them into);
* ``tool_result``: ``{"tool_call_id", "name", "status", "content", ...}``: the ToolMessage's content,
  exactly the text the model reads, never the message's artifact (the raw result a graph keeps);
* ``usage``: ``{"model", "input_tokens", "output_tokens", "total_tokens", "counted"}`` per model call;
* ``step``: ``{"node", "namespace"}`` when a node finishes, or ``{"progress", "namespace"}`` for what
  a node wrote to the custom stream.

A subgraph's messages come back in its parent's update too: messages are reported once, by id.
The run itself adds ``interrupt``, ``done`` and ``error`` (``agents._threads``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage, convert_to_messages

from agents._usage import call_usage

STREAM_MODES = ("messages", "updates", "custom")


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data (messages as :func:`message_data`, other objects as text)."""
    if isinstance(value, BaseMessage):
        return message_data(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "model_dump"):
        return json_safe(value.model_dump(mode="json"))
    return json.loads(json.dumps(value, default=str))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block if isinstance(block, str) else str(block.get("text", "")) for block in content
                       if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text"))
    return ""


def message_data(message: BaseMessage) -> dict[str, Any]:
    """What a client may see of ``message``: its type, id, text, tool calls or the tool call it
    answers. A ToolMessage's artifact (the raw tool result) is left out: clients see what the
    model saw."""
    data: dict[str, Any] = {"type": message.type, "id": message.id, "content": _text(message.content)}
    if message.name:
        data["name"] = message.name
    if isinstance(message, AIMessage):
        if message.tool_calls:
            data["tool_calls"] = [{"id": c.get("id"), "name": c["name"], "args": json_safe(c.get("args", {}))}
                                  for c in message.tool_calls]
        provider = (message.response_metadata or {}).get("model_provider")
        if provider:
            data["model_provider"] = provider
    if isinstance(message, ToolMessage):
        data["tool_call_id"] = message.tool_call_id
        data["status"] = message.status
    return data


def _namespace(ns: Sequence[str]) -> list[str]:
    # "node:<task id>" -> "node": the task ids change with every run and mean nothing to a client.
    return [part.split(":", 1)[0] for part in ns]


def _messages(value: Any) -> list[BaseMessage]:
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, list | tuple):
        try:
            return convert_to_messages(list(value))
        except (ValueError, TypeError, NotImplementedError):
            return [m for m in value if isinstance(m, BaseMessage)]
    return []


class StreamTranslator:
    """Translates one run's stream items into events; keeps what it reported (by message id)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.usage: list[dict[str, Any]] = []

    def translate(self, namespace: Sequence[str], mode: str, chunk: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """The events of one ``(namespace, mode, chunk)`` stream item."""
        ns = _namespace(namespace)
        if mode == "messages":
            message, metadata = chunk
            if isinstance(message, AIMessageChunk | AIMessage):
                delta = _text(message.content)
                if delta:
                    yield "token", {"delta": delta, "message_id": message.id,
                                    "node": (metadata or {}).get("langgraph_node"), "namespace": ns}
        elif mode == "updates":
            if not isinstance(chunk, dict):
                return
            for node, update in chunk.items():
                if node.startswith("__"):  # __interrupt__: the run reports interrupts from the state
                    continue
                if isinstance(update, dict):
                    for message in _messages(update.get("messages")):
                        yield from self._message(message, node, ns)
                yield "step", {"node": node, "namespace": ns}
        elif mode == "custom":
            yield "step", {"progress": json_safe(chunk), "namespace": ns}

    def _message(self, message: BaseMessage, node: str, ns: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        key = message.id or f"{message.type}:{getattr(message, 'tool_call_id', '')}:{id(message)}"
        if key in self._seen:
            return
        self._seen.add(key)
        if isinstance(message, AIMessage):
            usage = call_usage(message)
            figures = {"model": usage.model, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                       "total_tokens": usage.total_tokens, "counted": usage.counted}
            self.usage.append(figures)
            for call in message.tool_calls:
                yield "tool_call", {"id": call.get("id"), "name": call["name"], "args": json_safe(call.get("args", {})),
                                    "node": node, "namespace": ns}
            yield "usage", figures | {"node": node, "namespace": ns}
        elif isinstance(message, ToolMessage):
            yield "tool_result", {"tool_call_id": message.tool_call_id, "name": message.name, "status": message.status,
                                  "content": _text(message.content), "node": node, "namespace": ns}

    def totals(self) -> dict[str, Any]:
        """The run's token usage so far: sums, and the number of model calls."""
        return {
            "input_tokens": sum(u["input_tokens"] for u in self.usage),
            "output_tokens": sum(u["output_tokens"] for u in self.usage),
            "total_tokens": sum(u["total_tokens"] for u in self.usage),
            "model_calls": len(self.usage),
        }

"""Token usage of chat model calls, counted from what each call reports.

:class:`TokenUsage` is a LangChain callback handler: pass it in a run's ``callbacks`` and it adds
up every model call's ``usage_metadata`` (input and output tokens), streamed or not. Each call is
kept as a :class:`CallUsage` labelled by how it was counted, so billing can tell a provider's
figure (``reported``) from the offline planner's zero (``offline``) and from a provider that sent
no usage at all (``missing``, counted as 0: the platform never invents a figure it was not given).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult

Counted = Literal["reported", "offline", "missing"]


@dataclass(frozen=True)
class CallUsage:
    """One model call: ``model`` that answered, tokens in and out, and how they were ``counted``."""

    model: str
    input_tokens: int
    output_tokens: int
    counted: Counted

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


class TokenUsage(BaseCallbackHandler):
    """Accumulates the token usage of every chat model call it sees (thread-safe)."""

    # Called in the run's own thread or task: the totals are up to date when invoke() returns.
    run_inline = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[CallUsage] = []

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        """Record the usage of one finished call (the callback interface)."""
        for generations in response.generations:
            for generation in generations:
                self.add(call_usage(generation, response.llm_output or {}))

    def add(self, usage: CallUsage) -> None:
        """Record one call's usage."""
        with self._lock:
            self._calls.append(usage)

    @property
    def calls(self) -> tuple[CallUsage, ...]:
        """Every call recorded, in order."""
        with self._lock:
            return tuple(self._calls)

    @property
    def input_tokens(self) -> int:
        """Input tokens of all calls."""
        return sum(c.input_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        """Output tokens of all calls."""
        return sum(c.output_tokens for c in self.calls)

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens of all calls."""
        return self.input_tokens + self.output_tokens


def call_usage(generation: Any, llm_output: Mapping[str, Any] | None = None) -> CallUsage:
    """The :class:`CallUsage` of one generation (a ``ChatGeneration`` or an ``AIMessage``)."""
    message = generation.message if isinstance(generation, ChatGeneration) else generation
    metadata = getattr(message, "response_metadata", None) or {}
    model = str(metadata.get("model_name") or metadata.get("model") or (llm_output or {}).get("model_name")
                or (llm_output or {}).get("model") or "unknown")
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    if metadata.get("model_provider") == "offline":
        return CallUsage(model, 0, 0, "offline")
    if not usage:
        return CallUsage(model, 0, 0, "missing")
    return CallUsage(model, int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0), "reported")

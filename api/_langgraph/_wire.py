"""The LangGraph server's wire format: how graph output, state and interrupts look to the
``langgraph-sdk`` client.

* :func:`jsonable` turns what a graph holds (LangChain messages, ``Interrupt``, tuples, pydantic
  models, datetimes) into JSON values the way the LangGraph server serializes them: a message is
  its ``model_dump()`` (``type``, ``content``, ``id``, ``tool_calls``...), an interrupt is
  ``{"value", "id"}``.
* :class:`StreamEncoder` turns one run's ``graph.astream(..., stream_mode=[...])`` parts into the
  server's SSE events, per requested stream mode:

  ``values``    ``values`` with the whole state (and ``__interrupt__`` when the run stops at one)
  ``updates``   ``updates`` with ``{node: update}`` (``{"__interrupt__": [...]}`` at an interrupt)
  ``messages``  ``messages/metadata`` once per message id, then ``messages/partial`` (a chunk,
                accumulated so far) or ``messages/complete`` (a whole message), each with a
                one-element list of the message
  ``messages-tuple``  ``messages`` with ``[message chunk, metadata]``
  ``custom``, ``tasks``  passed through under their own name

  Events of subgraphs (``stream_subgraphs``) are named ``<mode>|<namespace>|...``.
* :func:`public_metadata` keeps only the run metadata a client may see: LangGraph copies scalar
  values of the run's ``configurable`` into each message's metadata, and ours holds the
  organization-namespaced checkpoint thread id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message
from langgraph.types import Interrupt
from pydantic import BaseModel

# The stream modes a run may ask for, and the graph stream mode each one reads.
STREAM_MODES: Mapping[str, str] = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",
    "messages-tuple": "messages",
    "custom": "custom",
    "tasks": "tasks",
}
# Not offered: ``debug`` and ``checkpoints`` parts carry checkpoint configs, whose thread ids are
# namespaced by organization.
# Metadata LangGraph attaches to a streamed message that describes the graph, not the caller.
_PUBLIC_METADATA_PREFIXES = ("langgraph_", "ls_")
_PUBLIC_METADATA_KEYS = frozenset({"checkpoint_ns", "tags", "name"})


def jsonable(value: Any) -> Any:
    """``value`` as JSON values, serialized the way the LangGraph server does."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Interrupt):
        return {"value": jsonable(value.value), "id": value.id}
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump())
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Enum)):
        return str(value.value if isinstance(value, Enum) else value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    # Anything else a graph may hold (a Send, a callable) has no JSON form: show its type only.
    return f"<{type(value).__name__}>"


def public_metadata(metadata: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The graph's metadata of a streamed message without the run's private configuration, plus
    ``extra`` (the public thread, run, assistant and graph ids)."""
    kept = {key: value for key, value in metadata.items()
            if key in _PUBLIC_METADATA_KEYS or key.startswith(_PUBLIC_METADATA_PREFIXES)}
    return {**jsonable(kept), **extra}


class StreamEncoder:
    """Turns the parts of one run's graph stream into the LangGraph server's events.

    ``modes`` are the stream modes the client asked for (keys of :data:`STREAM_MODES`);
    ``metadata`` is added to each message's metadata. Feed each ``(namespace, mode, chunk)`` of
    ``graph.astream(..., stream_mode=self.graph_modes, subgraphs=True)`` to :meth:`encode`.
    """

    def __init__(self, modes: Sequence[str], metadata: Mapping[str, Any]) -> None:
        self.modes = tuple(dict.fromkeys(modes))
        self.metadata = dict(metadata)
        # Messages seen so far by id: chunks accumulate into the message they belong to.
        self._messages: dict[str, BaseMessage] = {}

    @property
    def graph_modes(self) -> list[str]:
        """The graph stream modes to ask ``astream`` for."""
        return list(dict.fromkeys(STREAM_MODES[mode] for mode in self.modes))

    def encode(self, namespace: Sequence[str], mode: str, chunk: Any) -> Iterator[tuple[str, Any]]:
        """The ``(event name, data)`` pairs one part of the graph stream becomes."""
        suffix = "".join(f"|{part}" for part in namespace)
        if mode == "messages":
            message, metadata = chunk
            meta = public_metadata(metadata, self.metadata)
            if "messages-tuple" in self.modes:
                yield "messages" + suffix, [jsonable(message), meta]
            if "messages" in self.modes:
                yield from self._accumulate(message, meta, suffix)
            return
        if mode in self.modes:
            yield mode + suffix, jsonable(chunk)

    def _accumulate(self, message: Any, metadata: dict[str, Any], suffix: str) -> Iterator[tuple[str, Any]]:
        if not isinstance(message, BaseMessage):
            yield "messages/complete" + suffix, [jsonable(message)]
            return
        is_chunk = isinstance(message, BaseMessageChunk)
        key = message.id or f"message-{len(self._messages)}"
        seen = self._messages.get(key)
        if seen is None:
            self._messages[key] = message
            yield "messages/metadata" + suffix, {key: {"metadata": metadata}}
        elif is_chunk and isinstance(seen, BaseMessageChunk):
            self._messages[key] = seen + message
        else:
            self._messages[key] = message
        current = self._messages[key]
        whole = message_chunk_to_message(current) if isinstance(current, BaseMessageChunk) else current
        yield ("messages/partial" if is_chunk else "messages/complete") + suffix, [jsonable(whole)]


# Checkpoint metadata a client may see (LangGraph also copies the run's configuration into it).
_CHECKPOINT_METADATA_KEYS = frozenset({"source", "step", "parents", "writes"})


def checkpoint_ref(config: Mapping[str, Any] | None, thread_id: str) -> dict[str, Any] | None:
    """A checkpoint config as the server shows it, with the public ``thread_id``."""
    if not config:
        return None
    configurable = config.get("configurable", {})
    return {"thread_id": thread_id, "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            "checkpoint_id": configurable.get("checkpoint_id"), "checkpoint_map": None}


def thread_state(snapshot: Any, thread_id: str, extra_metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A LangGraph ``StateSnapshot`` as the server's ``ThreadState`` for thread ``thread_id``."""
    metadata = {key: value for key, value in (snapshot.metadata or {}).items() if key in _CHECKPOINT_METADATA_KEYS}
    return {
        "values": jsonable(snapshot.values),
        "next": list(snapshot.next),
        "checkpoint": checkpoint_ref(snapshot.config, thread_id),
        "metadata": {**jsonable(metadata), **extra_metadata},
        "created_at": snapshot.created_at,
        "parent_checkpoint": checkpoint_ref(snapshot.parent_config, thread_id),
        "tasks": [
            {"id": task.id, "name": task.name, "error": None if task.error is None else str(task.error),
             "interrupts": jsonable(task.interrupts), "checkpoint": None, "state": None,
             "result": jsonable(task.result)}
            for task in snapshot.tasks
        ],
        "interrupts": jsonable(getattr(snapshot, "interrupts", ())),
    }

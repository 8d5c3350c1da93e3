"""The LangGraph protocol's runs are the Threads service's runs (``agents.Threads``): the same
thread rows, the same busy rule (409), the same typed events stored for /v1/threads, the same usage
and cancellation. What the protocol needs on top is the graph's own stream (``values``,
``updates``, ``messages`` parts), which the service translates and does not keep: :class:`RunTaps`
tees it off.

:meth:`RunTaps.wrap` wraps the service's graph factory: each graph it builds streams as before
for the service, and, while a LangGraph client streams a run of that thread (a :class:`Tap` is
open for its checkpoint thread id), also asks the graph for the stream modes that client wants and
hands every part to the tap. A thread has at most one run at a time, so the checkpoint thread id
names the run unambiguously; a second client's tap on a busy thread is refused like its run would
be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from langgraph.types import StateSnapshot

import store
from agents import GraphFactory, ThreadBusy, Threads
from runtime import Principal

# What a tap's queue receives after the graph's last part.
END_OF_STREAM = object()


class Tap:
    """One LangGraph client's view of a run: the graph stream ``modes`` it wants, and the parts."""

    def __init__(self, key: str, modes: Sequence[str]) -> None:
        self.key = key
        self.modes = tuple(modes)
        self.parts: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, part: Any) -> None:
        self.parts.put_nowait(part)


class RunTaps:
    """The taps open in this process, by checkpoint thread id."""

    def __init__(self) -> None:
        self._open: dict[str, Tap] = {}

    def wrap(self, factory: GraphFactory) -> GraphFactory:
        """``factory``, with every graph it builds teeing its stream to the tap of its thread."""

        def build(name: str, ctx: Any, checkpointer: Any) -> Any:
            return TappedGraph(factory(name, ctx, checkpointer), self)

        return build

    def open(self, org_id: str, thread_id: str, modes: Sequence[str]) -> Tap:
        """Open the tap of a thread's next run; :class:`~agents.ThreadBusy` when a client streams
        one already. Close it with :meth:`close`."""
        key = store.checkpoint_thread_id(org_id, thread_id)
        if key in self._open:
            raise ThreadBusy(thread_id, None)
        tap = self._open[key] = Tap(key, modes)
        return tap

    def close(self, tap: Tap) -> None:
        """Stop teeing to ``tap`` (the run itself goes on)."""
        if self._open.get(tap.key) is tap:
            del self._open[tap.key]

    def get(self, key: str | None) -> Tap | None:
        """The open tap for checkpoint thread id ``key``, if any."""
        return self._open.get(key) if key else None


class TappedGraph:
    """A compiled graph whose ``astream`` also feeds the open tap of the thread it runs.

    Everything else is the graph's own (state, history, schemas)."""

    def __init__(self, graph: Any, taps: RunTaps) -> None:
        self._graph = graph
        self._taps = taps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._graph, name)

    async def astream(self, input: Any, config: Mapping[str, Any] | None = None, *,
                      stream_mode: str | Sequence[str] | None = None, subgraphs: bool = False,
                      **kwargs: Any) -> AsyncIterator[Any]:
        """The graph's stream as the caller asked for it; the tap gets its modes' parts too."""
        tap = self._taps.get(((config or {}).get("configurable") or {}).get("thread_id"))
        if tap is None:
            async for item in self._graph.astream(input, config, stream_mode=stream_mode, subgraphs=subgraphs,
                                                  **kwargs):
                yield item
            return
        single = isinstance(stream_mode, str)
        asked = [stream_mode] if single else list(stream_mode or [self._graph.stream_mode])
        modes = list(dict.fromkeys([*asked, *tap.modes]))
        try:
            async for namespace, mode, chunk in self._graph.astream(input, config, stream_mode=modes, subgraphs=True,
                                                                    **kwargs):
                tap.put((tuple(namespace), mode, chunk))
                if mode not in asked or (namespace and not subgraphs):
                    continue
                if subgraphs:
                    yield (namespace, chunk) if single else (namespace, mode, chunk)
                else:
                    yield chunk if single else (mode, chunk)
        finally:
            tap.put(END_OF_STREAM)


async def checkpoint_state(threads: Threads, principal: Principal, thread: Mapping[str, Any]) -> StateSnapshot:
    """The thread's latest LangGraph ``StateSnapshot`` (empty before its first run, when no graph
    is built)."""
    config = {"configurable": {"thread_id": store.checkpoint_thread_id(principal.org_id, thread["id"])}}
    async with store.open_checkpointer(threads.platform.db.conninfo, principal.org_id) as saver:
        if await saver.aget_tuple(config) is None:
            return StateSnapshot(values={}, next=(), config=None, metadata=None, created_at=None,
                                 parent_config=None, tasks=(), interrupts=())
        graph = threads.factory(thread["graph"], threads.context(threads.platform, principal, dict(thread)), saver)
        return await graph.aget_state(config)


async def checkpoint_history(threads: Threads, principal: Principal, thread: Mapping[str, Any],
                             limit: int) -> list[StateSnapshot]:
    """The thread's checkpoints, newest first (at most ``limit``; none before its first run)."""
    config = {"configurable": {"thread_id": store.checkpoint_thread_id(principal.org_id, thread["id"])}}
    async with store.open_checkpointer(threads.platform.db.conninfo, principal.org_id) as saver:
        if await saver.aget_tuple(config) is None:
            return []
        graph = threads.factory(thread["graph"], threads.context(threads.platform, principal, dict(thread)), saver)
        return [snapshot async for snapshot in graph.aget_state_history(config, limit=limit)]

"""The LangGraph protocol's threads and runs over our threads: one row in ``threads`` per LangGraph
thread (the same id under /v1/threads), checkpoints in the organization's namespace, runs recorded
in ``thread_runs``.

A run of :meth:`LangGraphThreads.stream` is started (the thread marked busy: a second run gets 409)
in the request, before any byte of the stream is sent, so a refusal is an ordinary problem
response; the graph then runs while the client reads, and the run and the thread are finished
from the checkpoint it leaves: ``interrupted`` when it waits at an interrupt, ``completed`` (the
thread ``idle``) otherwise, ``failed`` (the thread ``error``) when it raised, ``cancelled`` when
the client went away first (the checkpoint keeps what was done; a resume goes on from there).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.to_thread
from langgraph.types import Command, StateSnapshot

import store
from runtime import Platform, Principal

_logger = logging.getLogger("switchboard.api.langgraph")


class GraphFactory(Protocol):
    """Builds graph ``name`` for one run: ``(name, ctx, checkpointer) -> compiled graph``
    (``agents.build_graph`` by default)."""

    def __call__(self, name: str, ctx: Any, checkpointer: Any) -> Any: ...


def default_graph_factory(name: str, ctx: Any, checkpointer: Any) -> Any:
    """``agents.build_graph`` with the platform's model settings."""
    import agents

    return agents.build_graph(name, ctx, checkpointer=checkpointer)


def tool_context(platform: Platform, principal: Principal, thread_id: str) -> Any:
    """The per-run dependencies of the graph's tools: the caller, its customer and the thread."""
    import tools

    return tools.ToolContext(platform=platform, principal=principal, customer_id=principal.customer_id,
                             thread_id=thread_id)


@dataclass(frozen=True)
class RunStart:
    """A run the request started: its row, the thread's graph, and what the graph is given."""

    run: dict[str, Any]
    thread: dict[str, Any]
    graph: str
    graph_input: Any


class LangGraphThreads:
    """Threads, state and runs of the LangGraph protocol for one platform."""

    def __init__(self, platform: Platform, factory: GraphFactory | None = None,
                 context: Callable[[Platform, Principal, str], Any] = tool_context) -> None:
        self.platform = platform
        self.factory: GraphFactory = factory or default_graph_factory
        self.context = context

    # -- threads -------------------------------------------------------------------------------

    async def checkpoint_state(self, principal: Principal, thread: Mapping[str, Any]) -> Any:
        """The thread's latest ``StateSnapshot`` (empty before its first run: no graph is built then)."""
        config = self._config(principal, thread["id"])
        async with store.open_checkpointer(self.platform.db.conninfo, principal.org_id) as saver:
            if await saver.aget_tuple(config) is None:
                return StateSnapshot(values={}, next=(), config=None, metadata=None, created_at=None,
                                     parent_config=None, tasks=(), interrupts=())
            graph = self.factory(thread["graph"], self.context(self.platform, principal, thread["id"]), saver)
            return await graph.aget_state(config)

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, tx: store.Tx, principal: Principal, thread_id: str, graph: str, *, graph_input: Any,
                  resume: bool, run_input: Mapping[str, Any]) -> RunStart:
        """Record a pending run of ``graph`` on the thread (busy: 409). A resume needs the thread to
        wait at an interrupt; a thread runs one graph (the one of its first run)."""
        threads = store.Threads(tx)
        thread = threads.get(principal.org_id, thread_id, lock=True)
        if principal.customer_id is not None and thread["customer_id"] != principal.customer_id:
            raise store.NotFound("thread", thread_id)
        if thread["graph"] != graph:
            if threads.list_runs(principal.org_id, thread_id, store.ListQuery(limit=1)).items:
                raise store.Conflict("thread", "graph", f"thread {thread_id!r} runs graph {thread['graph']!r}, "
                                                        f"not {graph!r}")
            threads.set_graph(principal.org_id, thread_id, graph)
            thread = {**thread, "graph": graph}
        run = threads.start_run(principal.org_id, thread_id, store.new_id("run"), kind="resume" if resume else "message",
                                input=dict(run_input), actor_type=principal.actor_type, actor_id=principal.actor_id,
                                expect=("interrupted",) if resume else None)
        return RunStart(run=run, thread=thread, graph=graph, graph_input=graph_input)

    async def execute(self, principal: Principal, start: RunStart, modes: Sequence[str], *,
                      subgraphs: bool) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
        """Run the graph; yields ``(namespace, mode, chunk)`` of its stream and finishes the run.

        Raises what the graph raised, after recording the run as failed."""
        org, thread_id, run_id = principal.org_id, start.thread["id"], start.run["id"]
        await anyio.to_thread.run_sync(self._set_running, org, run_id)
        config = self._config(principal, thread_id)
        outcome: tuple[str, dict[str, Any] | None] = ("cancelled", None)
        try:
            async with store.open_checkpointer(self.platform.db.conninfo, org) as saver:
                graph = self.factory(start.graph, self.context(self.platform, principal, thread_id), saver)
                async for namespace, mode, chunk in graph.astream(
                    start.graph_input, config, stream_mode=list(modes), subgraphs=True
                ):
                    if subgraphs or not namespace:
                        yield tuple(namespace), mode, chunk
                snapshot = await graph.aget_state(config)
            outcome = ("interrupted" if snapshot.interrupts else "completed", None)
        except Exception as exc:
            outcome = ("failed", {"code": getattr(type(exc), "code", "run_failed"), "type": type(exc).__name__})
            _logger.warning("langgraph run %s of thread %s failed: %s", run_id, thread_id, type(exc).__name__)
            raise
        finally:
            # Shielded: a client that went away cancels the stream, and the run must still end.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._finish, org, thread_id, run_id, *outcome)

    def _config(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": store.checkpoint_thread_id(principal.org_id, thread_id)}}

    def _set_running(self, org: str, run_id: str) -> None:
        with self.platform.db.tenant(org) as tx:
            store.Threads(tx).set_run_status(org, run_id, "running")

    def _finish(self, org: str, thread_id: str, run_id: str, status: str, error: dict[str, Any] | None) -> None:
        thread_status = {"interrupted": "interrupted", "completed": "idle", "failed": "error"}.get(status, "idle")
        if status == "cancelled":
            # Stopped between two steps: the thread waits where the checkpoint left it.
            thread_status = "idle"
        with self.platform.db.tenant(org) as tx:
            threads = store.Threads(tx)
            if threads.finish_run(org, run_id, status, error=error):
                threads.set_status(org, thread_id, thread_status)


def create_thread_row(tx: store.Tx, principal: Principal, *, thread_id: str | None, graph: str,
                      metadata: Mapping[str, Any], if_exists: str) -> dict[str, Any]:
    """Create a thread (``thread_id`` or a fresh id) for ``graph``; with ``if_exists ==
    "do_nothing"`` an existing thread of the organization is returned instead of a 409."""
    threads = store.Threads(tx)
    if thread_id is not None:
        try:
            existing = threads.get(principal.org_id, thread_id)
        except store.NotFound:
            existing = None
        if existing is not None:
            mine = principal.customer_id is None or existing["customer_id"] == principal.customer_id
            if if_exists == "do_nothing" and mine:
                return existing
            raise store.Conflict("thread", "thread_id", f"thread {thread_id!r} exists already")
    title = str(metadata.get("title", ""))[:200] if isinstance(metadata.get("title"), str) else ""
    return threads.create(principal.org_id, thread_id or store.new_id("thr"), graph=graph, title=title,
                          metadata=dict(metadata), customer_id=principal.customer_id,
                          actor_type=principal.actor_type, actor_id=principal.actor_id)


def graph_input(input: Mapping[str, Any] | None, resume: Any, has_command: bool) -> Any:
    """What the graph is given: the input, or ``Command(resume=...)`` for a command."""
    if has_command:
        return Command(resume=resume)
    return dict(input) if input is not None else None

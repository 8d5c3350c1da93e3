"""Threads: conversations with a graph, and their runs streamed as typed events.

:class:`Threads` is the one use case behind the ``/v1/threads`` routes (and the LangGraph-compatible
routes and the chat CLI built on them). A thread belongs to an organization and the actor who
created it; its state lives in LangGraph's Postgres checkpointer under the thread id
``<org_id>:<thread_id>`` (``store.open_checkpointer``, bound to the organization by row-level
security).

Posting a message (or resuming an interrupt) starts a run: the thread turns ``busy`` in the same
transaction that records the run, so a second run on a busy thread is refused (:class:`ThreadBusy`,
409). The run is an asyncio task of this process: it builds the thread's graph through the
:data:`GraphFactory` with a checkpointer of its own, streams it, and translates the stream into
events (``agents._stream``). Each event gets the next sequence number of the run, goes at once to
the clients streaming the run, and is stored (in batches, in order) so a client that lost its
connection resumes after the last event it saw, from this process or another. A run ends with
exactly one of ``done`` (completed, or cancelled), ``interrupt`` (the thread awaits
:meth:`Threads.resume`) or ``error`` (the thread is in ``error`` until its next message).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
from langgraph.types import Command

import store
from agents._stream import STREAM_MODES, StreamTranslator, json_safe, message_data
from agents.errors import RunNotActive, ThreadBusy, ThreadNotInterrupted, UnknownGraph
from runtime import Platform, Principal
from tools import ToolContext, scrub

log = logging.getLogger("switchboard.agents.threads")

# The longest message a thread takes (characters); the API refuses a longer one (422).
MAX_MESSAGE_CHARS = 32_000
# Events that end a run's stream.
TERMINAL_EVENTS = ("done", "error", "interrupt")
# How often a client streaming a run of another process looks for new events (seconds).
POLL_SECONDS = 0.25
# LangGraph's bound on the steps of one run (its default is 25; agent graphs take more).
RECURSION_LIMIT = 200
TITLE_CHARS = 80


class GraphFactory(Protocol):
    """Builds the compiled graph ``name`` for one run: its tools bound to ``ctx``, its state kept
    by ``checkpointer``. ``agents.build_graph`` is the platform's."""

    def __call__(self, name: str, ctx: ToolContext, checkpointer: Any) -> Any: ...


ContextFactory = Callable[[Platform, Principal, dict[str, Any]], ToolContext]


def default_context(platform: Platform, principal: Principal, thread: dict[str, Any]) -> ToolContext:
    """The tools' context of a run: the poster, the thread's customer and the thread."""
    return ToolContext(platform=platform, principal=principal, customer_id=thread.get("customer_id"),
                       thread_id=thread["id"])


@dataclass(frozen=True)
class ThreadEvent:
    """One event of a run: ``seq`` (1, 2, 3... within the run), ``type`` and its ``data``."""

    seq: int
    type: str
    data: dict[str, Any]


class _LiveRun:
    """A run going on in this process: its events so far, and the task running it."""

    def __init__(self, org_id: str, run_id: str) -> None:
        self.org_id = org_id
        self.run_id = run_id
        self.events: list[ThreadEvent] = []
        self.unsaved: list[ThreadEvent] = []
        self.changed = asyncio.Condition()
        self.closing = False  # no more events to store but the last
        self.finished = False  # the last event is out
        self.task: asyncio.Task[None] | None = None
        # Set once the task runs its first line: a task cancelled before that would never run its
        # cleanup, and the thread would stay busy.
        self.started = asyncio.Event()

    async def emit(self, kind: str, data: dict[str, Any]) -> ThreadEvent:
        event = ThreadEvent(len(self.events) + 1, kind, data)
        async with self.changed:
            self.events.append(event)
            self.unsaved.append(event)
            self.changed.notify_all()
        return event

    async def close_writer(self) -> None:
        async with self.changed:
            self.closing = True
            self.changed.notify_all()

    async def finish(self, last: ThreadEvent) -> None:
        async with self.changed:
            self.events.append(last)
            self.finished = True
            self.changed.notify_all()


class Threads:
    """Threads, runs and their events for every organization (one per process).

    ``factory`` builds a thread's graph; ``graphs`` are the names a thread may use;
    ``context`` makes the tools' context of a run (default: :func:`default_context`).
    """

    def __init__(self, platform: Platform, factory: GraphFactory, *, graphs: Sequence[str],
                 context: ContextFactory = default_context) -> None:
        self.platform = platform
        self.factory = factory
        self.graphs = tuple(graphs)
        self.context = context
        self._live: dict[tuple[str, str], _LiveRun] = {}

    # -- store work, off the event loop ----------------------------------------------------------

    async def _tx(self, org_id: str, work: Callable[[store.Threads], Any]) -> Any:
        def step() -> Any:
            with self.platform.db.tenant(org_id) as tx:
                return work(store.Threads(tx))

        return await anyio.to_thread.run_sync(step)

    # -- threads -------------------------------------------------------------------------------

    async def create(self, principal: Principal, *, graph: str, title: str = "", metadata: dict[str, Any] | None = None,
                     customer_id: str | None = None) -> dict[str, Any]:
        """A new idle thread of ``graph`` (``UnknownGraph`` for a name not in ``graphs``)."""
        if graph not in self.graphs:
            raise UnknownGraph(graph, self.graphs)
        thread_id = store.new_id("thr")
        return await self._tx(principal.org_id, lambda t: t.create(
            principal.org_id, thread_id, graph=graph, title=title, metadata=metadata or {}, customer_id=customer_id,
            actor_type=principal.actor_type, actor_id=principal.actor_id))

    async def list(self, principal: Principal, query: store.ListQuery, *, mine: bool = False, graph: str | None = None,
                   status: str | None = None) -> store.Page:
        """The organization's threads (only the caller's with ``mine``)."""
        return await self._tx(principal.org_id, lambda t: t.list(
            principal.org_id, query, actor_id=principal.actor_id if mine else None, graph=graph, status=status))

    async def get(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        """Thread ``thread_id`` (``store.NotFound`` for another organization's)."""
        return await self._tx(principal.org_id, lambda t: t.get(principal.org_id, thread_id))

    # -- runs ----------------------------------------------------------------------------------

    async def post_message(self, principal: Principal, thread_id: str, content: str) -> dict[str, Any]:
        """Start a run of the thread's graph on a new user message; returns the run (pending).

        Raises ``store.NotFound``, :class:`ThreadBusy` (a run is in progress) and ``ValueError``
        for an empty or too long message (the API checks both first)."""
        if not content.strip() or len(content) > MAX_MESSAGE_CHARS:
            raise ValueError(f"a message has 1 to {MAX_MESSAGE_CHARS} characters")
        return await self._start(principal, thread_id, "message", {"content": content},
                                 {"messages": [{"role": "user", "content": content}]}, expect=None)

    async def resume(self, principal: Principal, thread_id: str, value: Any) -> dict[str, Any]:
        """Resume the thread's interrupt with ``value`` (``Command(resume=value)``); returns the run.

        Raises ``store.NotFound``, :class:`ThreadBusy` and :class:`ThreadNotInterrupted`."""
        return await self._start(principal, thread_id, "resume", {"resume": json_safe(value)}, Command(resume=value),
                                 expect=("interrupted",))

    async def _start(self, principal: Principal, thread_id: str, kind: str, recorded: dict[str, Any], graph_input: Any,
                     *, expect: tuple[str, ...] | None) -> dict[str, Any]:
        org_id = principal.org_id
        run_id = store.new_id("run")

        def claim(t: store.Threads) -> tuple[dict[str, Any], dict[str, Any]]:
            thread = t.get(org_id, thread_id, lock=True)
            if thread["status"] == "busy":
                active = t.active_run(org_id, thread_id)
                raise ThreadBusy(thread_id, active["id"] if active else None)
            if expect is not None and thread["status"] not in expect:
                raise ThreadNotInterrupted(thread_id, thread["status"])
            if kind == "message" and not thread["title"]:
                t.set_title(org_id, thread_id, recorded["content"].strip().splitlines()[0][:TITLE_CHARS])
            t.set_status(org_id, thread_id, "busy")
            run = t.insert_run(org_id, thread_id, run_id, kind=kind, input=recorded,
                               actor_type=principal.actor_type, actor_id=principal.actor_id)
            return thread, run

        thread, run = await self._tx(org_id, claim)
        live = _LiveRun(org_id, run_id)
        self._live[(org_id, run_id)] = live
        live.task = asyncio.create_task(self._run(live, principal, thread, graph_input), name=f"thread run {run_id}")
        return run

    async def _run(self, live: _LiveRun, principal: Principal, thread: dict[str, Any], graph_input: Any) -> None:
        live.started.set()
        org_id, run_id, thread_id = principal.org_id, live.run_id, thread["id"]
        translator = StreamTranslator()
        writer = asyncio.create_task(self._save_events(live), name=f"thread events {run_id}")
        # The run's last event, and the statuses the run and the thread end in.
        terminal: tuple[str, dict[str, Any]]
        outcome: tuple[str, str, dict[str, Any] | None]  # run status, thread status, error
        try:
            await self._tx(org_id, lambda t: t.set_run_status(org_id, run_id, "running"))
            ctx = self.context(self.platform, principal, thread)
            async with store.open_checkpointer(self.platform.db.conninfo, org_id) as saver:
                graph = self.factory(thread["graph"], ctx, saver)
                config = {"configurable": {"thread_id": store.checkpoint_thread_id(org_id, thread_id)},
                          "recursion_limit": RECURSION_LIMIT}
                async for namespace, mode, chunk in graph.astream(graph_input, config, stream_mode=list(STREAM_MODES),
                                                                  subgraphs=True):
                    for kind, data in translator.translate(namespace, mode, chunk):
                        await live.emit(kind, scrub(data) if kind == "tool_call" else data)
                snapshot = await graph.aget_state(config)
            interrupts = [{"id": i.id, "value": json_safe(i.value)} for i in snapshot.interrupts]
            if interrupts:
                terminal = ("interrupt", {"interrupts": interrupts, "usage": translator.totals()})
                outcome = ("interrupted", "interrupted", None)
            else:
                terminal = ("done", {"status": "completed", "usage": translator.totals()})
                outcome = ("completed", "idle", None)
        except asyncio.CancelledError:
            terminal = ("done", {"status": "cancelled", "usage": translator.totals()})
            outcome = ("cancelled", "idle", None)
        except Exception as exc:  # any failure of the graph ends the run, never the process
            log.warning("thread run %s failed", run_id, exc_info=exc)
            error = {"code": getattr(type(exc), "code", "run_failed"), "message": _public_message(exc)}
            terminal = ("error", error)
            outcome = ("failed", "error", error)
        last = ThreadEvent(len(live.events) + 1, *terminal)
        try:
            # The run's end, the thread's status and the last event commit together, after every
            # earlier event is stored, and only then is the last event sent: a client that has
            # it finds the run over and every event in the store.
            await live.close_writer()
            await writer
            status, thread_status, error = outcome
            totals = translator.totals()

            def close(t: store.Threads) -> None:
                if t.finish_run(org_id, run_id, status, error=error, usage=totals):
                    t.set_status(org_id, thread_id, thread_status)
                    t.append_events(org_id, run_id, [(last.seq, last.type, last.data)])

            await self._tx(org_id, close)
        except Exception:
            log.exception("could not record the end of thread run %s", run_id)
        finally:
            await live.finish(last)
            self._live.pop((org_id, run_id), None)

    async def _save_events(self, live: _LiveRun) -> None:
        while True:
            async with live.changed:
                await live.changed.wait_for(lambda: bool(live.unsaved) or live.closing)
                batch, live.unsaved = live.unsaved, []
                closing = live.closing
            if batch:
                rows = [(e.seq, e.type, e.data) for e in batch]
                try:
                    await self._tx(live.org_id, lambda t: t.append_events(live.org_id, live.run_id, rows))
                except Exception:
                    log.exception("could not store %d events of thread run %s", len(rows), live.run_id)
            if closing and not live.unsaved:
                return

    async def cancel(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
        """Cancel a pending or running run; returns it once it is over (``cancelled``).

        Raises ``store.NotFound`` and :class:`RunNotActive` (the run is over already). A run of
        another process (or of one that died) is marked cancelled in the store."""
        org_id = principal.org_id
        run = await self._tx(org_id, lambda t: t.get_run(org_id, thread_id, run_id))
        live = self._live.get((org_id, run_id))
        if live is not None and live.task is not None and not live.task.done():
            await live.started.wait()
            live.task.cancel()
            await asyncio.gather(live.task, return_exceptions=True)
        elif run["status"] in ("pending", "running"):
            def mark(t: store.Threads) -> None:
                if t.finish_run(org_id, run_id, "cancelled"):
                    t.append_events(org_id, run_id, [(t.last_seq(org_id, run_id) + 1, "done", {"status": "cancelled"})])
                    t.set_status(org_id, thread_id, "idle")

            await self._tx(org_id, mark)
        else:
            raise RunNotActive(run_id, run["status"])
        return await self._tx(org_id, lambda t: t.get_run(org_id, thread_id, run_id))

    async def wait(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
        """The run once it is over (for a run of this process; otherwise as it is now)."""
        live = self._live.get((principal.org_id, run_id))
        if live is not None and live.task is not None:
            await asyncio.gather(asyncio.shield(live.task), return_exceptions=True)
        return await self.run(principal, thread_id, run_id)

    async def run(self, principal: Principal, thread_id: str, run_id: str) -> dict[str, Any]:
        """Run ``run_id`` of the thread (``store.NotFound`` otherwise)."""
        return await self._tx(principal.org_id, lambda t: t.get_run(principal.org_id, thread_id, run_id))

    async def runs(self, principal: Principal, thread_id: str, query: store.ListQuery) -> store.Page:
        """The thread's runs (``store.NotFound`` for an unknown thread)."""
        def work(t: store.Threads) -> store.Page:
            t.get(principal.org_id, thread_id)
            return t.list_runs(principal.org_id, thread_id, query)

        return await self._tx(principal.org_id, work)

    async def events(self, principal: Principal, thread_id: str, run_id: str, *, after: int = 0
                     ) -> AsyncIterator[ThreadEvent]:
        """The run's events with a sequence number above ``after``, each once and in order, live
        while the run goes on; the iteration ends after the run's ``done``, ``error`` or
        ``interrupt``. Raises ``store.NotFound`` (before the first event) for an unknown run."""
        org_id = principal.org_id
        await self.run(principal, thread_id, run_id)
        live = self._live.get((org_id, run_id))
        if live is not None:
            async for event in self._live_events(live, after):
                yield event
            return
        async for event in self._stored_events(principal, thread_id, run_id, after):
            yield event

    async def _live_events(self, live: _LiveRun, after: int) -> AsyncIterator[ThreadEvent]:
        seen = max(after, 0)
        while True:
            async with live.changed:
                await live.changed.wait_for(lambda: len(live.events) > seen or live.finished)
                batch = live.events[seen:]
                over = live.finished
            for event in batch:
                seen = event.seq
                yield event
                if event.type in TERMINAL_EVENTS:
                    return
            if over and seen >= len(live.events):
                return

    async def _stored_events(self, principal: Principal, thread_id: str, run_id: str, after: int
                             ) -> AsyncIterator[ThreadEvent]:
        org_id = principal.org_id
        seen = max(after, 0)
        while True:
            def read(t: store.Threads) -> tuple[list[dict[str, Any]], str]:
                return t.events(org_id, run_id, after=seen), t.get_run(org_id, thread_id, run_id)["status"]

            rows, status = await self._tx(org_id, read)
            for row in rows:
                seen = row["seq"]
                yield ThreadEvent(row["seq"], row["type"], row["data"])
                if row["type"] in TERMINAL_EVENTS:
                    return
            if not rows:
                if status in store.RUN_FINISHED:
                    return
                await asyncio.sleep(POLL_SECONDS)

    # -- state, from the checkpointer ----------------------------------------------------------

    async def state(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        """The thread's current state: ``values`` (messages as clients see them), ``next`` (nodes
        that run next), ``interrupts`` awaiting a resume, ``checkpoint_id`` and ``created_at``."""
        thread = await self.get(principal, thread_id)
        async with self._graph(principal, thread) as (graph, config):
            snapshot = await graph.aget_state(config)
        return _snapshot(snapshot)

    async def history(self, principal: Principal, thread_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The thread's checkpoints, newest first (at most ``limit``), each as :meth:`state` shows one."""
        thread = await self.get(principal, thread_id)
        async with self._graph(principal, thread) as (graph, config):
            return [_snapshot(s) async for s in graph.aget_state_history(config, limit=limit)]

    @asynccontextmanager
    async def _graph(self, principal: Principal, thread: dict[str, Any]) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
        async with store.open_checkpointer(self.platform.db.conninfo, principal.org_id) as saver:
            graph = self.factory(thread["graph"], self.context(self.platform, principal, thread), saver)
            yield graph, {"configurable": {"thread_id": store.checkpoint_thread_id(principal.org_id, thread["id"])}}

    async def aclose(self) -> None:
        """Cancel the runs of this process (at shutdown); each ends ``cancelled``."""
        tasks = [live.task for live in list(self._live.values()) if live.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _public_message(exc: BaseException) -> str:
    # Coded errors of the platform say what went wrong without secrets; anything else may quote
    # internals (SQL, a provider's response), which the log keeps.
    if isinstance(getattr(type(exc), "code", None), str):
        return str(exc)
    return f"the run failed ({type(exc).__name__}); the server log has the details"


def _snapshot(snapshot: Any) -> dict[str, Any]:
    values = snapshot.values if isinstance(snapshot.values, dict) else {"value": snapshot.values}
    configurable = (snapshot.config or {}).get("configurable", {})
    parent = (snapshot.parent_config or {}).get("configurable", {}) if snapshot.parent_config else {}
    metadata = snapshot.metadata or {}
    return {
        "values": {key: [message_data(m) for m in value] if key == "messages" else json_safe(value)
                   for key, value in values.items()},
        "next": list(snapshot.next),
        "interrupts": [{"id": i.id, "value": json_safe(i.value)} for i in snapshot.interrupts],
        "checkpoint_id": configurable.get("checkpoint_id"),
        "parent_checkpoint_id": parent.get("checkpoint_id"),
        "step": metadata.get("step"),
        "source": metadata.get("source"),
        "created_at": snapshot.created_at,
    }

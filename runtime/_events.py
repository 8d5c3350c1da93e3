"""Dispatching stored events to runs: the seam between "an event arrived" and "a workflow runs".

An event is stored (and acknowledged to its sender) before anything runs; then it is handed to the
platform's :class:`Dispatcher`. The default, :class:`BackgroundDispatcher`, starts the trigger's
workflow from a background task of this process with :meth:`Runs.start <runtime.Runs.start>`,
``triggered_by`` the event's source, like every other trigger: an Instant workflow runs inline in
that task, a Standard or Long one is recorded ``queued`` and handed to the durable queue, for a
worker (``runtime.Worker``) to run with the event's payload as its ``trigger``. Either way the
event records the execution it started (``execution_ids``).

The guarantee is **at most once**: a run starts only after the event moves from ``received`` to
``dispatched`` in one conditional UPDATE (``store.Events.claim``), and only its claimer starts it.
A process that dies after the claim and before its run recorded an execution leaves the event
``dispatched`` with no ``execution_ids``: it is not started again. An execution it did record is
settled as any other: a queued one is run by a worker, an inline one left ``running`` is failed
(``process_lost``) by the next process lease sweep. Events still ``received`` (the process died
between the acknowledgement and the dispatch) are dispatched again at startup by
:func:`recover_events`.

A run that cannot start (no published version, an archived workflow, a suspended customer, input
the workflow refuses...) marks the event ``failed`` with the error's code and message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread

import store
from runtime._access import system_principal

if TYPE_CHECKING:
    from runtime._platform import Platform

_logger = logging.getLogger("switchboard.events")

# Seconds aclose() lets running dispatches finish before cancelling them.
DRAIN_SECONDS = 10.0


class Dispatcher(Protocol):
    """Where stored events go to run. ``event`` is a row of ``store.Events`` (``org_id`` and ``id``
    at least); ``dispatch`` must not wait for the run, only for the hand-over."""

    async def dispatch(self, event: Mapping[str, Any]) -> None:
        """Take ``event`` (status ``received``) and run it at most once."""
        ...

    async def aclose(self) -> None:
        """Stop taking events and settle the ones taken (the process is stopping)."""
        ...


def _is_coded(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the platform's coded errors (a ``code`` and an ``http_status``)."""
    return isinstance(getattr(type(exc), "code", None), str) and isinstance(getattr(type(exc), "http_status", None), int)


def _error(exc: BaseException) -> dict[str, Any]:
    if _is_coded(exc):
        return {"code": type(exc).code, "message": str(exc)}
    # Not a coded error: its text may hold internals, so only its kind is kept; the log has it all.
    return {"code": "internal_error", "message": "the run could not start"}


class BackgroundDispatcher:
    """Starts each event's run from an asyncio task of this process (the default dispatcher)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    async def dispatch(self, event: Mapping[str, Any]) -> None:
        """Start ``event``'s run in the background and return at once."""
        if self._closed:
            return  # stays received: the next start dispatches it
        task = asyncio.create_task(self.run(event["org_id"], event["id"]), name=f"event {event['id']}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, org_id: str, event_id: str) -> dict[str, Any] | None:
        """Claim event ``event_id`` and start its workflow for its customer (:meth:`Runs.start`);
        returns the execution it started (finished, for an Instant workflow; ``queued``, for a
        Standard or Long one), or None when the event was not ``received`` or its run could not start."""
        db = self.platform.db

        def claim() -> dict[str, Any] | None:
            with db.tenant(org_id) as tx:
                return store.Events(tx).claim(org_id, event_id)

        def record(execution_id: str | None, error: dict[str, Any] | None) -> None:
            with db.tenant(org_id) as tx:
                events = store.Events(tx)
                if execution_id is not None:
                    events.started(org_id, event_id, execution_id)
                else:
                    events.failed(org_id, event_id, error or {})

        event = await anyio.to_thread.run_sync(claim)
        if event is None:
            return None
        principal = system_principal(org_id, event["customer_id"], f"trigger:{event['trigger_id']}")
        try:
            # The event quota was charged when the event was accepted (runtime._webhooks).
            started = await self.platform.runs.start(
                principal, event["workflow_id"], customer_id=event["customer_id"], input={},
                triggered_by=event["source"], trigger=event["payload"], charge_event=False,
            )
        except Exception as exc:
            if not _is_coded(exc):
                _logger.exception("event %s: the run could not start", event_id)
            await anyio.to_thread.run_sync(record, None, _error(exc))
            return None
        await anyio.to_thread.run_sync(record, started.execution["id"], None)
        return started.execution

    async def aclose(self) -> None:
        """Let running dispatches finish for up to ``DRAIN_SECONDS``, then cancel the rest."""
        self._closed = True
        pending = set(self._tasks)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=DRAIN_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


async def recover_events(platform: Platform) -> int:
    """Dispatch again every event a crash left ``received`` (across organizations, read as the
    owner); returns how many were handed to ``platform.dispatcher``. Each still runs at most once."""
    if not platform.conninfo:
        return 0
    try:
        awaiting = await anyio.to_thread.run_sync(store.events_awaiting_dispatch, platform.conninfo)
    except store.StoreError as exc:
        # A database not migrated yet, or unreachable: /health says so; the next start recovers.
        _logger.warning("cannot look for events to dispatch again: %s", exc)
        return 0
    for org_id, event_id in awaiting:
        await platform.dispatcher.dispatch({"org_id": org_id, "id": event_id})
    if awaiting:
        _logger.info("dispatched %d event(s) left received by an earlier process", len(awaiting))
    return len(awaiting)

"""Overlap of inline runs: turns per workflow and customer, and cancelling runs of this process.

An inline run of a workflow that limits its runs per customer (``WorkflowSpec.customer_limit``)
is recorded ``queued`` and waits for its turn: ``store.Executions.take_turn`` starts it when
fewer runs than the limit are ahead of it (running, or queued before it), deciding under a lock
per workflow and customer, so the limit holds across every process and the turns go in arrival
order. A waiting run is woken when a run of the same workflow and customer ends in this process,
and otherwise looks again every ``TURN_POLL_SECONDS`` (a run ending in another process).

The same workflow's durable runs count too (a running one holds a turn); they wait in their own
queue partition (``runtime._durable``). Runs of other customers are never counted.

Cancelling (``Runs.cancel``) records the execution ``cancelled``; a run waiting its turn sees it
at its next look; a running one in this process is stopped at once (its cancel scope), and one in
another process within ``CANCEL_POLL_SECONDS``: while a process has inline runs, it looks for
those of them recorded cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

import store

if TYPE_CHECKING:
    from runtime._access import Principal
    from runtime._platform import Platform
    from runtime._runs import Transactions

log = logging.getLogger(__name__)

# How often a waiting run looks again for its turn (a run ending in another process frees one).
TURN_POLL_SECONDS = 0.2
# How often a process with inline runs looks for those of them cancelled from another process.
CANCEL_POLL_SECONDS = 0.5


def _key(execution: dict[str, Any]) -> str:
    return f"{execution['org_id']}/{execution['customer_id']}/{execution['workflow_id']}"


class Overlap:
    """Turns and cancellation for one process's inline runs (a field of ``Runs``)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._ended: dict[str, asyncio.Event] = {}
        # execution id -> (organization, cancel scope) of the inline runs running here
        self._running: dict[str, tuple[str, anyio.CancelScope]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def wait_turn(self, tx: Transactions, principal: Principal, execution: dict[str, Any],
                        limit: int) -> dict[str, Any]:
        """Wait until ``execution`` (recorded ``queued``) gets its turn; returns its row, then
        ``running``, or finished: cancelled while it waited, coalesced (it never waited), or
        ``timeout`` (code ``overlap_wait_exceeded``) when no turn came within the run deadline."""
        if execution["status"] != "queued":
            return execution
        key = _key(execution)
        deadline = time.monotonic() + self.platform.config.run_deadline

        def take() -> dict[str, Any]:
            with tx.open(principal) as t:
                return store.Executions(t).take_turn(principal.org_id, execution["id"], limit)

        while True:
            ended = self._ended.setdefault(key, asyncio.Event())
            row = await tx.step(take)
            if row["status"] != "queued":
                return row
            left = deadline - time.monotonic()
            if left <= 0:
                return await tx.step(self._time_out, tx, principal, execution)
            with anyio.move_on_after(min(TURN_POLL_SECONDS, left)):
                await ended.wait()

    def _time_out(self, tx: Transactions, principal: Principal, execution: dict[str, Any]) -> dict[str, Any]:
        error = {"code": "overlap_wait_exceeded", "step": None,
                 "message": f"no turn came within {self.platform.config.run_deadline:g} seconds: other runs of "
                            "this workflow for this customer held every turn"}
        with tx.open(principal) as t:
            executions = store.Executions(t)
            if executions.get(principal.org_id, execution["id"])["status"] != "queued":
                return executions.get(principal.org_id, execution["id"])
            return executions.finish(principal.org_id, execution["id"], status="timeout", error=error)

    def finished(self, execution: dict[str, Any]) -> None:
        """A run of ``execution``'s workflow and customer ended (or was cancelled): wake the runs of
        this process waiting for a turn."""
        ended = self._ended.pop(_key(execution), None)
        if ended is not None:
            ended.set()

    # -- cancelling ---------------------------------------------------------------------------

    def running(self, execution_id: str, scope: anyio.CancelScope, org_id: str | None = None) -> None:
        """Register a running inline run, so that cancelling it stops it."""
        self._running[execution_id] = (org_id or "", scope)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def done(self, execution_id: str) -> None:
        """The inline run ``execution_id`` ended."""
        self._running.pop(execution_id, None)

    def cancel_local(self, execution_id: str) -> bool:
        """Stop ``execution_id`` when it runs in this process; whether it did."""
        entry = self._running.get(execution_id)
        if entry is None:
            return False
        entry[1].cancel()
        return True

    async def _watch(self) -> None:
        # Runs only while this process has inline runs: one query per organization per poll.
        while self._running:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            by_org: dict[str, list[str]] = {}
            for execution_id, (org_id, _scope) in list(self._running.items()):
                if org_id:
                    by_org.setdefault(org_id, []).append(execution_id)
            for org_id, ids in by_org.items():
                try:
                    cancelled = await anyio.to_thread.run_sync(self._cancelled, org_id, ids)
                except store.StoreError as exc:  # a database hiccup: look again at the next poll
                    log.warning("could not look for cancelled runs: %s", exc)
                    continue
                for execution_id in cancelled:
                    self.cancel_local(execution_id)

    def _cancelled(self, org_id: str, ids: list[str]) -> list[str]:
        with self.platform.db.tenant(org_id) as tx:
            return store.Executions(tx).cancelled_among(org_id, ids)

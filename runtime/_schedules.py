"""Schedules firing: the scheduler loop every worker runs, and what exactly once means here.

A schedule row (``store.Schedules``, migration m006) exists per schedule trigger of a deployed
workflow and per active customer of the deployment's environment; the store keeps the rows in
step with deployments, customers, triggers and the organization's time zone. Its slots are the
engine's (``engine.Schedule``: cron, interval, daily, weekly, monthly; wall-clock kinds in the
trigger's time zone, else the organization's, DST-correct).

Each worker process (``switchboard worker``, and the in-process worker of ``switchboard run``)
runs a :class:`Scheduler`. Every ``poll_seconds`` it lists the rows due (or not planned yet) and,
for each, in **one transaction** of the row's organization:

1. locks the row if it is still due (``SELECT ... FOR UPDATE SKIP LOCKED``, the condition read
   after the lock): a row another worker holds is skipped, and one it has fired and committed is no
   longer due;
2. computes the slot to fire (:meth:`engine.Schedule.due`) and starts the run with
   :meth:`Runs.start <runtime.Runs.start>` (``triggered_by="schedule"``, a system principal
   ``schedule:<id>``), whose execution row is written in this same transaction (a savepoint of it);
   the run is always queued for a durable worker, whatever the tier, so the loop never waits for a
   run (an Instant workflow runs durably too, with the Standard deadline);
3. stores the event (source ``schedule``: ``dispatched`` with the execution, ``refused`` when the
   event quota refuses, ``failed`` when the run cannot start: nothing published, a suspended
   customer, input the workflow refuses) and advances ``next_due_at``; then commits.

So with any number of workers each slot fires exactly once: the execution, the event and the
advanced slot commit together or not at all. A process that dies before the commit leaves nothing
(the row stays due and the next worker fires the slot); one that dies after it leaves a ``queued``
execution that a worker runs. Two edges, exactly: the execution is handed to the durable queue
(``DurableQueue.enqueue``, by execution id) just before the commit, so a crash in between leaves
a DBOS workflow whose execution never existed (its claim step fails; nothing runs) and the slot is
fired again by the next worker under a new execution id; a commit that succeeds while its
hand-over was lost leaves the execution ``queued`` until a worker's lease sweep hands it over again
(``runtime._leases``). The event quota is charged in its own transaction, so a crash before the
commit may charge an event whose run never started.

Catch-up policy (a worker that was down, or no worker at all): a schedule whose due slot has
passed fires **once**, for the latest slot at or before now, however many slots were missed; its
trigger says so (``missed: true`` and ``due_at``, the first slot that was missed); the next slot is
the first after now. A row not planned yet (new, or its schedule, zone or customer changed) is
planned for the first slot after the moment a scheduler sees it: nothing fires for the past.

The run sees as ``trigger``: ``{"kind": "schedule", "schedule_id", "slot", "due_at", "missed"}``
(times in ISO 8601, UTC).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from pydantic import ValidationError

import store
from engine import Schedule
from engine.errors import EngineError
from runtime._access import Principal, system_principal
from runtime._periodic import Periodic
from runtime._runs import Transactions
from runtime.errors import ServiceError

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)

# How often a scheduler looks for due schedules (``switchboard worker``: SWITCHBOARD_SCHEDULE_POLL_SECONDS).
SCHEDULE_POLL_SECONDS = 1.0
# Schedules one pass fires at most (the rest wait for the next pass).
SCHEDULE_BATCH = 100
# A schedule whose stored trigger no longer validates is looked at again this much later.
INVALID_RETRY = timedelta(hours=1)


def _error(exc: BaseException) -> dict[str, Any]:
    code = getattr(type(exc), "code", None)
    if isinstance(code, str):
        return {"code": code, "message": str(exc)}
    return {"code": "internal_error", "message": "the run could not start"}


@contextmanager
def _savepoint(tx: store.Tx) -> Iterator[store.Tx]:
    # A savepoint of the firing transaction: a run refused mid-plan rolls back to it, and the event
    # that records the refusal still commits with the advanced slot.
    with tx.transaction():
        yield tx


class Scheduler(Periodic):
    """Fires due schedules from this process, for the life of an ``async with`` block (see the
    module docstring). :meth:`tick` is one pass, callable alone (tests, a one-shot command)."""

    name = "schedules"

    def __init__(self, platform: Platform, *, poll_seconds: float = SCHEDULE_POLL_SECONDS,
                 batch: int = SCHEDULE_BATCH) -> None:
        super().__init__(platform, poll_seconds=poll_seconds, batch=batch)

    async def tick(self) -> list[dict[str, Any]]:
        """One pass: plan the schedules not planned yet and fire the due ones; returns what each
        fired (``schedule_id``, ``slot``, ``execution_id``, ``status`` of its event)."""
        platform = self.platform
        due = await anyio.to_thread.run_sync(store.schedules_due, platform.conninfo, platform.clock(), self.batch)
        fired = []
        for org_id, schedule_id in due:
            try:
                outcome = await self.fire(org_id, schedule_id)
            except Exception as exc:
                log.warning("schedules: schedule %s of %s failed to fire: %s", schedule_id, org_id, exc)
                continue
            if outcome is not None and "slot" in outcome:
                fired.append(outcome)
        return fired

    async def fire(self, org_id: str, schedule_id: str, now: datetime | None = None) -> dict[str, Any] | None:
        """Fire schedule ``schedule_id`` if it is due at ``now`` (default: the platform's clock) and
        no other transaction holds it; plan it if it is not planned. Returns what was done, or None."""
        now = now or self.platform.clock()
        opened = self.platform.db.tenant(org_id)
        tx = await anyio.to_thread.run_sync(opened.__enter__)
        try:
            outcome = await self._fire(tx, org_id, schedule_id, now)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                if not await anyio.to_thread.run_sync(opened.__exit__, type(exc), exc, exc.__traceback__):
                    raise
            return None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(opened.__exit__, None, None, None)  # commits
        return outcome

    async def _fire(self, tx: store.Tx, org_id: str, schedule_id: str, now: datetime) -> dict[str, Any] | None:
        run = anyio.to_thread.run_sync
        row = await run(self._lock, tx, org_id, schedule_id, now)
        if row is None:
            return None
        schedules = store.Schedules(tx)
        try:
            schedule = Schedule.of(row["config"], row["timezone"])
        except (ValidationError, ValueError) as exc:
            error = {"code": "schedule_invalid", "message": f"the schedule trigger no longer validates: {exc}"}
            await run(lambda: schedules.plan(org_id, schedule_id, now + INVALID_RETRY, error))
            return {"schedule_id": schedule_id, "planned": now + INVALID_RETRY, "error": error}
        if row["next_due_at"] is None:
            next_slot = schedule.next_after(now)
            await run(lambda: schedules.plan(org_id, schedule_id, next_slot))
            return {"schedule_id": schedule_id, "planned": next_slot}
        due = schedule.due(row["next_due_at"], now)
        if due is None:
            return None
        trigger = {"kind": "schedule", "schedule_id": schedule_id, "slot": due.slot.isoformat(),
                   "due_at": row["next_due_at"].isoformat(), "missed": due.missed}
        principal = system_principal(org_id, row["customer_id"], f"schedule:{schedule_id}")
        execution_id, status, error = await self._start(tx, principal, row, trigger)
        await run(self._record, tx, org_id, row, trigger, status, execution_id, error, due.slot, due.next_slot, now)
        return {"schedule_id": schedule_id, "slot": due.slot, "next_slot": due.next_slot, "missed": due.missed,
                "execution_id": execution_id, "status": status, "error": error}

    def _lock(self, tx: store.Tx, org_id: str, schedule_id: str, now: datetime) -> dict[str, Any] | None:
        return store.Schedules(tx).lock_due(org_id, schedule_id, now)

    async def _start(self, tx: store.Tx, principal: Principal, row: dict[str, Any],
                     trigger: dict[str, Any]) -> tuple[str | None, str, dict[str, Any] | None]:
        transactions = Transactions(open=lambda _principal: _savepoint(tx), step=anyio.to_thread.run_sync)
        try:
            started = await self.platform.runs.start(
                principal, row["workflow_id"], customer_id=row["customer_id"], version=row["version"],
                triggered_by="schedule", trigger=trigger, transactions=transactions, inline=False,
            )
        except store.QuotaExceeded as exc:
            return None, "refused", _error(exc)
        except (ServiceError, EngineError, store.ResourceError) as exc:
            return None, "failed", _error(exc)
        return started.execution["id"], "dispatched", None

    def _record(self, tx: store.Tx, org_id: str, row: dict[str, Any], trigger: dict[str, Any], status: str,
                execution_id: str | None, error: dict[str, Any] | None, slot: datetime, next_slot: datetime,
                now: datetime) -> None:
        events = store.Events(tx)
        event = events.add(
            org_id, customer_id=row["customer_id"], environment_id=row["environment_id"], source="schedule",
            status=status, payload=trigger, payload_bytes=len(json.dumps(trigger)), trigger_id=row["trigger_id"],
            workflow_id=row["workflow_id"], error=error,
        )
        if event is not None and execution_id is not None:
            events.started(org_id, event["id"], execution_id)
        store.Schedules(tx).fired(org_id, row["id"], slot=slot, next_due_at=next_slot, fired_at=now,
                                  execution_id=execution_id, error=error)


"""Long executions' durable sleeps and waits for an event.

A durable run (``runtime.Worker``) runs with :class:`DurableClock` and :class:`DurableWaiter`:

* ``delay`` steps sleep with ``DBOS.sleep_async``: DBOS records the wake-up time as a step the
  first time, so a worker restarted mid-sleep sleeps only what is left (or not at all), without
  holding anything in the meantime but the asyncio timer.
* ``wait`` steps (``engine.specs.WaitStep``, Long workflows only) first register the wait
  (``store.EventWaits``: the customer, source, trigger and rendered ``match``, and when it expires),
  as a DBOS step, then block in ``DBOS.recv_async`` on the wait's topic for the step's timeout.
  DBOS keeps that receive's deadline too, so a restarted worker goes on waiting for what is left.

When an event is stored (a verified webhook delivery, :meth:`Webhooks.deliver
<runtime.Webhooks.deliver>`; an app event found by polling), :func:`offer_event` claims the open
waits of the event's customer and source it matches (one event per wait, decided by a conditional
UPDATE under ``FOR UPDATE SKIP LOCKED``) and sends the event to each waiting execution
(``DBOSClient.send``, idempotency key the wait's id) before its transaction commits: a failed send
rolls the claim back. DBOS keeps the message until the execution receives it, so an event that
arrives while no worker runs resumes the wait when one does.

What the guarantee is not: an event stored before the wait was registered does not resume it (a
wait listens from the moment it starts).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from dbos import DBOS

import store
from engine.workflow import EventWait

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)


class DurableClock:
    """The interpreter's clock in a durable run: wall time, and sleeps DBOS keeps across restarts."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def now(self) -> datetime:
        return self.platform.clock()

    async def sleep(self, seconds: float) -> None:
        await DBOS.sleep_async(seconds)


class DurableWaiter:
    """Answers the ``wait`` steps of one durable execution (see the module docstring)."""

    def __init__(self, platform: Platform, org_id: str, customer_id: str, execution_id: str) -> None:
        self.platform = platform
        self.org_id = org_id
        self.customer_id = customer_id
        self.execution_id = execution_id

    def _register(self, request: EventWait) -> str:
        expires_at = self.platform.clock() + timedelta(seconds=request.timeout)
        with self.platform.db.tenant(self.org_id) as tx:
            row = store.EventWaits(tx).open(
                self.org_id, customer_id=self.customer_id, execution_id=self.execution_id, topic=request.topic,
                source=request.source, trigger_id=request.trigger, match=request.match, expires_at=expires_at)
        return row["id"]

    async def wait(self, request: EventWait) -> dict[str, Any] | None:
        await DBOS.run_step_async({"name": f"{request.topic} register"}, anyio.to_thread.run_sync,
                                  self._register, request)
        return await DBOS.recv_async(request.topic, timeout_seconds=request.timeout)


def offer_event(platform: Platform, tx: store.Tx, event: dict[str, Any]) -> list[str]:
    """Claim, in ``tx``, the open waits stored ``event`` matches and send it to their executions
    (see the module docstring); returns the executions resumed. Blocking: call it from a thread,
    inside the transaction that stored the event or after it."""
    claimed = store.EventWaits(tx).match_event(event["org_id"], event, platform.clock())
    for wait in claimed:
        platform.durable.send(wait["execution_id"], {"event_id": event["id"], "payload": event.get("payload")},
                              topic=wait["topic"], idempotency_key=f"wait:{wait['id']}")
    return [wait["execution_id"] for wait in claimed]

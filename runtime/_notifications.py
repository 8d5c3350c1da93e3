"""Outbound notifications: delivering platform events to organizations' endpoints, signed per
Standard Webhooks, retried with backoff, every attempt recorded.

Deliveries are queued by the database when a platform event is stored (``store/_schema_alerts.py``):
``execution.failed``, ``alert.fired``, ``alert.resolved``, ``connection.needs_reconnect``. Each
worker runs a :class:`Notifier`; every ``poll_seconds`` it lists the pending deliveries due at the
platform clock's now and, for each, in one transaction of its organization:

1. locks the delivery if it is still due (``FOR UPDATE SKIP LOCKED``);
2. signs its stored body with the endpoint's secret (``webhook-id``: the delivery id, the same on
   every attempt; ``webhook-timestamp``: the attempt's time; ``webhook-signature``: ``v1,`` and the
   HMAC-SHA256 of ``id.timestamp.body``, by the ``standardwebhooks`` package) and POSTs it through
   the platform's guarded HTTP client (the SSRF guard vets the URL and every address it resolves
   to, at send time; redirects are not followed);
3. records the attempt (status, latency, response code or error) and the delivery's next state:
   ``succeeded`` on a 2xx; otherwise ``pending`` again at ``now + retry.delay(attempt)``, or
   ``failed`` when :class:`DeliveryRetry` has no attempts left; then commits.

The retry schedule lives in the rows (``attempts``, ``next_attempt_at``), so a worker that restarts,
or another worker, continues it. A worker that dies mid-attempt rolls back: the delivery stays due
and is attempted again under the same attempt number (a receiver may see that attempt twice, with
the same ``webhook-id``, which is what receivers deduplicate by).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from standardwebhooks import Webhook

import store
from engine.errors import EngineError
from engine.http import NO_RETRY, Timeouts
from runtime._periodic import Periodic

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)

# How often a notifier looks for due deliveries (``switchboard worker``: SWITCHBOARD_NOTIFICATION_POLL_SECONDS).
NOTIFICATION_POLL_SECONDS = 1.0
# Deliveries one pass attempts at most, and at once.
NOTIFICATION_BATCH = 100
NOTIFICATION_CONCURRENCY = 4
# One attempt's limit: a receiver is expected to acknowledge quickly and work afterwards.
DELIVERY_TIMEOUT = Timeouts(connect=5.0, read=10.0, write=10.0, pool=5.0, total=15.0)
USER_AGENT = "Switchboard-Notifications/1"


@dataclass(frozen=True)
class DeliveryRetry:
    """When a failed delivery is attempted again: ``max_attempts`` in all, the first retry
    ``first_delay`` seconds after the first failure, each later one ``factor`` times longer, at
    most ``max_delay`` (exponential backoff, as tenacity's ``wait_exponential``; no jitter: the
    schedule is in the rows, and workers are not in step)."""

    max_attempts: int = 8
    first_delay: float = 5.0
    factor: float = 2.0
    max_delay: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.first_delay < 0 or self.factor < 1 or self.max_delay < 0:
            raise ValueError("DeliveryRetry needs max_attempts >= 1, delays >= 0 and factor >= 1")

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based); None when it was the last."""
        if attempt >= self.max_attempts:
            return None
        return min(self.max_delay, self.first_delay * self.factor ** (attempt - 1))


DEFAULT_DELIVERY_RETRY = DeliveryRetry()


def delivery_body(body: Any) -> bytes:
    """The bytes a delivery sends (and signs): its stored body as compact JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_delivery(secret: str, delivery_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery_id, at, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class Notifier(Periodic):
    """Delivers due notifications from this process, for the life of an ``async with`` block (see
    the module docstring). :meth:`tick` is one pass, callable alone (tests, a one-shot command)."""

    name = "notifications"

    def __init__(self, platform: Platform, *, poll_seconds: float = NOTIFICATION_POLL_SECONDS,
                 batch: int = NOTIFICATION_BATCH, retry: DeliveryRetry = DEFAULT_DELIVERY_RETRY,
                 concurrency: int = NOTIFICATION_CONCURRENCY) -> None:
        super().__init__(platform, poll_seconds=poll_seconds, batch=batch)
        self.retry = retry
        self.concurrency = concurrency

    async def tick(self) -> list[dict[str, Any]]:
        """One pass; returns each attempt made (the delivery row after it, with ``org_id``)."""
        platform = self.platform
        now = platform.clock()
        due = await anyio.to_thread.run_sync(store.deliveries_due, platform.conninfo, now, self.batch)
        done: list[dict[str, Any]] = []
        limiter = anyio.Semaphore(self.concurrency)

        async def one(org_id: str, delivery_id: str) -> None:
            async with limiter:
                try:
                    row = await self.deliver(org_id, delivery_id, now)
                except Exception as exc:
                    log.warning("notifications: delivery %s of %s failed: %s", delivery_id, org_id, exc)
                    return
                if row is not None:
                    done.append(row)

        async with anyio.create_task_group() as group:
            for org_id, delivery_id in due:
                group.start_soon(one, org_id, delivery_id)
        return done

    async def deliver(self, org_id: str, delivery_id: str, now: datetime | None = None) -> dict[str, Any] | None:
        """Attempt delivery ``delivery_id`` if it is due at ``now`` (default: the platform's clock)
        and no other transaction holds it; returns the delivery after the attempt, or None."""
        now = now or self.platform.clock()
        opened = self.platform.db.tenant(org_id)
        tx = await anyio.to_thread.run_sync(opened.__enter__)
        try:
            outcome = await self._attempt(tx, org_id, delivery_id, now)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                if not await anyio.to_thread.run_sync(opened.__exit__, type(exc), exc, exc.__traceback__):
                    raise
            return None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(opened.__exit__, None, None, None)  # commits
        return outcome

    async def _attempt(self, tx: store.Tx, org_id: str, delivery_id: str, now: datetime) -> dict[str, Any] | None:
        platform = self.platform
        run = anyio.to_thread.run_sync
        row = await run(lambda: store.Deliveries(tx).lock_due(org_id, delivery_id, now))
        if row is None:
            return None
        attempt = row["attempts"] + 1
        code: int | None = None
        error: str | None = None
        latency: float | None = None
        if not row["enabled"]:
            error = "the endpoint is disabled"
        else:
            secret = await run(lambda: store.NotificationEndpoints(tx).secret(org_id, row["endpoint_id"],
                                                                              platform.encryptor))
            body = delivery_body(row["body"])
            headers = sign_delivery(secret, delivery_id, now, body)
            started = time.perf_counter()
            try:
                response = await platform.http.request(
                    "POST", row["url"], content=body, headers=headers, retry=NO_RETRY, follow_redirects=False,
                    timeout=DELIVERY_TIMEOUT)
                code = response.status_code
                if not 200 <= code < 300:
                    error = f"the endpoint answered HTTP {code}"
            except EngineError as exc:
                error = f"{exc.code}: {exc}"
            latency = (time.perf_counter() - started) * 1000
        succeeded = error is None
        delay = None if succeeded or not row["enabled"] else self.retry.delay(attempt)
        next_at = now + timedelta(seconds=delay) if delay is not None else None
        updated = await run(lambda: store.Deliveries(tx).attempted(
            org_id, delivery_id, attempt=attempt, at=now, succeeded=succeeded, response_code=code, latency_ms=latency,
            error=error, next_attempt_at=next_at))
        return {**updated, "org_id": org_id}

"""Events: what arrived to start work for a customer (webhook deliveries, schedules, app events,
manual requests), stored before anything runs, and what the platform itself reports (source
``platform``: failed executions, alerts, connections to reconnect; see ``store/_schema_alerts.py``).
Statuses and deduplication are described in ``store/_schema_events.py``.

A customer-bound transaction sees only that customer's events (row-level security), as with
executions.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from psycopg.errors import ForeignKeyViolation
from psycopg.types.json import Jsonb

from store._db import connect, translate_errors
from store._ids import new_id
from store._paging import CUSTOMERS_OF_ENVIRONMENT, Filters, ListQuery, Page, fetch_page
from store._schema_alerts import PLATFORM_EVENT_TYPES
from store._schema_events import EVENT_SOURCES, EVENT_STATUSES
from store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from store._database import Tx

_SUMMARY = (
    "org_id, id, customer_id, environment_id, source, type, trigger_id, workflow_id, webhook_id, status, error,"
    " payload_bytes, execution_ids, received_at, dispatched_at"
)
_DETAIL = _SUMMARY + ", payload"


def _check(field: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidInput("event", field, f"must be one of {', '.join(allowed)}")


class Events:
    """An organization's events."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def add(self, org_id: str, *, customer_id: str, environment_id: str, source: str, status: str, payload: Any,
            payload_bytes: int, trigger_id: str | None = None, workflow_id: str | None = None,
            webhook_id: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Store an event; returns its row, or None when an accepted event of ``trigger_id`` already has
        ``webhook_id`` (a duplicate delivery: nothing is stored).

        The unique index decides, not a read: of concurrent deliveries with one id, one inserts and
        the others wait for it to commit, then find the conflict. Raises ``NotFound`` (customer).
        """
        _check("source", source, EVENT_SOURCES)
        _check("status", status, EVENT_STATUSES)
        try:
            return self.tx.execute(
                "INSERT INTO events (org_id, id, customer_id, environment_id, source, trigger_id, workflow_id,"
                " webhook_id, status, error, payload, payload_bytes)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (org_id, trigger_id, webhook_id) WHERE webhook_id IS NOT NULL AND status <> 'refused'"
                f" DO NOTHING RETURNING {_DETAIL}",
                (org_id, new_id("evt"), customer_id, environment_id, source, trigger_id, workflow_id, webhook_id,
                 status, Jsonb(error) if error is not None else None, Jsonb(payload), payload_bytes),
            ).fetchone()
        except ForeignKeyViolation as exc:
            raise NotFound("customer", customer_id) from exc

    def add_platform(self, org_id: str, type: str, payload: dict[str, Any], *, customer_id: str | None = None,
                     environment_id: str | None = None, workflow_id: str | None = None,
                     execution_ids: list[str] | None = None) -> dict[str, Any]:
        """Store a platform event (source ``platform``, ``type`` one of ``PLATFORM_EVENT_TYPES``),
        ``dispatched`` at once: the database queues a delivery for each endpoint subscribed to it
        in this transaction (``store/_schema_alerts.py``). Without ``customer_id`` it belongs to
        the organization and no customer-bound transaction sees it."""
        _check("type", type, PLATFORM_EVENT_TYPES)
        return self.tx.execute(
            "INSERT INTO events (org_id, id, customer_id, environment_id, source, type, workflow_id, status, payload,"
            " payload_bytes, execution_ids, dispatched_at)"
            " VALUES (%s, %s, %s, %s, 'platform', %s, %s, 'dispatched', %s, %s, %s, clock_timestamp())"
            f" RETURNING {_DETAIL}",
            (org_id, new_id("evt"), customer_id, environment_id, type, workflow_id, Jsonb(payload),
             len(json.dumps(payload)), list(execution_ids or [])),
        ).fetchone()

    def accepted(self, org_id: str, trigger_id: str, webhook_id: str) -> dict[str, Any] | None:
        """The accepted (not refused) event of ``trigger_id`` with ``webhook_id``, or None."""
        return self.tx.execute(
            f"SELECT {_SUMMARY} FROM events WHERE org_id = %s AND trigger_id = %s AND webhook_id = %s"
            " AND status <> 'refused'",
            (org_id, trigger_id, webhook_id),
        ).fetchone()

    def get(self, org_id: str, event_id: str) -> dict[str, Any]:
        """One event with its payload. Raises ``NotFound``."""
        row = self.tx.execute(f"SELECT {_DETAIL} FROM events WHERE org_id = %s AND id = %s", (org_id, event_id)).fetchone()
        if row is None:
            raise NotFound("event", event_id)
        return row

    def list(self, org_id: str, query: ListQuery, *, source: str | None = None, status: str | None = None,
             type: str | None = None, trigger_id: str | None = None, customer_id: str | None = None,
             hidden_environment: str | None = None, after: str | None = None) -> Page:
        """Events without payloads (sort: received_at), leaving out the customers of environment
        ``hidden_environment`` (a slug). ``after`` (an event id) keeps only the events received
        after that one (by ``received_at``, then id): what a poller asks for with the newest event
        it has seen. Raises ``InvalidInput`` (field ``after``) for an event this transaction cannot see."""
        _check("source", source, (*EVENT_SOURCES, "platform"))
        _check("status", status, EVENT_STATUSES)
        _check("type", type, PLATFORM_EVENT_TYPES)
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if after is not None:
            mark = self.tx.execute(
                "SELECT received_at, id FROM events WHERE org_id = %s AND id = %s", (org_id, after)
            ).fetchone()
            if mark is None:
                raise InvalidInput("event", "after", f"no event {after!r} to list the events after")
            filters.add("(received_at, id) > (%(after_at)s, %(after_id)s)", after_at=mark["received_at"], after_id=mark["id"])
        if source:
            filters.add("source = %(source)s", source=source)
        if status:
            filters.add("status = %(status)s", status=status)
        if type:
            filters.add("type = %(type)s", type=type)
        if trigger_id:
            filters.add("trigger_id = %(trigger)s", trigger=trigger_id)
        if customer_id:
            filters.add("customer_id = %(customer)s", customer=customer_id)
        if hidden_environment:
            filters.add("customer_id NOT IN " + CUSTOMERS_OF_ENVIRONMENT, hidden_env=hidden_environment)
        return fetch_page(self.tx, "event", "events", query, {"received_at": "received_at"}, filters, columns=_SUMMARY)

    # -- dispatch ------------------------------------------------------------------------------

    def claim(self, org_id: str, event_id: str) -> dict[str, Any] | None:
        """Move a ``received`` event to ``dispatched`` and return it (payload included); None when it
        is not ``received`` (already claimed by another dispatcher, or never accepted). The one
        transition that lets an event's run start: whoever claims it runs it, so it runs at most once."""
        return self.tx.execute(
            "UPDATE events SET status = 'dispatched', dispatched_at = clock_timestamp()"
            f" WHERE org_id = %s AND id = %s AND status = 'received' RETURNING {_DETAIL}",
            (org_id, event_id),
        ).fetchone()

    def started(self, org_id: str, event_id: str, execution_id: str) -> dict[str, Any]:
        """Record that dispatched event ``event_id`` started execution ``execution_id``."""
        row = self.tx.execute(
            "UPDATE events SET execution_ids = array_append(execution_ids, %s)"
            f" WHERE org_id = %s AND id = %s RETURNING {_SUMMARY}",
            (execution_id, org_id, event_id),
        ).fetchone()
        if row is None:
            raise NotFound("event", event_id)
        return row

    def failed(self, org_id: str, event_id: str, error: dict[str, Any]) -> dict[str, Any]:
        """Mark event ``event_id`` ``failed`` with ``error`` (``code``, ``message``): its run could not start."""
        row = self.tx.execute(
            f"UPDATE events SET status = 'failed', error = %s WHERE org_id = %s AND id = %s RETURNING {_SUMMARY}",
            (Jsonb(error), org_id, event_id),
        ).fetchone()
        if row is None:
            raise NotFound("event", event_id)
        return row


def events_awaiting_dispatch(admin_conninfo: str, limit: int = 1000) -> list[tuple[str, str]]:
    """``(org_id, event_id)`` of events still ``received``, oldest first (asked as the owner, across
    tenants: at startup, the events a crash left between their acknowledgement and their dispatch)."""
    with translate_errors(), connect(admin_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT org_id, id FROM events WHERE status = 'received' ORDER BY received_at LIMIT %s", (limit,)
        ).fetchall()
    return [(org_id, event_id) for org_id, event_id in rows]

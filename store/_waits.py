"""Escalations and event waits of durable executions (migration m015, ``DURABLE2_SCHEMA``).

``executions.escalations`` lists, in order, each time an execution moved to the next tier because
it timed out (``{"from", "to", "at", "reason"}``); ``executions.carried`` holds the connector calls
an escalated Instant run completed before its deadline (the durable run that continues it answers
them from here instead of sending them again). See ``Executions.escalate``.

``event_waits`` holds one row per ``wait`` step of a Long execution that is waiting for an event:
the source and trigger it listens to, the values the event's payload must hold (``match``: dotted
paths to values), and, once an event matched, that event. :meth:`EventWaits.match_event` claims the
open waits an event matches, one event per wait (the conditional UPDATE decides).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.errors import ForeignKeyViolation
from psycopg.types.json import Jsonb

from store._ids import new_id
from store._schema import APP_ROLE
from store.errors import NotFound

if TYPE_CHECKING:
    from store._database import Tx

_ORG = "current_setting('app.org_id', true)"
_CUSTOMER = "coalesce(current_setting('app.customer_id', true), '')"

DURABLE2_SCHEMA = f"""
ALTER TABLE executions ADD COLUMN escalations jsonb NOT NULL DEFAULT '[]';
ALTER TABLE executions ADD COLUMN carried jsonb;

CREATE TABLE event_waits (
    org_id        text NOT NULL,
    id            text NOT NULL,
    customer_id   text NOT NULL,
    execution_id  text NOT NULL,
    topic         text NOT NULL,
    source        text NOT NULL,
    trigger_id    text,
    match         jsonb NOT NULL DEFAULT '{{}}',
    expires_at    timestamptz,
    event_id      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, execution_id, topic),
    FOREIGN KEY (org_id, execution_id) REFERENCES executions(org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE
);
CREATE INDEX event_waits_open ON event_waits (org_id, customer_id, source) WHERE event_id IS NULL;
ALTER TABLE event_waits ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON event_waits USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
CREATE POLICY customer ON event_waits AS RESTRICTIVE
    USING ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER}) WITH CHECK ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER});
GRANT SELECT, INSERT, UPDATE, DELETE ON event_waits TO {APP_ROLE};
"""

WAIT_SOURCES = ("webhook", "app_event")


def _at(payload: Any, path: str) -> tuple[bool, Any]:
    """The value at dotted ``path`` in ``payload`` (found, value)."""
    value = payload
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def payload_matches(match: dict[str, Any], payload: Any) -> bool:
    """Whether ``payload`` holds, at each dotted path of ``match``, the value given there."""
    for path, expected in match.items():
        found, value = _at(payload, path)
        if not found or value != expected:
            return False
    return True


class EventWaits:
    """Open and matched event waits of an organization's executions."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def open(self, org_id: str, *, customer_id: str, execution_id: str, topic: str, source: str,
             trigger_id: str | None, match: dict[str, Any], expires_at: datetime | None) -> dict[str, Any]:
        """Register the wait ``topic`` of execution ``execution_id`` (idempotent: a wait already
        registered under that topic is returned as it is, matched or not). Raises ``NotFound``."""
        try:
            self.tx.execute(
                "INSERT INTO event_waits (org_id, id, customer_id, execution_id, topic, source, trigger_id, match,"
                " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (org_id, execution_id, topic) DO NOTHING",
                (org_id, new_id("wait"), customer_id, execution_id, topic, source, trigger_id, Jsonb(match), expires_at),
            )
        except ForeignKeyViolation as exc:
            raise NotFound("execution", execution_id) from exc
        return self.get(org_id, execution_id, topic)

    def get(self, org_id: str, execution_id: str, topic: str) -> dict[str, Any]:
        row = self.tx.execute(
            "SELECT * FROM event_waits WHERE org_id = %s AND execution_id = %s AND topic = %s",
            (org_id, execution_id, topic),
        ).fetchone()
        if row is None:
            raise NotFound("event wait", f"{execution_id}/{topic}")
        return row

    def of_execution(self, org_id: str, execution_id: str) -> list[dict[str, Any]]:
        """The waits of one execution, oldest first."""
        return self.tx.execute(
            "SELECT * FROM event_waits WHERE org_id = %s AND execution_id = %s ORDER BY created_at, id",
            (org_id, execution_id),
        ).fetchall()

    def match_event(self, org_id: str, event: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
        """Claim the open, unexpired waits of ``event``'s customer and source (and trigger, for a
        wait that names one) whose ``match`` its payload satisfies: each becomes matched by this
        event. Returns the claimed waits. Locks them (``FOR UPDATE SKIP LOCKED``) so that two
        events arriving together never both claim one wait."""
        rows = self.tx.execute(
            "SELECT * FROM event_waits WHERE org_id = %s AND customer_id = %s AND source = %s AND event_id IS NULL"
            " AND (trigger_id IS NULL OR trigger_id = %s) AND (expires_at IS NULL OR expires_at > %s)"
            " ORDER BY created_at, id FOR UPDATE SKIP LOCKED",
            (org_id, event["customer_id"], event["source"], event.get("trigger_id"), now),
        ).fetchall()
        claimed = []
        for row in rows:
            if payload_matches(row["match"], event.get("payload")):
                claimed.append(self.tx.execute(
                    "UPDATE event_waits SET event_id = %s, resolved_at = now() WHERE org_id = %s AND id = %s"
                    " RETURNING *", (event["id"], org_id, row["id"]),
                ).fetchone())
        return claimed

"""Polls: one row per deployed workflow triggered by a polling app event, per customer, with its
cursor and when it is next due; and the records each poll has seen, for de-duplication.

Migration m009 (``POLLS_SCHEMA``) adds both tables. A ``polls`` row exists for each ``app_event``
trigger of a deployed workflow (the one in the deployed version's spec, ``trigger_id`` NULL, and
each enabled ``app_event`` trigger attached to the workflow) whose connector (by key, any
published version) declares that event with ``kind: polling``, times each active customer of the
deployment's environment, unless the workflow is archived. :func:`sync_polls` makes the rows match
that, across organizations, as the table owner: a worker's poller calls it before each pass (so a
deployment starts polling at the next pass rather than in the deploy's transaction, unlike
schedules). Foreign keys delete the rows of a removed deployment, customer or trigger.

``cursor`` is the watermark the poller sends next (NULL: none yet); ``baseline_at`` NULL means no
poll has succeeded yet (the first one takes a baseline, see ``runtime/_polling.py``); ``next_due_at`` NULL means due now. The poller claims a due
row with :meth:`Polls.lock_due` (``FOR UPDATE SKIP LOCKED``) and holds it while it polls.

``poll_records`` keeps, per poll, each record's id and the version last seen. It is bounded: after
each poll only the ``SEEN_LIMIT`` most recently seen records of that poll are kept. The bound is
safe because the cursor only moves forward: a record the API returns again has a version at or
after the cursor, so it was seen within the latest polls; only an app that sends a record older
than the cursor again, after more than ``SEEN_LIMIT`` newer ones, would start it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from store._db import connect, translate_errors
from store._ids import new_id
from store._schema import APP_ROLE
from store.errors import NotFound

if TYPE_CHECKING:
    from store._database import Tx

_ORG = "current_setting('app.org_id', true)"
_CUSTOMER = "coalesce(current_setting('app.customer_id', true), '')"

# Records kept per poll for de-duplication (see the module docstring).
SEEN_LIMIT = 10_000

POLLS_SCHEMA = f"""
CREATE TABLE polls (
    org_id            text NOT NULL,
    id                text NOT NULL,
    workflow_id       text NOT NULL,
    environment_id    text NOT NULL,
    customer_id       text NOT NULL,
    trigger_id        text,
    connector         text NOT NULL,
    event             text NOT NULL,
    cursor            text,
    next_due_at       timestamptz,
    baseline_at       timestamptz,
    last_polled_at    timestamptz,
    last_error        jsonb,
    failures          integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, workflow_id, environment_id)
        REFERENCES deployments(org_id, workflow_id, environment_id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, trigger_id) REFERENCES triggers(org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX polls_source ON polls (org_id, workflow_id, customer_id, coalesce(trigger_id, ''));
CREATE INDEX polls_due ON polls (next_due_at NULLS FIRST);
ALTER TABLE polls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON polls USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
CREATE POLICY customer ON polls AS RESTRICTIVE
    USING ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER}) WITH CHECK ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER});
GRANT SELECT, INSERT, UPDATE, DELETE ON polls TO {APP_ROLE};

CREATE TABLE poll_records (
    org_id      text NOT NULL,
    poll_id     text NOT NULL,
    customer_id text NOT NULL,
    record_id   text NOT NULL,
    version     text NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, poll_id, record_id),
    FOREIGN KEY (org_id, poll_id) REFERENCES polls(org_id, id) ON DELETE CASCADE
);
CREATE INDEX poll_records_seen ON poll_records (org_id, poll_id, seen_at);
ALTER TABLE poll_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON poll_records USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
CREATE POLICY customer ON poll_records AS RESTRICTIVE
    USING ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER}) WITH CHECK ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER});
GRANT SELECT, INSERT, UPDATE, DELETE ON poll_records TO {APP_ROLE};
"""

# What should exist: (org, workflow, environment, customer, trigger, connector, event).
_POLLING = """
EXISTS (SELECT 1 FROM connectors k JOIN connector_versions cv ON cv.org_id = k.org_id AND cv.connector_id = k.id
         WHERE k.org_id = d.org_id AND k.key = {config} ->> 'connector' AND cv.state = 'published'
           AND cv.spec -> 'events' -> ({config} ->> 'event') ->> 'kind' = 'polling')
"""
_DESIRED = f"""
SELECT d.org_id, d.workflow_id, d.environment_id, c.id AS customer_id, NULL::text AS trigger_id,
       v.spec -> 'trigger' ->> 'connector' AS connector, v.spec -> 'trigger' ->> 'event' AS event
  FROM deployments d
  JOIN workflows w ON w.org_id = d.org_id AND w.id = d.workflow_id AND w.status <> 'archived'
  JOIN workflow_versions v ON v.org_id = d.org_id AND v.workflow_id = d.workflow_id AND v.version = d.version
  JOIN customers c ON c.org_id = d.org_id AND c.environment_id = d.environment_id AND c.status = 'active'
 WHERE v.spec -> 'trigger' ->> 'kind' = 'app_event' AND {_POLLING.format(config="v.spec -> 'trigger'")}
UNION ALL
SELECT d.org_id, d.workflow_id, d.environment_id, c.id, t.id, t.config ->> 'connector', t.config ->> 'event'
  FROM triggers t
  JOIN deployments d ON d.org_id = t.org_id AND d.workflow_id = t.workflow_id
  JOIN workflows w ON w.org_id = d.org_id AND w.id = d.workflow_id AND w.status <> 'archived'
  JOIN customers c ON c.org_id = d.org_id AND c.environment_id = d.environment_id AND c.status = 'active'
 WHERE t.kind = 'app_event' AND t.enabled AND {_POLLING.format(config="t.config")}
"""

_COLUMNS = (
    "org_id, id, workflow_id, environment_id, customer_id, trigger_id, connector, event, cursor, next_due_at,"
    " baseline_at, last_polled_at, last_error, failures, created_at, updated_at"
)


class Polls:
    """An organization's polls and the records they have seen (see the module docstring)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def get(self, org_id: str, poll_id: str) -> dict[str, Any]:
        """One poll. Raises ``NotFound``."""
        row = self.tx.execute(f"SELECT {_COLUMNS} FROM polls WHERE org_id = %s AND id = %s", (org_id, poll_id)).fetchone()
        if row is None:
            raise NotFound("poll", poll_id)
        return row

    def list(self, org_id: str, *, workflow_id: str | None = None) -> list[dict[str, Any]]:
        """The polls of ``org_id`` (of one workflow, by id), oldest first."""
        where, params = "org_id = %s", [org_id]
        if workflow_id is not None:
            where += " AND workflow_id = %s"
            params.append(workflow_id)
        return self.tx.execute(f"SELECT {_COLUMNS} FROM polls WHERE {where} ORDER BY created_at, id", params).fetchall()

    def lock_due(self, org_id: str, poll_id: str, now: datetime) -> dict[str, Any] | None:
        """Lock poll ``poll_id`` for this transaction if it is due at ``now``; None when it is not, or
        another transaction holds it (``SKIP LOCKED``: that one polls it). Read after the lock, so a
        poll another transaction finished and committed is no longer due. The workflow is locked
        first (``FOR KEY SHARE``), in the order a deploy takes them, as schedules do."""
        self.tx.execute(
            "SELECT 1 FROM workflows w JOIN polls p ON p.org_id = w.org_id AND p.workflow_id = w.id"
            " WHERE p.org_id = %s AND p.id = %s FOR KEY SHARE OF w",
            (org_id, poll_id),
        )
        return self.tx.execute(
            f"SELECT {_COLUMNS} FROM polls WHERE org_id = %s AND id = %s"
            " AND (next_due_at IS NULL OR next_due_at <= %s) FOR UPDATE SKIP LOCKED",
            (org_id, poll_id, now),
        ).fetchone()

    def seen(self, org_id: str, poll_id: str, record_ids: list[str]) -> dict[str, str]:
        """The version last seen of each of ``record_ids`` that poll ``poll_id`` has seen."""
        if not record_ids:
            return {}
        rows = self.tx.execute(
            "SELECT record_id, version FROM poll_records WHERE org_id = %s AND poll_id = %s AND record_id = ANY(%s)",
            (org_id, poll_id, record_ids),
        ).fetchall()
        return {row["record_id"]: row["version"] for row in rows}

    def see(self, org_id: str, poll: dict[str, Any], records: list[tuple[str, str]], now: datetime) -> None:
        """Record that poll ``poll`` saw each ``(record_id, version)``, then keep only its
        ``SEEN_LIMIT`` most recently seen records."""
        if records:
            with self.tx.cursor() as cur:
                cur.executemany(
                    "INSERT INTO poll_records (org_id, poll_id, customer_id, record_id, version, seen_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (org_id, poll_id, record_id)"
                    " DO UPDATE SET version = EXCLUDED.version, seen_at = EXCLUDED.seen_at",
                    [(org_id, poll["id"], poll["customer_id"], record_id, version, now) for record_id, version in records],
                )
        self.tx.execute(
            "DELETE FROM poll_records WHERE org_id = %(org)s AND poll_id = %(poll)s AND record_id IN ("
            " SELECT record_id FROM poll_records WHERE org_id = %(org)s AND poll_id = %(poll)s"
            " ORDER BY seen_at DESC, record_id OFFSET %(keep)s)",
            {"org": org_id, "poll": poll["id"], "keep": SEEN_LIMIT},
        )

    def polled(self, org_id: str, poll_id: str, *, cursor: str | None, next_due_at: datetime, polled_at: datetime,
               error: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record a poll of ``poll_id``: its new ``cursor`` (on a failure, pass the stored one), when
        it is next due, and the error that failed it (which counts a failure). A success resets the
        count and, the first time, sets ``baseline_at`` (from then on, records are new or changed)."""
        row = self.tx.execute(
            "UPDATE polls SET cursor = %(cursor)s, next_due_at = %(next)s, last_polled_at = %(at)s, last_error = %(error)s,"
            " failures = CASE WHEN %(failed)s THEN failures + 1 ELSE 0 END,"
            " baseline_at = CASE WHEN %(failed)s THEN baseline_at ELSE coalesce(baseline_at, %(at)s) END,"
            f" updated_at = now() WHERE org_id = %(org)s AND id = %(id)s RETURNING {_COLUMNS}",
            {"cursor": cursor, "next": next_due_at, "at": polled_at, "error": Jsonb(error) if error is not None else None,
             "failed": error is not None, "org": org_id, "id": poll_id},
        ).fetchone()
        if row is None:
            raise NotFound("poll", poll_id)
        return row


def sync_polls(admin_conninfo: str) -> dict[str, int]:
    """Make the ``polls`` rows of every organization match its deployments, customers and app event
    triggers (asked as the owner, across tenants); returns how many were added and removed. A row
    whose connector or event changed starts over (no cursor, nothing seen)."""
    with translate_errors(), connect(admin_conninfo) as conn:
        removed = conn.execute(
            f"DELETE FROM polls p WHERE NOT EXISTS (SELECT 1 FROM ({_DESIRED}) d"
            " WHERE d.org_id = p.org_id AND d.workflow_id = p.workflow_id AND d.customer_id = p.customer_id"
            " AND d.trigger_id IS NOT DISTINCT FROM p.trigger_id AND d.environment_id = p.environment_id"
            " AND d.connector = p.connector AND d.event = p.event)"
        ).rowcount
        rows = conn.execute(
            f"SELECT d.* FROM ({_DESIRED}) d WHERE NOT EXISTS (SELECT 1 FROM polls p"
            " WHERE p.org_id = d.org_id AND p.workflow_id = d.workflow_id AND p.customer_id = d.customer_id"
            " AND coalesce(p.trigger_id, '') = coalesce(d.trigger_id, ''))"
        ).fetchall()
        added = 0
        for row in rows:
            added += conn.execute(
                "INSERT INTO polls (org_id, id, workflow_id, environment_id, customer_id, trigger_id, connector, event)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (org_id, workflow_id, customer_id, coalesce(trigger_id, '')) DO NOTHING",
                (row[0], new_id("pol"), row[1], row[2], row[3], row[4], row[5], row[6]),
            ).rowcount
        conn.commit()
    return {"added": added, "removed": removed}


def polls_due(admin_conninfo: str, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
    """``(org_id, poll_id)`` of the polls due at ``now``, earliest first (asked as the owner, across
    tenants; each is then locked in its organization's transaction)."""
    with translate_errors(), connect(admin_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT org_id, id FROM polls WHERE next_due_at IS NULL OR next_due_at <= %s"
            " ORDER BY next_due_at NULLS FIRST LIMIT %s",
            (now, limit),
        ).fetchall()
    return [(org_id, poll_id) for org_id, poll_id in rows]

"""Schedules: one row per scheduled workflow deployment and customer, with when it is next due.

Migration m006 (``SCHEDULES_SCHEMA``) adds the table. A row exists for each schedule trigger of a
deployed workflow (the trigger in the deployed version's spec, ``trigger_id`` NULL, and each
enabled schedule trigger attached to the workflow, ``trigger_id`` set) times each active customer
of the deployment's environment, unless the workflow is archived. :meth:`Schedules.sync` makes
the rows match that, in the caller's transaction: the repositories call it when a deployment,
customer, trigger, workflow or the organization's time zone changes; foreign keys delete the rows
of a removed deployment, customer or trigger.

``config`` is the schedule trigger (its JSON) and ``timezone`` the zone its wall-clock times are
read in (the trigger's, else the organization's). ``next_due_at`` is NULL while the row is not
planned yet (new, or its schedule or zone changed): the store does not compute slots (the engine
does), so a worker's scheduler plans such rows (see ``runtime/_schedules.py``), and claims the
due ones with :meth:`Schedules.lock_due` (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from store._db import connect, translate_errors
from store._ids import new_id
from store._paging import CUSTOMERS_OF_ENVIRONMENT, Filters, ListQuery, Page, fetch_page
from store._schema import APP_ROLE
from store.errors import NotFound

if TYPE_CHECKING:
    from store._database import Tx

_ORG = "current_setting('app.org_id', true)"
_CUSTOMER = "coalesce(current_setting('app.customer_id', true), '')"

SCHEDULES_SCHEMA = f"""
CREATE TABLE schedules (
    org_id            text NOT NULL,
    id                text NOT NULL,
    workflow_id       text NOT NULL,
    environment_id    text NOT NULL,
    customer_id       text NOT NULL,
    trigger_id        text,
    version           integer NOT NULL,
    config            jsonb NOT NULL,
    timezone          text NOT NULL,
    next_due_at       timestamptz,
    last_slot         timestamptz,
    last_fired_at     timestamptz,
    last_execution_id text,
    last_error        jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, workflow_id, environment_id)
        REFERENCES deployments(org_id, workflow_id, environment_id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, trigger_id) REFERENCES triggers(org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX schedules_source ON schedules (org_id, workflow_id, customer_id, coalesce(trigger_id, ''));
CREATE INDEX schedules_due ON schedules (next_due_at NULLS FIRST);
ALTER TABLE schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON schedules USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
CREATE POLICY customer ON schedules AS RESTRICTIVE
    USING ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER}) WITH CHECK ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER});
GRANT SELECT, INSERT, UPDATE, DELETE ON schedules TO {APP_ROLE};
"""

# What should exist: (workflow, environment, customer, trigger) with the version, config and zone.
_DESIRED = """
SELECT d.workflow_id, d.environment_id, c.id AS customer_id, NULL::text AS trigger_id, d.version,
       v.spec -> 'trigger' AS config, coalesce(v.spec -> 'trigger' ->> 'timezone', o.timezone) AS timezone
  FROM deployments d
  JOIN workflows w ON w.org_id = d.org_id AND w.id = d.workflow_id AND w.status <> 'archived'
  JOIN workflow_versions v ON v.org_id = d.org_id AND v.workflow_id = d.workflow_id AND v.version = d.version
  JOIN customers c ON c.org_id = d.org_id AND c.environment_id = d.environment_id AND c.status = 'active'
  JOIN organizations o ON o.id = d.org_id
 WHERE v.spec -> 'trigger' ->> 'kind' = 'schedule' {where}
UNION ALL
SELECT d.workflow_id, d.environment_id, c.id, t.id, d.version,
       t.config, coalesce(t.config ->> 'timezone', o.timezone)
  FROM triggers t
  JOIN deployments d ON d.org_id = t.org_id AND d.workflow_id = t.workflow_id
  JOIN workflows w ON w.org_id = d.org_id AND w.id = d.workflow_id AND w.status <> 'archived'
  JOIN customers c ON c.org_id = d.org_id AND c.environment_id = d.environment_id AND c.status = 'active'
  JOIN organizations o ON o.id = d.org_id
 WHERE t.kind = 'schedule' AND t.enabled {where}
"""

# Migration m006: the table, and the rows of what was deployed before it (planned by the next worker).
SCHEDULES_MIGRATION = SCHEDULES_SCHEMA + (
    "INSERT INTO schedules (org_id, id, workflow_id, environment_id, customer_id, trigger_id, version, config, timezone)"
    " SELECT d.org_id, 'sch_' || substr(md5(random()::text || clock_timestamp()::text || d.customer_id), 1, 24),"
    " d.workflow_id, d.environment_id, d.customer_id, d.trigger_id, d.version, d.config, d.timezone FROM ("
    + _DESIRED.replace("SELECT d.workflow_id,", "SELECT d.org_id, d.workflow_id,").format(where="")
    + ") d;\n"
)

_COLUMNS = (
    "org_id, id, workflow_id, environment_id, customer_id, trigger_id, version, config, timezone, next_due_at,"
    " last_slot, last_fired_at, last_execution_id, last_error, created_at, updated_at"
)


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["workflow_id"], row["customer_id"], row["trigger_id"] or ""


class Schedules:
    """An organization's schedules (see the module docstring)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def sync(self, org_id: str, *, workflow_id: str | None = None, customer_id: str | None = None) -> dict[str, int]:
        """Make the rows of ``org_id`` (of one workflow, or one customer, when given) match its
        deployments, customers and schedule triggers; returns how many were added, changed and
        removed. A row whose schedule or zone changes is planned again (``next_due_at`` NULL); one
        whose deployed version alone changes keeps its next slot."""
        where, params = " AND d.org_id = %(org)s", {"org": org_id}
        if workflow_id is not None:
            where += " AND d.workflow_id = %(workflow)s"
            params["workflow"] = workflow_id
        if customer_id is not None:
            where += " AND c.id = %(customer)s"
            params["customer"] = customer_id
        desired = {_key(row): row for row in self.tx.execute(_DESIRED.format(where=where), params).fetchall()}
        filters, existing_params = "org_id = %(org)s", {"org": org_id}
        if workflow_id is not None:
            filters += " AND workflow_id = %(workflow)s"
            existing_params["workflow"] = workflow_id
        if customer_id is not None:
            filters += " AND customer_id = %(customer)s"
            existing_params["customer"] = customer_id
        existing = {_key(row): row for row in self.tx.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE {filters} FOR UPDATE", existing_params).fetchall()}
        counts = {"added": 0, "changed": 0, "removed": 0}
        for key, row in existing.items():
            if key not in desired:
                self.tx.execute("DELETE FROM schedules WHERE org_id = %s AND id = %s", (org_id, row["id"]))
                counts["removed"] += 1
        for key, want in desired.items():
            have = existing.get(key)
            if have is None:
                # A concurrent sync may have added it: then this one's values win, and it is planned again.
                self.tx.execute(
                    "INSERT INTO schedules (org_id, id, workflow_id, environment_id, customer_id, trigger_id, version,"
                    " config, timezone) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (org_id, workflow_id, customer_id, coalesce(trigger_id, '')) DO UPDATE SET"
                    " environment_id = EXCLUDED.environment_id, version = EXCLUDED.version, config = EXCLUDED.config,"
                    " timezone = EXCLUDED.timezone, next_due_at = NULL, updated_at = now()",
                    (org_id, new_id("sch"), want["workflow_id"], want["environment_id"], want["customer_id"],
                     want["trigger_id"], want["version"], Jsonb(want["config"]), want["timezone"]),
                )
                counts["added"] += 1
            elif (have["config"], have["timezone"]) != (want["config"], want["timezone"]):
                self.tx.execute(
                    "UPDATE schedules SET environment_id = %s, version = %s, config = %s, timezone = %s,"
                    " next_due_at = NULL, last_error = NULL, updated_at = now() WHERE org_id = %s AND id = %s",
                    (want["environment_id"], want["version"], Jsonb(want["config"]), want["timezone"], org_id, have["id"]),
                )
                counts["changed"] += 1
            elif (have["version"], have["environment_id"]) != (want["version"], want["environment_id"]):
                self.tx.execute(
                    "UPDATE schedules SET environment_id = %s, version = %s, updated_at = now()"
                    " WHERE org_id = %s AND id = %s",
                    (want["environment_id"], want["version"], org_id, have["id"]),
                )
                counts["changed"] += 1
        return counts

    # -- reading ---------------------------------------------------------------------------------

    def get(self, org_id: str, schedule_id: str) -> dict[str, Any]:
        """One schedule. Raises ``NotFound``."""
        row = self.tx.execute(f"SELECT {_COLUMNS} FROM schedules WHERE org_id = %s AND id = %s",
                              (org_id, schedule_id)).fetchone()
        if row is None:
            raise NotFound("schedule", schedule_id)
        return row

    def list(self, org_id: str, query: ListQuery, *, workflow_id: str | None = None,
             customer_id: str | None = None, hidden_environment: str | None = None) -> Page:
        """Schedules (sort: created_at), of one workflow (an id) or customer, leaving out the
        customers of environment ``hidden_environment`` (a slug)."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if workflow_id:
            filters.add("workflow_id = %(workflow)s", workflow=workflow_id)
        if customer_id:
            filters.add("customer_id = %(customer)s", customer=customer_id)
        if hidden_environment:
            filters.add("customer_id NOT IN " + CUSTOMERS_OF_ENVIRONMENT, hidden_env=hidden_environment)
        sortable = {"created_at": "created_at"}
        return fetch_page(self.tx, "schedule", "schedules", query, sortable, filters, columns=_COLUMNS)

    # -- firing ----------------------------------------------------------------------------------

    def lock_due(self, org_id: str, schedule_id: str, now: datetime) -> dict[str, Any] | None:
        """Lock schedule ``schedule_id`` for this transaction if it is due at ``now`` or not planned
        yet; None when it is not, or another transaction holds it (``SKIP LOCKED``: that one fires
        it). Read after the lock, so a slot another transaction fired and committed is not due.

        The row's workflow is locked first (``FOR KEY SHARE``, the lock an execution's foreign key
        takes anyway): a deploy locks the workflow, then the schedule rows it syncs, so taking them
        in the same order here cannot deadlock with it."""
        self.tx.execute(
            "SELECT 1 FROM workflows w JOIN schedules s ON s.org_id = w.org_id AND s.workflow_id = w.id"
            " WHERE s.org_id = %s AND s.id = %s FOR KEY SHARE OF w",
            (org_id, schedule_id),
        )
        return self.tx.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE org_id = %s AND id = %s"
            " AND (next_due_at IS NULL OR next_due_at <= %s) FOR UPDATE SKIP LOCKED",
            (org_id, schedule_id, now),
        ).fetchone()

    def plan(self, org_id: str, schedule_id: str, next_due_at: datetime | None,
             error: dict[str, Any] | None = None) -> dict[str, Any]:
        """Set when schedule ``schedule_id`` is next due (and the error that kept it from planning)."""
        row = self.tx.execute(
            "UPDATE schedules SET next_due_at = %s, last_error = %s, updated_at = now()"
            f" WHERE org_id = %s AND id = %s RETURNING {_COLUMNS}",
            (next_due_at, Jsonb(error) if error is not None else None, org_id, schedule_id),
        ).fetchone()
        if row is None:
            raise NotFound("schedule", schedule_id)
        return row

    def fired(self, org_id: str, schedule_id: str, *, slot: datetime, next_due_at: datetime, fired_at: datetime,
              execution_id: str | None, error: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record that schedule ``schedule_id`` fired for ``slot`` (starting ``execution_id``, or
        refused with ``error``) and is next due at ``next_due_at``."""
        row = self.tx.execute(
            "UPDATE schedules SET next_due_at = %s, last_slot = %s, last_fired_at = %s,"
            " last_execution_id = coalesce(%s, last_execution_id), last_error = %s, updated_at = now()"
            f" WHERE org_id = %s AND id = %s RETURNING {_COLUMNS}",
            (next_due_at, slot, fired_at, execution_id, Jsonb(error) if error is not None else None, org_id,
             schedule_id),
        ).fetchone()
        if row is None:
            raise NotFound("schedule", schedule_id)
        return row


def schedules_due(admin_conninfo: str, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
    """``(org_id, schedule_id)`` of the schedules due at ``now`` or not planned yet, earliest first
    (asked as the owner, across tenants; each is then locked in its organization's transaction)."""
    with translate_errors(), connect(admin_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT org_id, id FROM schedules WHERE next_due_at IS NULL OR next_due_at <= %s"
            " ORDER BY next_due_at NULLS FIRST LIMIT %s",
            (now, limit),
        ).fetchall()
    return [(org_id, schedule_id) for org_id, schedule_id in rows]

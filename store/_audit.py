"""The audit log: append-only (the app role may only insert and read; a trigger refuses changes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from store._paging import Filters, ListQuery, Page, fetch_page
from store.errors import NotFound

ACTOR_TYPES = ("user", "api_key", "system")


class AuditLog:
    """Write and read an organization's audit entries."""

    def __init__(self, tx: Any) -> None:
        self.tx = tx

    def record(
        self,
        org_id: str,
        *,
        actor_type: str,
        actor_id: str,
        action: str,
        resource_type: str,
        resource_id: str | None = None,
        customer_id: str | None = None,
        outcome: str = "success",
        error_code: str | None = None,
        status: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one entry. ``detail`` must hold no secret: callers pass ids and codes only."""
        return self.tx.execute(
            "INSERT INTO audit_log (org_id, actor_type, actor_id, action, resource_type, resource_id, customer_id,"
            " outcome, error_code, status, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (
                org_id, actor_type, actor_id, action, resource_type, resource_id, customer_id,
                outcome, error_code, status, Jsonb(detail or {}),
            ),
        ).fetchone()

    def get(self, org_id: str, entry_id: int) -> dict[str, Any]:
        """One entry; ``NotFound`` when this organization has none with that id."""
        row = self.tx.execute("SELECT * FROM audit_log WHERE org_id = %s AND id = %s", (org_id, entry_id)).fetchone()
        if row is None:
            raise NotFound("audit_entry", str(entry_id))
        return row

    def list(
        self,
        org_id: str,
        query: ListQuery,
        *,
        actor_id: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        customer_id: str | None = None,
    ) -> Page:
        """Entries, newest first by default; ``since`` inclusive, ``until`` exclusive; ``customer_id``
        keeps the entries made for that customer."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if customer_id:
            filters.add("customer_id = %(customer)s", customer=customer_id)
        if actor_id:
            filters.add("actor_id = %(actor)s", actor=actor_id)
        if action:
            # "customers.create" matches exactly; "customers." matches every customers action.
            if action.endswith("."):
                filters.add("starts_with(action, %(action)s)", action=action)
            else:
                filters.add("action = %(action)s", action=action)
        if resource_type:
            filters.add("resource_type = %(rtype)s", rtype=resource_type)
        if resource_id:
            filters.add("resource_id = %(rid)s", rid=resource_id)
        if outcome:
            filters.add("outcome = %(outcome)s", outcome=outcome)
        if since:
            filters.add("at >= %(since)s", since=since)
        if until:
            filters.add("at < %(until)s", until=until)
        return fetch_page(self.tx, "audit_entry", "audit_log", query, {"at": "at", "id": "id"}, filters)


def has_changes(tx: Any) -> bool:
    """Whether the transaction ``tx`` has written anything yet (Postgres assigns a transaction id
    at the first write): such a transaction must carry its audit entry when it commits."""
    row = tx.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS wrote").fetchone()
    return bool(row["wrote"] if isinstance(row, dict) else row[0])

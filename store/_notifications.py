"""Outbound notifications: an organization's endpoints, the deliveries of platform events to them,
and every attempt of each delivery (schema and the one-ledger design: ``store/_schema_alerts.py``).

An endpoint's signing secret (Standard Webhooks' ``whsec_`` + base64 of 24 random bytes) is made
here, returned once by ``create``, and stored encrypted under purpose
``notification_endpoint:<id>`` (``store._crypto``); rows never carry it, only ``secret`` decrypts.

A delivery is attempted by whoever locks it while due (``lock_due``: ``FOR UPDATE SKIP LOCKED``);
the attempt and the delivery's next state are recorded in that transaction (``attempted``), so two
workers never send one attempt twice, and a worker that dies mid-attempt leaves the delivery due
for the next one, under the same attempt number.
"""

from __future__ import annotations

import base64
import secrets as _secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from store._ids import new_id
from store._paging import Filters, ListQuery, Page, fetch_page
from store._schema_alerts import DELIVERY_STATUSES, PLATFORM_EVENT_TYPES
from store._db import connect, translate_errors
from store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from store._crypto import Encryptor
    from store._database import Tx

MAX_ENDPOINT_URL = 2048
_ENDPOINT_COLUMNS = "id, url, description, event_types, enabled, created_by, created_at, updated_at"
_DELIVERY_COLUMNS = ("id, endpoint_id, event_id, event_type, status, attempts, next_attempt_at, last_status_code,"
                     " last_error, created_at, finished_at")
# A delivery row with its attempts, oldest first (what the per-endpoint list serves).
_DELIVERIES = f"""(
  SELECT d.org_id, {', '.join('d.' + c.strip() for c in _DELIVERY_COLUMNS.split(','))},
         coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'at', a.at, 'status', a.status,
                                                       'response_code', a.response_code, 'latency_ms', a.latency_ms,
                                                       'error', a.error) ORDER BY a.attempt)
                   FROM notification_attempts a WHERE a.org_id = d.org_id AND a.delivery_id = d.id), '[]'::jsonb)
           AS attempt_log
  FROM notification_deliveries d WHERE d.org_id = %(org)s
) dl"""


def endpoint_purpose(endpoint_id: str) -> str:
    """The encryption purpose of endpoint ``endpoint_id``'s signing secret."""
    return f"notification_endpoint:{endpoint_id}"


def new_signing_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and the base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(_secrets.token_bytes(24)).decode("ascii")


def check_endpoint_url(url: Any) -> str:
    """``url`` if it is an absolute http(s) URL with a host; else ``InvalidInput`` (field ``url``).
    Where it points is checked by the egress guard when a delivery is sent, not here: a name's
    address may change between now and then."""
    if not isinstance(url, str) or not url or len(url) > MAX_ENDPOINT_URL:
        raise InvalidInput("notification_endpoint", "url", f"must be a URL of 1 to {MAX_ENDPOINT_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise InvalidInput("notification_endpoint", "url", f"is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("notification_endpoint", "url", "must be an http or https URL")
    if not parts.hostname:
        raise InvalidInput("notification_endpoint", "url", "must name a host")
    if parts.username or parts.password:
        raise InvalidInput("notification_endpoint", "url", "must not carry credentials")
    return url


def _check_types(event_types: Any) -> list[str]:
    if not isinstance(event_types, list) or not event_types:
        raise InvalidInput("notification_endpoint", "event_types", "must list at least one event type")
    for index, value in enumerate(event_types):
        if value not in PLATFORM_EVENT_TYPES:
            raise InvalidInput("notification_endpoint", f"event_types/{index}",
                               f"must be one of {', '.join(PLATFORM_EVENT_TYPES)}")
    return sorted(set(event_types))


class NotificationEndpoints:
    """An organization's notification endpoints."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(self, org_id: str, *, url: str, event_types: list[str], encryptor: Encryptor, description: str = "",
               enabled: bool = True, created_by: str | None = None) -> tuple[dict[str, Any], str]:
        """Register an endpoint for ``event_types``; returns its row and its signing secret (the only
        time the secret is given out). Raises ``InvalidInput`` (``url``, ``event_types/<i>``)."""
        url = check_endpoint_url(url)
        types = _check_types(event_types)
        endpoint_id = new_id("nep")
        secret = new_signing_secret()
        ciphertext = encryptor.encrypt(self.tx, org_id, secret.encode("ascii"), endpoint_purpose(endpoint_id))
        row = self.tx.execute(
            "INSERT INTO notification_endpoints (org_id, id, url, description, event_types, secret, enabled, created_by)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_ENDPOINT_COLUMNS}",
            (org_id, endpoint_id, url, description, types, ciphertext, enabled, created_by),
        ).fetchone()
        return row, secret

    def get(self, org_id: str, endpoint_id: str) -> dict[str, Any]:
        """One endpoint (never its secret). Raises ``NotFound``."""
        row = self.tx.execute(f"SELECT {_ENDPOINT_COLUMNS} FROM notification_endpoints WHERE org_id = %s AND id = %s",
                              (org_id, endpoint_id)).fetchone()
        if row is None:
            raise NotFound("notification_endpoint", endpoint_id)
        return row

    def list(self, org_id: str, query: ListQuery) -> Page:
        """Endpoints (sort: created_at, url)."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        return fetch_page(self.tx, "notification_endpoint", "notification_endpoints", query,
                          {"created_at": "created_at", "url": "url"}, filters, columns=_ENDPOINT_COLUMNS)

    def update(self, org_id: str, endpoint_id: str, *, url: str | None = None, event_types: list[str] | None = None,
               description: str | None = None, enabled: bool | None = None) -> dict[str, Any]:
        """Change what is given (None: unchanged). Pending deliveries go to the new URL. Raises
        ``NotFound``, ``InvalidInput``."""
        self.get(org_id, endpoint_id)
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = check_endpoint_url(url)
        if event_types is not None:
            changes["event_types"] = _check_types(event_types)
        if description is not None:
            changes["description"] = description
        if enabled is not None:
            changes["enabled"] = enabled
        if not changes:
            return self.get(org_id, endpoint_id)
        assignments = ", ".join(f"{key} = %({key})s" for key in changes)
        return self.tx.execute(
            f"UPDATE notification_endpoints SET {assignments}, updated_at = now() WHERE org_id = %(org)s AND id = %(id)s"
            f" RETURNING {_ENDPOINT_COLUMNS}",
            {**changes, "org": org_id, "id": endpoint_id},
        ).fetchone()

    def delete(self, org_id: str, endpoint_id: str) -> None:
        """Delete an endpoint with its deliveries. Raises ``NotFound``."""
        if self.tx.execute("DELETE FROM notification_endpoints WHERE org_id = %s AND id = %s RETURNING id",
                           (org_id, endpoint_id)).fetchone() is None:
            raise NotFound("notification_endpoint", endpoint_id)

    def secret(self, org_id: str, endpoint_id: str, encryptor: Encryptor) -> str:
        """The endpoint's signing secret, decrypted (for signing a delivery; never for a response)."""
        row = self.tx.execute("SELECT secret FROM notification_endpoints WHERE org_id = %s AND id = %s",
                              (org_id, endpoint_id)).fetchone()
        if row is None:
            raise NotFound("notification_endpoint", endpoint_id)
        return encryptor.decrypt(self.tx, org_id, row["secret"], endpoint_purpose(endpoint_id)).decode("ascii")


class Deliveries:
    """Deliveries of platform events to an organization's endpoints, attempt by attempt."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def list(self, org_id: str, endpoint_id: str, query: ListQuery, *, status: str | None = None,
             event_id: str | None = None) -> Page:
        """An endpoint's deliveries, each with ``attempt_log`` (every attempt: ``attempt``, ``at``,
        ``status``, ``response_code``, ``latency_ms``, ``error``), sort: created_at. Raises
        ``NotFound`` (endpoint), ``InvalidInput`` (``status``)."""
        NotificationEndpoints(self.tx).get(org_id, endpoint_id)
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidInput("notification_delivery", "status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
        filters = Filters()
        filters.add("org_id = %(org)s AND endpoint_id = %(endpoint)s", org=org_id, endpoint=endpoint_id)
        if status:
            filters.add("status = %(status)s", status=status)
        if event_id:
            filters.add("event_id = %(event)s", event=event_id)
        return fetch_page(self.tx, "notification_delivery", _DELIVERIES, query, {"created_at": "created_at"}, filters,
                          columns=_DELIVERY_COLUMNS + ", attempt_log")

    def lock_due(self, org_id: str, delivery_id: str, now: datetime) -> dict[str, Any] | None:
        """The delivery with its endpoint's ``url`` and ``enabled``, locked for this transaction, if it
        is pending and due at ``now`` and no other transaction holds it; else None."""
        return self.tx.execute(
            "SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.body, d.attempts, d.next_attempt_at,"
            " e.url, e.enabled FROM notification_deliveries d JOIN notification_endpoints e"
            " ON e.org_id = d.org_id AND e.id = d.endpoint_id"
            " WHERE d.org_id = %s AND d.id = %s AND d.status = 'pending' AND d.next_attempt_at <= %s"
            " FOR UPDATE OF d SKIP LOCKED",
            (org_id, delivery_id, now),
        ).fetchone()

    def attempted(self, org_id: str, delivery_id: str, *, attempt: int, at: datetime, succeeded: bool,
                  response_code: int | None, latency_ms: float | None, error: str | None,
                  next_attempt_at: datetime | None) -> dict[str, Any]:
        """Record attempt ``attempt`` and the delivery's next state: ``succeeded``; ``pending`` again
        at ``next_attempt_at``; or ``failed`` when it failed and ``next_attempt_at`` is None (no
        attempts left)."""
        self.tx.execute(
            "INSERT INTO notification_attempts (org_id, delivery_id, attempt, at, status, response_code, latency_ms,"
            " error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (org_id, delivery_id, attempt, at, "succeeded" if succeeded else "failed", response_code, latency_ms, error),
        )
        status = "succeeded" if succeeded else ("pending" if next_attempt_at is not None else "failed")
        return self.tx.execute(
            "UPDATE notification_deliveries SET status = %s, attempts = %s, next_attempt_at = %s,"
            " last_status_code = %s, last_error = %s, finished_at = CASE WHEN %s <> 'pending' THEN %s END"
            f" WHERE org_id = %s AND id = %s RETURNING {_DELIVERY_COLUMNS}",
            (status, attempt, next_attempt_at if status == "pending" else None, response_code, error, status, at,
             org_id, delivery_id),
        ).fetchone()


def deliveries_due(admin_conninfo: str, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
    """``(org_id, delivery_id)`` of pending deliveries due at ``now``, oldest due first (asked as the
    owner, across tenants; each is then locked in its organization's transaction)."""
    with translate_errors(), connect(admin_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT org_id, id FROM notification_deliveries WHERE status = 'pending' AND next_attempt_at <= %s"
            " ORDER BY next_attempt_at LIMIT %s",
            (now, limit),
        ).fetchall()
    return [(org_id, delivery_id) for org_id, delivery_id in rows]

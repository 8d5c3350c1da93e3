"""Idempotency keys: a creating POST sent twice with the same key is answered once.

The first request's response is stored under (organization, key). A retry with the same body
gets the stored response; the same key with a different body or path is refused, since the
client has mixed up two requests.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from store.errors import Conflict

# How long a key is remembered; long enough to cover any client's retries.
RETENTION = "24 hours"


class IdempotencyKeys:
    """Stored responses of creating requests, per organization."""

    def __init__(self, tx: Any) -> None:
        self.tx = tx

    def lookup(self, org_id: str, key: str, method: str, path: str, request_hash: str) -> dict[str, Any] | None:
        """The stored response for ``key``, or None when the key is new (or expired).

        Raises ``Conflict`` when the key was used for a different request.
        """
        row = self.tx.execute(
            f"SELECT * FROM idempotency_keys WHERE org_id = %s AND key = %s AND created_at > now() - interval '{RETENTION}'",
            (org_id, key),
        ).fetchone()
        if row is None:
            return None
        if (row["method"], row["path"], row["request_hash"]) != (method, path, request_hash):
            raise Conflict("idempotency_key", "Idempotency-Key", "was already used for a different request")
        return row

    def store(
        self, org_id: str, key: str, actor_id: str, method: str, path: str, request_hash: str, status: int, response: Any
    ) -> None:
        """Remember the response of the request made with ``key`` (replacing an expired entry)."""
        self.tx.execute(
            "INSERT INTO idempotency_keys (org_id, key, actor_id, method, path, request_hash, status, response)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (org_id, key) DO UPDATE SET actor_id = excluded.actor_id, method = excluded.method,"
            " path = excluded.path, request_hash = excluded.request_hash, status = excluded.status,"
            " response = excluded.response, created_at = now()",
            (org_id, key, actor_id, method, path, request_hash, status, Jsonb(response)),
        )

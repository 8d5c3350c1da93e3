"""Idempotency keys: a creating POST sent twice with the same key is answered once.

A request first claims its key (organization, key) in its own committed transaction. A retry
with the same request gets the stored response; one that arrives while the first is still
running is refused as in progress; the same key with a different request is refused, since the
client has mixed up two requests. A request that fails releases its claim so it can be retried.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from store.errors import Conflict

# How long a key is remembered; long enough to cover any client's retries.
RETENTION = "24 hours"
# An unfinished claim this old belongs to a request that died (a crash or restart between claim
# and completion): longer than any request runs (a workflow run's deadline is 5 minutes), so a
# retry may claim the key again rather than be refused as in progress for the whole retention.
ABANDONED_AFTER = "15 minutes"
_IN_PROGRESS = 0
_CLAIM_ATTEMPTS = 3


class IdempotencyKeys:
    """Claims and stored responses of creating requests, per organization."""

    def __init__(self, tx: Any) -> None:
        self.tx = tx

    def claim(self, org_id: str, key: str, actor_id: str, method: str, path: str, request_hash: str) -> dict[str, Any] | None:
        """Claim ``key`` for this request. Returns None when the claim is new (go ahead), or the
        stored ``{"status": ..., "response": ...}`` of the request that already completed.

        Raises ``Conflict`` when the key belongs to a different request or is still in progress.
        """
        self.tx.execute(
            "DELETE FROM idempotency_keys WHERE org_id = %s AND key = %s"
            f" AND (created_at < now() - interval '{RETENTION}'"
            f" OR (status = %s AND created_at < now() - interval '{ABANDONED_AFTER}'))",
            (org_id, key, _IN_PROGRESS),
        )
        row = None
        # The first request with this key may release its claim (it failed) between this one's
        # INSERT and SELECT; then the key is free again and this request claims it.
        for _ in range(_CLAIM_ATTEMPTS):
            inserted = self.tx.execute(
                "INSERT INTO idempotency_keys (org_id, key, actor_id, method, path, request_hash, status)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (org_id, key) DO NOTHING RETURNING key",
                (org_id, key, actor_id, method, path, request_hash, _IN_PROGRESS),
            ).fetchone()
            if inserted is not None:
                return None
            row = self.tx.execute(
                "SELECT * FROM idempotency_keys WHERE org_id = %s AND key = %s", (org_id, key)
            ).fetchone()
            if row is not None:
                break
        if row is None:
            raise Conflict("idempotency_key", "Idempotency-Key", "a request with this key is still in progress")
        if (row["method"], row["path"], row["request_hash"], row["actor_id"]) != (method, path, request_hash, actor_id):
            raise Conflict("idempotency_key", "Idempotency-Key", "was already used for a different request")
        if row["status"] == _IN_PROGRESS:
            raise Conflict("idempotency_key", "Idempotency-Key", "a request with this key is still in progress")
        return row

    def complete(self, org_id: str, key: str, status: int, response: Any) -> None:
        """Store the response of the request that claimed ``key``."""
        self.tx.execute(
            "UPDATE idempotency_keys SET status = %s, response = %s WHERE org_id = %s AND key = %s",
            (status, Jsonb(response), org_id, key),
        )

    def release(self, org_id: str, key: str) -> None:
        """Forget an unfinished claim (its request failed), so the client can retry."""
        self.tx.execute(
            "DELETE FROM idempotency_keys WHERE org_id = %s AND key = %s AND status = %s", (org_id, key, _IN_PROGRESS)
        )

"""Idempotency keys: a creating POST sent twice with the same key is answered once.

Two ways to record a key, both per (organization, key):

* **In the change's transaction** (``lookup`` then ``record``): a request looks the key up
  before it runs (a completed one is answered from the store) and records its response in the
  same transaction as the change it made, so the change and the record commit together or not
  at all. A concurrent request with the same key waits on the first one's row and then finds
  its response. Nothing is stored for a request that fails.
* **Claimed up front** (``claim``, ``complete``, ``release``), for requests whose changes commit
  in several steps before the response exists: the claim commits in its own transaction, so a
  concurrent retry sees it and is refused as in progress; the response is stored afterwards, and
  a failure releases the claim.

Either way, the same key with a different request is refused, since the client has mixed up two
requests.
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

    def lookup(self, org_id: str, key: str, actor_id: str, method: str, path: str, request_hash: str) -> dict[str, Any] | None:
        """The stored ``{"status": ..., "response": ...}`` of the completed request with ``key``, or
        None when the key is free (forgotten after ``RETENTION``).

        Raises ``Conflict`` when the key belongs to a different request or is claimed by one
        still in progress.
        """
        self._forget_expired(org_id, key)
        row = self.tx.execute("SELECT * FROM idempotency_keys WHERE org_id = %s AND key = %s", (org_id, key)).fetchone()
        return None if row is None else self._answer(row, method, path, request_hash, actor_id)

    def record(
        self, org_id: str, key: str, actor_id: str, method: str, path: str, request_hash: str, status: int, response: Any
    ) -> dict[str, Any] | None:
        """Store the response of the request with ``key`` in the caller's transaction (the one that
        made its change). Returns None when stored, or the stored response of a request with the
        same key that committed first (the caller then rolls back its own change and answers
        with that one).

        Raises ``Conflict`` when that other request was a different one.
        """
        inserted = self.tx.execute(
            "INSERT INTO idempotency_keys (org_id, key, actor_id, method, path, request_hash, status, response)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (org_id, key) DO NOTHING RETURNING key",
            (org_id, key, actor_id, method, path, request_hash, status, Jsonb(response)),
        ).fetchone()
        if inserted is not None:
            return None
        # READ COMMITTED: the INSERT waited for the other transaction; this statement sees its row.
        row = self.tx.execute("SELECT * FROM idempotency_keys WHERE org_id = %s AND key = %s", (org_id, key)).fetchone()
        if row is None:
            raise Conflict("idempotency_key", "Idempotency-Key", "a request with this key is still in progress")
        return self._answer(row, method, path, request_hash, actor_id)

    def _forget_expired(self, org_id: str, key: str) -> None:
        self.tx.execute(
            "DELETE FROM idempotency_keys WHERE org_id = %s AND key = %s"
            f" AND (created_at < now() - interval '{RETENTION}'"
            f" OR (status = %s AND created_at < now() - interval '{ABANDONED_AFTER}'))",
            (org_id, key, _IN_PROGRESS),
        )

    @staticmethod
    def _answer(row: dict[str, Any], method: str, path: str, request_hash: str, actor_id: str) -> dict[str, Any]:
        if (row["method"], row["path"], row["request_hash"], row["actor_id"]) != (method, path, request_hash, actor_id):
            raise Conflict("idempotency_key", "Idempotency-Key", "was already used for a different request")
        if row["status"] == _IN_PROGRESS:
            raise Conflict("idempotency_key", "Idempotency-Key", "a request with this key is still in progress")
        return row

    def claim(self, org_id: str, key: str, actor_id: str, method: str, path: str, request_hash: str) -> dict[str, Any] | None:
        """Claim ``key`` for this request. Returns None when the claim is new (go ahead), or the
        stored ``{"status": ..., "response": ...}`` of the request that already completed.

        Raises ``Conflict`` when the key belongs to a different request or is still in progress.
        """
        self._forget_expired(org_id, key)
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
        return self._answer(row, method, path, request_hash, actor_id)

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

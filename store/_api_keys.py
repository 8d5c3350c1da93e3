"""API keys: shown once, stored as a hash, revocable, with a last-used time.

Keys carry 256 random bits, so a plain SHA-256 is enough to make the stored hash useless to a
reader of the database; a slow password hash would only add latency to every request.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from store._ids import new_id
from store._paging import Filters, ListQuery, Page, fetch_page
from store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from store._database import Tx

KEY_KINDS = ("test", "live")
# Shown in lists so people can tell keys apart without the secret part.
DISPLAY_PREFIX_LENGTH = 12
# last_used_at is refreshed at most this often, so authenticating is not a write per request.
LAST_USED_RESOLUTION = "1 minute"

_PUBLIC_COLUMNS = "org_id, id, name, kind, prefix, role_id, customer_id, created_by, created_at, last_used_at, revoked_at"


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """An organization's API keys. Rows never include the key or its hash."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(
        self,
        org_id: str,
        name: str,
        *,
        kind: str = "live",
        role_id: str = "admin",
        customer_id: str | None = None,
        created_by: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Create a key; returns its row and the key itself (the only time it is available).

        Raises ``InvalidInput`` for an unknown kind and ``NotFound`` for an unknown role or customer.
        """
        if kind not in KEY_KINDS:
            raise InvalidInput("api_key", "kind", f"must be one of {', '.join(KEY_KINDS)}")
        from store._orgs import Customers
        from store._people import Roles

        Roles(self.tx).get(org_id, role_id)
        if customer_id is not None:
            # Checked here rather than left to the foreign key, so the caller hears which customer.
            Customers(self.tx).get(org_id, customer_id)
        key = f"sk_{kind}_{secrets.token_urlsafe(32)}"
        row = self.tx.execute(
            f"INSERT INTO api_keys (org_id, id, name, kind, prefix, key_hash, role_id, customer_id, created_by)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_PUBLIC_COLUMNS}",
            (org_id, new_id("key"), name, kind, key[:DISPLAY_PREFIX_LENGTH], hash_key(key), role_id, customer_id, created_by),
        ).fetchone()
        return row, key

    def authenticate(self, org_id: str, key: str) -> dict[str, Any] | None:
        """The live (not revoked) key row matching ``key`` in ``org_id``, or None."""
        row = self.tx.execute(
            f"SELECT {_PUBLIC_COLUMNS} FROM api_keys WHERE org_id = %s AND key_hash = %s AND revoked_at IS NULL",
            (org_id, hash_key(key)),
        ).fetchone()
        if row is not None:
            self.tx.execute(
                "UPDATE api_keys SET last_used_at = now() WHERE org_id = %s AND id = %s"
                f" AND (last_used_at IS NULL OR last_used_at < now() - interval '{LAST_USED_RESOLUTION}')",
                (org_id, row["id"]),
            )
        return row

    def get(self, org_id: str, key_id: str) -> dict[str, Any]:
        row = self.tx.execute(
            f"SELECT {_PUBLIC_COLUMNS} FROM api_keys WHERE org_id = %s AND id = %s", (org_id, key_id)
        ).fetchone()
        if row is None:
            raise NotFound("api_key", key_id)
        return row

    def list(
        self,
        org_id: str,
        query: ListQuery,
        *,
        kind: str | None = None,
        revoked: bool | None = None,
        role_id: str | None = None,
        customer_id: str | None = None,
    ) -> Page:
        """Keys (never the key nor its hash), filtered by kind, revocation, role and bound customer."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if role_id:
            filters.add("role_id = %(role)s", role=role_id)
        if customer_id:
            filters.add("customer_id = %(customer)s", customer=customer_id)
        if kind:
            filters.add("kind = %(kind)s", kind=kind)
        if revoked is not None:
            filters.add("revoked_at IS NOT NULL" if revoked else "revoked_at IS NULL")
        return fetch_page(
            self.tx, "api_key", "api_keys", query, {"created_at": "created_at", "name": "name"}, filters, columns=_PUBLIC_COLUMNS
        )

    def revoke(self, org_id: str, key_id: str) -> dict[str, Any]:
        """Revoke a key (idempotent); it stops authenticating at once."""
        self.get(org_id, key_id)
        return self.tx.execute(
            f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE org_id = %s AND id = %s RETURNING {_PUBLIC_COLUMNS}",
            (org_id, key_id),
        ).fetchone()

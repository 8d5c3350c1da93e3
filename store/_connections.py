"""Connections: one end customer's authenticated account for one connector.

A connection's credentials are one encrypted JSON object (purpose ``connection:<id>``): the
values its connector's auth reads (``api_key``, ``username`` and ``password``, ``token``...) or,
for OAuth 2.0, the tokens (``OAUTH_TOKEN_FIELDS``). OAuth client ids and secrets are not copied
into connections: they come from the organization's OAuth app when they are needed, so a rotated
client secret applies at once.

Statuses: ``pending`` (an OAuth authorization was started), ``connected``, ``needs_reconnect``
(the grant is gone: a refresh answered ``invalid_grant``, or the provider answered 401/403),
``disconnected`` (credentials wiped).

This module stores and encrypts; it knows nothing of specs or of OAuth. What a connector's auth
accepts, the authorization flow and token refreshes are composed in ``switchboard.credentials``
from the engine and these primitives: ``connector_ref`` (the raw spec), ``create`` and
``create_pending``, ``for_run``, ``lock_for_refresh`` (the row lock that keeps two workers from
spending one rotating refresh token), ``save_tokens`` and ``mark``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg.errors import ForeignKeyViolation

from store._ids import new_id
from store._oauth_states import OAuthStates
from store._paging import CUSTOMERS_OF_ENVIRONMENT, Filters, ListQuery, Page, fetch_page
from store.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from store._crypto import Encryptor
    from store._database import Tx

CONNECTION_STATUSES = ("pending", "connected", "needs_reconnect", "disconnected")
MAX_ERROR_TEXT = 500
MAX_CREDENTIAL_LENGTH = 8192
# What an OAuth 2.0 connection stores: engine.auth.TOKEN_FIELDS, repeated because store/ does not
# import engine/ (tests/test_layering.py pins the two together).
OAUTH_TOKEN_FIELDS = ("access_token", "refresh_token", "token_type", "expires_at", "scope")

_COLUMNS = (
    "c.org_id, c.id, c.customer_id, c.connector_id, k.key AS connector_key, c.name, c.auth_type, c.status,"
    " c.credentials IS NOT NULL AS has_credentials, c.expires_at, c.last_error, c.target, c.created_at, c.updated_at"
)
_FROM = "connections c JOIN connectors k ON k.org_id = c.org_id AND k.id = c.connector_id"
_SORTABLE = {"created_at": "c.created_at", "updated_at": "c.updated_at", "name": "c.name", "status": "c.status"}


def connection_purpose(connection_id: str) -> str:
    """The encryption purpose of a connection's credentials."""
    return f"connection:{connection_id}"


def _error_text(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


@dataclass(frozen=True)
class ConnectorRef:
    """A connector and the spec connections use: its latest published version, else its latest
    draft. ``spec`` is the stored JSON document, unparsed."""

    id: str
    key: str
    status: str
    version: int
    spec: dict[str, Any]


def connector_ref(tx: Tx, org_id: str, ref: str) -> ConnectorRef:
    """The connector ``ref`` (its key or id) with the spec document connections use.

    Raises ``NotFound`` (no such connector) and ``InvalidInput`` (field ``connector``: it has no
    version yet).
    """
    row = tx.execute(
        "SELECT id, key, status FROM connectors WHERE org_id = %s AND (id = %s OR key = %s) ORDER BY (id = %s) DESC LIMIT 1",
        (org_id, ref, ref, ref),
    ).fetchone()
    if row is None:
        raise NotFound("connector", ref)
    version = tx.execute(
        "SELECT version, spec FROM connector_versions WHERE org_id = %s AND connector_id = %s"
        " ORDER BY (state = 'published') DESC, version DESC LIMIT 1",
        (org_id, row["id"]),
    ).fetchone()
    if version is None:
        raise InvalidInput("connection", "connector", f"connector {row['key']} has no version to connect to yet")
    return ConnectorRef(row["id"], row["key"], row["status"], version["version"], version["spec"])


class Connections:
    """Connections of an organization's customers. Rows never include credentials: ``has_credentials``
    says whether any are stored, and ``connector_key`` names the connector."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    # -- create --------------------------------------------------------------------------------

    def create(
        self,
        org_id: str,
        customer_id: str,
        connector_id: str,
        *,
        name: str,
        auth_type: str,
        credentials: Mapping[str, Any],
        encryptor: Encryptor,
        target: str = "api",
    ) -> dict[str, Any]:
        """Create a ``connected`` connection for ``customer_id`` to ``connector_id`` with
        ``credentials`` (already checked against the connector's auth), stored encrypted; none
        are stored when it is empty. ``target`` is where its calls go (``CONNECTION_TARGETS``:
        the API, or the organization's hosted sandbox). Raises ``NotFound`` (customer or connector)."""
        connection_id = new_id("conn")
        values = dict(credentials)
        ciphertext = encryptor.encrypt_json(self.tx, org_id, values, connection_purpose(connection_id)) if values else None
        self._insert(org_id, connection_id, customer_id, connector_id, name, auth_type, "connected", ciphertext, target)
        return self.get(org_id, connection_id)

    def create_pending(self, org_id: str, customer_id: str, connector_id: str, *, name: str) -> dict[str, Any]:
        """Create a ``pending`` OAuth 2.0 connection (no credentials until the callback stores
        tokens with ``save_tokens``). Raises ``NotFound`` (customer or connector)."""
        connection_id = new_id("conn")
        self._insert(org_id, connection_id, customer_id, connector_id, name, "oauth2", "pending", None)
        return self.get(org_id, connection_id)

    def _insert(
        self, org_id: str, connection_id: str, customer_id: str, connector_id: str, name: str,
        auth_type: str, status: str, ciphertext: bytes | None, target: str = "api",
    ) -> None:
        try:
            self.tx.execute(
                "INSERT INTO connections (org_id, id, customer_id, connector_id, name, auth_type, status, credentials, target)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (org_id, connection_id, customer_id, connector_id, name, auth_type, status, ciphertext, target),
            )
        except ForeignKeyViolation as exc:
            if "connector_id" in (exc.diag.constraint_name or ""):
                raise NotFound("connector", connector_id) from exc
            raise NotFound("customer", customer_id) from exc

    # -- read ----------------------------------------------------------------------------------

    def get(self, org_id: str, connection_id: str, *, lock: bool = False) -> dict[str, Any]:
        """One connection (``lock``: held FOR UPDATE until the transaction ends). Raises ``NotFound``."""
        row = self.tx.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.org_id = %s AND c.id = %s{' FOR UPDATE OF c' if lock else ''}",
            (org_id, connection_id),
        ).fetchone()
        if row is None:
            raise NotFound("connection", connection_id)
        return row

    def list(
        self,
        org_id: str,
        query: ListQuery,
        *,
        customer_id: str | None = None,
        connector: str | None = None,
        status: str | None = None,
        hidden_environment: str | None = None,
    ) -> Page:
        """Connections, filtered by customer, connector (key or id) and status, leaving out the
        customers of environment ``hidden_environment`` (a slug); sortable by created_at,
        updated_at, name, status."""
        filters = Filters()
        filters.add("c.org_id = %(org)s", org=org_id)
        if customer_id:
            filters.add("c.customer_id = %(customer)s", customer=customer_id)
        if hidden_environment:
            filters.add("c.customer_id NOT IN " + CUSTOMERS_OF_ENVIRONMENT, hidden_env=hidden_environment)
        if connector:
            filters.add("(k.key = %(connector)s OR k.id = %(connector)s)", connector=connector)
        if status:
            if status not in CONNECTION_STATUSES:
                raise InvalidInput("connection", "status", f"must be one of {', '.join(CONNECTION_STATUSES)}")
            filters.add("c.status = %(status)s", status=status)
        return fetch_page(self.tx, "connection", _FROM, query, _SORTABLE, filters, id_column="c.id", columns=_COLUMNS)

    def for_run(self, org_id: str, customer_id: str, connector: str) -> dict[str, Any] | None:
        """The connection a run for ``customer_id`` uses with ``connector`` (key or id), or None:
        the most recently updated ``connected`` one, else a ``needs_reconnect`` one (the caller
        refuses it, naming it). Pending and disconnected connections are never chosen."""
        return self.tx.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.org_id = %s AND c.customer_id = %s"
            " AND (k.key = %s OR k.id = %s) AND c.status IN ('connected', 'needs_reconnect')"
            " ORDER BY (c.status = 'connected') DESC, c.updated_at DESC, c.id DESC LIMIT 1",
            (org_id, customer_id, connector, connector),
        ).fetchone()

    # -- credentials ---------------------------------------------------------------------------

    def credentials(self, org_id: str, connection_id: str, encryptor: Encryptor) -> dict[str, Any]:
        """The stored credentials, decrypted, as they are ({} when none). Raises ``NotFound``."""
        row = self.tx.execute(
            "SELECT credentials FROM connections WHERE org_id = %s AND id = %s", (org_id, connection_id)
        ).fetchone()
        if row is None:
            raise NotFound("connection", connection_id)
        return self._decrypt(org_id, connection_id, row["credentials"], encryptor)

    def lock_for_refresh(self, org_id: str, connection_id: str, encryptor: Encryptor) -> tuple[dict[str, Any], dict[str, Any]]:
        """Lock the connection (FOR UPDATE, until the transaction ends) and return its row and its
        decrypted credentials, as last committed.

        A token refresh holds this lock from before it reads the refresh token until the new tokens
        (or a ``needs_reconnect`` mark) are committed: a second worker waits here, then reads the
        new tokens instead of spending the old refresh token again. Raises ``NotFound``.
        """
        row = self.tx.execute(
            f"SELECT {_COLUMNS}, c.credentials AS _credentials FROM {_FROM}"
            " WHERE c.org_id = %s AND c.id = %s FOR UPDATE OF c",
            (org_id, connection_id),
        ).fetchone()
        if row is None:
            raise NotFound("connection", connection_id)
        row = dict(row)
        values = self._decrypt(org_id, connection_id, row.pop("_credentials"), encryptor)
        return row, values

    def _decrypt(self, org_id: str, connection_id: str, ciphertext: Any, encryptor: Encryptor) -> dict[str, Any]:
        if ciphertext is None:
            return {}
        return dict(encryptor.decrypt_json(self.tx, org_id, ciphertext, connection_purpose(connection_id)))

    # -- change --------------------------------------------------------------------------------

    def disconnect(self, org_id: str, connection_id: str) -> dict[str, Any]:
        """Disconnect (idempotent): status ``disconnected``, credentials and pending OAuth states
        wiped. The row stays so its history remains readable. Raises ``NotFound``."""
        self.get(org_id, connection_id, lock=True)
        OAuthStates(self.tx).discard(org_id, connection_id)
        self.tx.execute(
            "UPDATE connections SET status = 'disconnected', credentials = NULL, expires_at = NULL, updated_at = now()"
            " WHERE org_id = %s AND id = %s",
            (org_id, connection_id),
        )
        return self.get(org_id, connection_id)

    def mark(self, org_id: str, connection_id: str, status: str, last_error: str | None = None) -> dict[str, Any]:
        """Set the status (and ``last_error``, cleared when None). ``disconnected`` also wipes the
        credentials. ``last_error`` must hold no credential. Raises ``NotFound``, ``InvalidInput``."""
        if status not in CONNECTION_STATUSES:
            raise InvalidInput("connection", "status", f"must be one of {', '.join(CONNECTION_STATUSES)}")
        wipe = ", credentials = NULL, expires_at = NULL" if status == "disconnected" else ""
        row = self.tx.execute(
            f"UPDATE connections SET status = %s, last_error = %s{wipe}, updated_at = now()"
            " WHERE org_id = %s AND id = %s RETURNING id",
            (status, _error_text(last_error) if last_error else None, org_id, connection_id),
        ).fetchone()
        if row is None:
            raise NotFound("connection", connection_id)
        return self.get(org_id, connection_id)

    def save_tokens(self, org_id: str, connection_id: str, tokens: Mapping[str, Any], encryptor: Encryptor) -> dict[str, Any]:
        """Merge OAuth ``tokens`` (a token set's credentials; a None value clears a key) into the
        connection's credentials, set ``expires_at`` from them (epoch seconds), and mark it
        ``connected``. Only ``OAUTH_TOKEN_FIELDS`` are kept: an OAuth app's client secret never
        lands in a connection. The row is locked for the merge, so concurrent saves both apply.

        Raises ``NotFound``; ``Conflict`` when the connection was disconnected meanwhile (its
        credentials stay wiped).
        """
        row, current = self.lock_for_refresh(org_id, connection_id, encryptor)
        if row["status"] == "disconnected":
            raise Conflict("connection", "status", f"connection {connection_id} was disconnected; its tokens are not kept")
        for name, value in tokens.items():
            if name not in OAUTH_TOKEN_FIELDS:
                continue
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value
        expires = current.get("expires_at")
        expires_at = datetime.fromtimestamp(expires, UTC) if isinstance(expires, int | float) else None
        ciphertext = encryptor.encrypt_json(self.tx, org_id, current, connection_purpose(connection_id))
        self.tx.execute(
            "UPDATE connections SET credentials = %s, expires_at = %s, status = 'connected', last_error = NULL,"
            " updated_at = now() WHERE org_id = %s AND id = %s",
            (ciphertext, expires_at, org_id, connection_id),
        )
        return self.get(org_id, connection_id)

"""Connections: one end customer's authenticated account for one connector.

A connection's credentials are one encrypted JSON object (purpose ``connection:<id>``): the
values its connector's auth reads (``api_key``, ``username`` and ``password``, ``token``...) or,
for OAuth 2.0, the tokens (``access_token``, ``refresh_token``, ``token_type``, ``expires_at``,
``scope``). OAuth client ids and secrets are not copied into connections: they come from the
organization's OAuth app when they are needed, so a rotated client secret applies at once.

Statuses: ``pending`` (an OAuth authorization was started), ``connected``, ``needs_reconnect``
(the grant is gone: a refresh answered ``invalid_grant``, or the provider answered 401/403),
``disconnected`` (credentials wiped).

Tokens are refreshed here, under a row lock on the connection, rather than by each caller: two
workers holding the same rotating refresh token would otherwise both spend it, and the second
would get ``invalid_grant`` for a connection that is fine. That is why this one store module
imports the engine (specs, the OAuth 2.0 client): the refresh protocol lives there, and the
engine imports nothing of the store, so no cycle arises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.errors import ForeignKeyViolation
from psycopg.rows import tuple_row
from pydantic import ValidationError

from engine.auth import REFRESH_LEEWAY, TOKEN_FIELDS, OAuth2Client, TokenSet, authorization_url, new_code_verifier
from engine.errors import ReauthorizationRequired, TokenEndpointUnavailable
from engine.specs import ConnectorSpec, OAuth2Auth
from store._ids import new_id
from store._oauth_apps import OAuthApps
from store._oauth_states import OAuthStates
from store._paging import Filters, ListQuery, Page, fetch_page
from store.errors import (
    Conflict,
    ConnectionAuthInvalid,
    ConnectionNeedsReconnect,
    InvalidInput,
    NotFound,
    OAuthAppMissing,
)

CONNECTION_STATUSES = ("pending", "connected", "needs_reconnect", "disconnected")
# How long an end customer has between the authorize URL and the provider's callback.
OAUTH_STATE_TTL = timedelta(minutes=10)
MAX_ERROR_TEXT = 500
MAX_CREDENTIAL_LENGTH = 8192

_COLUMNS = (
    "c.org_id, c.id, c.customer_id, c.connector_id, k.key AS connector_key, c.name, c.auth_type, c.status,"
    " c.credentials IS NOT NULL AS has_credentials, c.expires_at, c.last_error, c.created_at, c.updated_at"
)
_FROM = "connections c JOIN connectors k ON k.org_id = c.org_id AND k.id = c.connector_id"
_SORTABLE = {"created_at": "c.created_at", "updated_at": "c.updated_at", "name": "c.name", "status": "c.status"}
_UNPRINTABLE = set(chr(i) for i in range(32)) | {"\x7f"}


def connection_purpose(connection_id: str) -> str:
    """The encryption purpose of a connection's credentials."""
    return f"connection:{connection_id}"


def _error_text(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


@dataclass(frozen=True)
class ConnectorRef:
    """A connector and the spec connections use: its latest published version, else its latest draft."""

    id: str
    key: str
    status: str
    version: int
    spec: ConnectorSpec


def load_connector(tx: Any, org_id: str, ref: str) -> ConnectorRef:
    """The connector ``ref`` (its key or id) with its current spec.

    Raises ``NotFound`` (no such connector) and ``InvalidInput`` (field ``connector``: it has no
    version yet, or its stored spec no longer validates).
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
    try:
        spec = ConnectorSpec.model_validate(version["spec"])
    except ValidationError:
        raise InvalidInput(
            "connection", "connector", f"connector {row['key']} version {version['version']} has an invalid spec"
        ) from None
    return ConnectorRef(row["id"], row["key"], row["status"], version["version"], spec)


def _connectable(connector: ConnectorRef) -> ConnectorRef:
    if connector.status == "archived":
        raise Conflict("connection", "connector", f"connector {connector.key} is archived and takes no new connections")
    return connector


def oauth_auth(connector: ConnectorRef, app: Mapping[str, Any]) -> OAuth2Auth:
    """The connector's OAuth 2.0 auth with the OAuth app's URL and scope overrides applied.

    Raises ``ConnectionAuthInvalid`` (``/connector``) when the connector does not use the
    authorization code flow.
    """
    auth = connector.spec.auth
    if not isinstance(auth, OAuth2Auth) or auth.flow != "authorization_code":
        kind = auth.type if not isinstance(auth, OAuth2Auth) else f"oauth2 {auth.flow}"
        raise ConnectionAuthInvalid(
            "/connector", f"connector {connector.key} uses {kind} auth, not the OAuth 2.0 authorization code flow"
        )
    updates: dict[str, Any] = {name: app[name] for name in ("authorize_url", "token_url") if app.get(name)}
    if app.get("scopes"):
        updates["scopes"] = list(app["scopes"])
    return auth.model_copy(update=updates)


def credential_values(connector: ConnectorRef, auth: Mapping[str, Any]) -> dict[str, str]:
    """The credentials to store for ``auth`` (a request's ``{"type": ..., ...}``), named as the
    connector's auth reads them.

    ``api_key`` fills the connector's one key; a connector with several keys (an account id and
    a key) takes them in ``values`` by credential name, which any type may also use for the
    credentials of actions with their own auth. Raises ``ConnectionAuthInvalid`` naming the JSON
    pointer of what does not fit.
    """
    scheme = connector.spec.auth
    kind = auth.get("type")
    if scheme.type == "oauth2":
        raise ConnectionAuthInvalid(
            "/auth/type",
            f"connector {connector.key} uses OAuth 2.0: start the authorization with POST /v1/connections/oauth/start",
        )
    if kind != scheme.type:
        raise ConnectionAuthInvalid("/auth/type", f"connector {connector.key} uses {scheme.type} auth, not {kind}")
    given: dict[str, tuple[str, Any]] = {}  # credential name -> (pointer, value)
    for name, value in (auth.get("values") or {}).items():
        given[name] = (f"/auth/values/{name}", value)
    if scheme.type == "basic":
        given[scheme.username] = ("/auth/username", auth.get("username"))
        given[scheme.password] = ("/auth/password", auth.get("password"))
    elif scheme.type == "bearer":
        given[scheme.credential] = ("/auth/token", auth.get("token"))
    elif scheme.type == "api_key" and auth.get("api_key") is not None:
        keys = scheme.credential_fields()
        if len(keys) != 1:
            raise ConnectionAuthInvalid(
                "/auth/api_key", f"connector {connector.key} needs {', '.join(keys)}: send each in /auth/values"
            )
        given[keys[0]] = ("/auth/api_key", auth["api_key"])
    known = connector.spec.credential_fields()
    values: dict[str, str] = {}
    for name, (pointer, value) in given.items():
        if name not in known:
            expected = ", ".join(known) or "none"
            raise ConnectionAuthInvalid(pointer, f"is not a credential of connector {connector.key} (expected: {expected})")
        if not isinstance(value, str) or not value:
            raise ConnectionAuthInvalid(pointer, "must be a non-empty string")
        if len(value) > MAX_CREDENTIAL_LENGTH or _UNPRINTABLE & set(value):
            raise ConnectionAuthInvalid(pointer, f"must be at most {MAX_CREDENTIAL_LENGTH} printable characters")
        values[name] = value
    for name in scheme.credential_fields():
        if name not in values:
            pointer = "/auth/api_key" if scheme.type == "api_key" and len(scheme.credential_fields()) == 1 else f"/auth/values/{name}"
            raise ConnectionAuthInvalid(pointer, f"is required by connector {connector.key}")
    return values


def _run_async(make: Callable[[], Awaitable[Any]], http: Any) -> Any:
    """Run a coroutine from this synchronous code: on a private event loop, in a helper thread
    when this thread already runs one. The HTTP client's connections for that loop are closed."""

    async def run() -> Any:
        try:
            return await make()
        finally:
            await http.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="connection-refresh") as pool:
        return pool.submit(asyncio.run, run()).result()


def _commit_keeping_tenant(tx: Any) -> None:
    """Commit ``tx`` now and set its tenant again for what the caller does next.

    Used after a token refresh: the provider has already spent the old refresh token, so the new
    tokens (or the needs-reconnect mark) must survive whatever the caller's transaction does next.
    """
    cursor = tx.cursor(row_factory=tuple_row)
    org_id, customer_id = cursor.execute(
        "SELECT current_setting('app.org_id', true), current_setting('app.customer_id', true)"
    ).fetchone()
    tx.commit()
    cursor.execute(
        "SELECT set_config('app.org_id', %s, true), set_config('app.customer_id', %s, true)",
        (org_id or "", customer_id or ""),
    )


class Connections:
    """Connections of an organization's customers. Rows never include credentials: ``has_credentials``
    says whether any are stored, and ``connector_key`` names the connector."""

    def __init__(self, tx: Any) -> None:
        self.tx = tx

    # -- create --------------------------------------------------------------------------------

    def create(
        self, org_id: str, customer_id: str, connector: str, *, name: str, auth: Mapping[str, Any], encryptor: Any
    ) -> dict[str, Any]:
        """Create a ``connected`` connection for ``customer_id`` to ``connector`` (key or id) with the
        credentials in ``auth`` (see ``credential_values``), stored encrypted.

        Raises ``NotFound`` (connector or customer), ``ConnectionAuthInvalid``, ``InvalidInput``.
        """
        ref = _connectable(load_connector(self.tx, org_id, connector))
        values = credential_values(ref, auth)
        connection_id = new_id("conn")
        ciphertext = encryptor.encrypt_json(self.tx, org_id, values, connection_purpose(connection_id)) if values else None
        self._insert(org_id, connection_id, customer_id, ref, name, ref.spec.auth.type, "connected", ciphertext)
        return self.get(org_id, connection_id)

    def start_oauth(
        self,
        org_id: str,
        customer_id: str,
        connector: str,
        *,
        name: str,
        callback_url: str,
        return_to: str | None,
        encryptor: Any,
        now: datetime,
    ) -> dict[str, Any]:
        """Begin an OAuth 2.0 authorization: a ``pending`` connection, a one-time state carrying the
        organization (``<org_id>.<random>``, the callback has no other way to know it) and an
        encrypted PKCE verifier (S256).

        Returns ``authorize_url``, ``state``, ``connection_id`` and ``expires_at`` (of the state).
        ``callback_url`` is this platform's callback, registered with the provider; ``return_to``
        is where the callback finally sends the browser. Raises ``NotFound``,
        ``ConnectionAuthInvalid`` (not an authorization code connector), ``OAuthAppMissing``.
        """
        ref = _connectable(load_connector(self.tx, org_id, connector))
        oauth_auth(ref, {})  # refuses a connector without the authorization code flow
        app = OAuthApps(self.tx).get_for_connector(org_id, ref.key, encryptor)
        if app is None:
            raise OAuthAppMissing(ref.key)
        auth = oauth_auth(ref, app)
        connection_id = new_id("conn")
        self._insert(org_id, connection_id, customer_id, ref, name, "oauth2", "pending", None)
        verifier = new_code_verifier()
        state = OAuthStates(self.tx).create(
            org_id,
            customer_id=customer_id,
            connection_id=connection_id,
            code_verifier=verifier,
            redirect_uri=callback_url,
            return_to=return_to,
            expires_at=now + OAUTH_STATE_TTL,
            encryptor=encryptor,
        )
        url = authorization_url(
            auth,
            client_id=app["client_id"],
            redirect_uri=callback_url,
            state=state,
            code_verifier=verifier if auth.pkce else None,
        )
        return {
            "authorize_url": url, "state": state, "connection_id": connection_id,
            "expires_at": now + OAUTH_STATE_TTL,
        }

    def _insert(
        self, org_id: str, connection_id: str, customer_id: str, ref: ConnectorRef, name: str,
        auth_type: str, status: str, ciphertext: bytes | None,
    ) -> None:
        try:
            self.tx.execute(
                "INSERT INTO connections (org_id, id, customer_id, connector_id, name, auth_type, status, credentials)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (org_id, connection_id, customer_id, ref.id, name or ref.spec.name or ref.key, auth_type, status, ciphertext),
            )
        except ForeignKeyViolation as exc:
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
    ) -> Page:
        """Connections, filtered by customer, connector (key or id) and status; sortable by
        created_at, updated_at, name, status."""
        filters = Filters()
        filters.add("c.org_id = %(org)s", org=org_id)
        if customer_id:
            filters.add("c.customer_id = %(customer)s", customer=customer_id)
        if connector:
            filters.add("(k.key = %(connector)s OR k.id = %(connector)s)", connector=connector)
        if status:
            if status not in CONNECTION_STATUSES:
                raise InvalidInput("connection", "status", f"must be one of {', '.join(CONNECTION_STATUSES)}")
            filters.add("c.status = %(status)s", status=status)
        return fetch_page(self.tx, "connection", _FROM, query, _SORTABLE, filters, id_column="c.id", columns=_COLUMNS)

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

    def save_tokens(self, org_id: str, connection_id: str, tokens: Mapping[str, Any], encryptor: Any) -> dict[str, Any]:
        """Merge OAuth ``tokens`` (``TokenSet.to_credentials()``; a None value clears a key) into the
        connection's credentials, set ``expires_at`` from them, and mark it ``connected``. Only the
        token fields are kept: an OAuth app's client secret never lands in a connection."""
        current = self.credentials(org_id, connection_id, encryptor)
        for name, value in tokens.items():
            if name not in TOKEN_FIELDS:
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

    # -- credentials ---------------------------------------------------------------------------

    def credentials(self, org_id: str, connection_id: str, encryptor: Any) -> dict[str, Any]:
        """The stored credentials, decrypted, as they are ({} when none): no refresh, no OAuth app."""
        row = self.tx.execute(
            "SELECT credentials FROM connections WHERE org_id = %s AND id = %s", (org_id, connection_id)
        ).fetchone()
        if row is None:
            raise NotFound("connection", connection_id)
        if row["credentials"] is None:
            return {}
        return dict(encryptor.decrypt_json(self.tx, org_id, row["credentials"], connection_purpose(connection_id)))

    def credentials_for_run(
        self,
        org_id: str,
        customer_id: str,
        connector_key: str,
        *,
        encryptor: Any,
        http: Any,
        clock: Callable[[], datetime],
    ) -> dict[str, Any] | None:
        """The credentials a run for ``customer_id`` uses with ``connector_key``, or None when the
        customer has no connection to it.

        The connection is the customer's most recently updated ``connected`` one. See
        ``credentials_for_connection`` for what is returned, refreshed and raised; raises
        ``ConnectionNeedsReconnect`` when the customer's only usable connection needs reconnecting.
        """
        row = self._run_connection(org_id, customer_id, connector_key)
        if row is None:
            return None
        if row["status"] == "needs_reconnect":
            raise ConnectionNeedsReconnect(row["id"], row["key"], row["last_error"] or "the connection was marked for reconnection")
        return self.credentials_for_connection(org_id, row["id"], encryptor=encryptor, http=http, clock=clock)

    def save_run_tokens(
        self, org_id: str, customer_id: str, connector_key: str, tokens: Mapping[str, Any], encryptor: Any
    ) -> dict[str, Any] | None:
        """Keep OAuth tokens the engine renewed during a run (what ``StaticCredentials.saves``
        recorded) on the connection ``credentials_for_run`` chose; returns it (None without one).

        Needed because a provider that rotates refresh tokens has revoked the one stored: without
        this, the next run's refresh would get ``invalid_grant``. Keys other than the token fields
        (``client_id``, ``client_secret``) are ignored.
        """
        row = self._run_connection(org_id, customer_id, connector_key)
        if row is None:
            return None
        return self.save_tokens(org_id, row["id"], tokens, encryptor)

    def _run_connection(self, org_id: str, customer_id: str, connector_key: str) -> dict[str, Any] | None:
        return self.tx.execute(
            f"SELECT c.id, c.status, c.last_error, k.key FROM {_FROM} WHERE c.org_id = %s AND c.customer_id = %s"
            " AND (k.key = %s OR k.id = %s) AND c.status IN ('connected', 'needs_reconnect')"
            " ORDER BY (c.status = 'connected') DESC, c.updated_at DESC, c.id DESC LIMIT 1",
            (org_id, customer_id, connector_key, connector_key),
        ).fetchone()

    def credentials_for_connection(
        self,
        org_id: str,
        connection_id: str,
        *,
        encryptor: Any,
        http: Any,
        clock: Callable[[], datetime],
        leeway: float = REFRESH_LEEWAY,
    ) -> dict[str, Any]:
        """Decrypted credentials of one connection, ready for the engine (``StaticCredentials``).

        For OAuth 2.0 the result also holds the OAuth app's ``client_id`` and ``client_secret``
        (the engine needs them to refresh after a 401), and an access token expiring within
        ``leeway`` seconds of ``clock()`` is first refreshed through ``http`` (the SSRF-guarded
        ``engine.http.HttpClient``) with the refresh token grant. A refresh commits this
        transaction (the provider has spent the old refresh token, so the outcome must persist)
        and sets its tenant again.

        Raises ``NotFound``; ``Conflict`` (the connection is pending or disconnected);
        ``ConnectionNeedsReconnect`` (an OAuth connection marked so, no token to use, or a refresh
        answered ``invalid_grant``: the connection is then marked ``needs_reconnect`` with
        ``last_error``); ``OAuthAppMissing``; ``TokenEndpointUnavailable`` (transient, and the
        access token already expired) and ``OAuthError`` from the engine.
        """
        row = self.get(org_id, connection_id, lock=True)
        if row["status"] in ("pending", "disconnected"):
            raise Conflict("connection", "status", f"connection {connection_id} is {row['status']} and has no credentials to use")
        values = self.credentials(org_id, connection_id, encryptor)
        if row["auth_type"] != "oauth2":
            return values
        if row["status"] == "needs_reconnect":
            raise ConnectionNeedsReconnect(connection_id, row["connector_key"], row["last_error"] or "the grant is gone")
        ref = load_connector(self.tx, org_id, row["connector_id"])
        app = OAuthApps(self.tx).get_for_connector(org_id, ref.key, encryptor)
        if app is None:
            raise OAuthAppMissing(ref.key)
        values.update(client_id=app["client_id"], client_secret=app["client_secret"])
        tokens = TokenSet.from_credentials(values)
        now = clock().timestamp()
        if tokens is None:
            self._needs_reconnect(org_id, row, "the connection holds no access token")
        if not tokens.expires_within(leeway, now):
            return values
        auth = oauth_auth(ref, app)
        client = OAuth2Client(http, clock=lambda: clock().timestamp(), leeway=leeway)
        try:
            fresh = _run_async(lambda: client.refresh(auth, values, connector_id=ref.key), http)
        except ReauthorizationRequired as exc:
            self._needs_reconnect(org_id, row, exc.reason)
        except TokenEndpointUnavailable:
            if not tokens.is_expired(now):
                return values  # still valid for a little while; the next use refreshes
            raise
        self.save_tokens(org_id, connection_id, fresh.to_credentials(), encryptor)
        _commit_keeping_tenant(self.tx)
        values.update({k: v for k, v in fresh.to_credentials().items() if v is not None})
        return values

    def _needs_reconnect(self, org_id: str, row: Mapping[str, Any], reason: str) -> None:
        self.mark(org_id, row["id"], "needs_reconnect", reason)
        _commit_keeping_tenant(self.tx)
        raise ConnectionNeedsReconnect(row["id"], row["connector_key"], reason)

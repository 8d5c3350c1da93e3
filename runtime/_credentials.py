"""Connections' credentials: the store's rows and encryption composed with the engine's specs and OAuth 2.0.

``store/`` keeps connections (SQL, encryption, row locks) and knows nothing of specs or HTTP;
``engine/`` knows specs and the OAuth 2.0 protocol and nothing of the store. This module joins
them, for every caller (routes, the agents' tools, workers):

- connecting: ``credential_values`` (what a connector's auth accepts), ``create_connection``,
  ``start_oauth``, ``oauth_setup`` (the connector's OAuth 2.0 auth with the organization's app);
- using: ``credentials_for_connection`` (decrypted, OAuth tokens refreshed before they expire),
  ``connection_for_run``;
- running: ``ConnectionCredentials``, the engine's credential provider over a customer's
  connections, which stores tokens the engine renews mid-run.

A refresh runs in its own tenant transaction that holds the connection's row lock
(``Connections.lock_for_refresh``) from before it reads the refresh token until the new tokens,
or the ``needs_reconnect`` mark, are committed; only then does the caller go on. The provider
spends the old refresh token as it answers, so that outcome must outlive whatever the caller
does next, and a second worker refreshing the same connection waits on the lock and then finds
the new tokens instead of spending the old refresh token again (``invalid_grant``).

Database work runs in worker threads (``anyio.to_thread``). The token request itself runs on the
caller's event loop (``anyio.from_thread``), where the process's shared ``HttpClient`` lives, while
its worker thread holds the transaction and the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import anyio.from_thread
import anyio.to_thread
from pydantic import ValidationError

import store
from engine.auth import REFRESH_LEEWAY, OAuth2Client, StaticCredentials, TokenSet, authorization_url, new_code_verifier
from engine.http import HttpClient
from engine.errors import ReauthorizationRequired, TokenEndpointUnavailable
from engine.specs import ConnectorSpec, OAuth2Auth
from runtime._access import PRODUCTION
from runtime._engine import placeholders
from runtime.errors import SandboxTargetRefused, SandboxUnavailable

Clock = Callable[[], datetime]
_UNPRINTABLE = set(chr(i) for i in range(32)) | {"\x7f"}


# -- connectors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connector:
    """A connector with the parsed spec connections use (its latest published version, else its
    latest draft)."""

    id: str
    key: str
    status: str
    version: int
    spec: ConnectorSpec


def connector_for_connections(tx: store.Tx, org_id: str, ref: str) -> Connector:
    """The connector ``ref`` (key or id) with its spec parsed.

    Raises ``NotFound`` and ``InvalidInput`` (field ``connector``: no version yet, or its stored
    spec no longer validates).
    """
    row = store.connector_ref(tx, org_id, ref)
    try:
        spec = ConnectorSpec.model_validate(row.spec)
    except ValidationError:
        raise store.InvalidInput(
            "connection", "connector", f"connector {row.key} version {row.version} has an invalid spec"
        ) from None
    return Connector(row.id, row.key, row.status, row.version, spec)


def _connectable(connector: Connector) -> Connector:
    if connector.status == "archived":
        raise store.Conflict("connection", "connector", f"connector {connector.key} is archived and takes no new connections")
    return connector


def oauth_auth(connector: Connector, app: Mapping[str, Any]) -> OAuth2Auth:
    """The connector's OAuth 2.0 auth with the OAuth app's URL and scope overrides applied.

    Raises ``ConnectionAuthInvalid`` (``/connector``) when the connector does not use the
    authorization code flow.
    """
    auth = connector.spec.auth
    if not isinstance(auth, OAuth2Auth) or auth.flow != "authorization_code":
        kind = auth.type if not isinstance(auth, OAuth2Auth) else f"oauth2 {auth.flow}"
        raise store.ConnectionAuthInvalid(
            "/connector", f"connector {connector.key} uses {kind} auth, not the OAuth 2.0 authorization code flow"
        )
    updates: dict[str, Any] = {name: app[name] for name in ("authorize_url", "token_url") if app.get(name)}
    if app.get("scopes"):
        updates["scopes"] = list(app["scopes"])
    return auth.model_copy(update=updates)


@dataclass(frozen=True)
class OAuthSetup:
    """What an OAuth 2.0 token request for a connector needs: its auth (with the app's overrides)
    and the organization's client. The repr leaves the secret out."""

    connector: Connector
    auth: OAuth2Auth
    client_id: str
    client_secret: str | None = field(repr=False)

    def client(self) -> dict[str, Any]:
        """``client_id`` and ``client_secret``, as the engine reads them from credentials."""
        return {"client_id": self.client_id, "client_secret": self.client_secret}


def oauth_setup(tx: store.Tx, org_id: str, connector: Connector, encryptor: store.Encryptor) -> OAuthSetup:
    """The OAuth 2.0 setup of ``connector`` from the organization's OAuth app.

    Raises ``ConnectionAuthInvalid`` (not an authorization code connector) and ``OAuthAppMissing``.
    """
    oauth_auth(connector, {})  # refuses a connector without the authorization code flow first
    app = store.OAuthApps(tx).get_for_connector(org_id, connector.key, encryptor)
    if app is None:
        raise store.OAuthAppMissing(connector.key)
    return OAuthSetup(connector, oauth_auth(connector, app), app["client_id"], app["client_secret"])


# -- connecting ------------------------------------------------------------------------------


def credential_values(connector: Connector, auth: Mapping[str, Any]) -> dict[str, str]:
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
        raise store.ConnectionAuthInvalid(
            "/auth/type",
            f"connector {connector.key} uses OAuth 2.0: start the authorization with POST /v1/connections/oauth/start",
        )
    if kind != scheme.type:
        raise store.ConnectionAuthInvalid("/auth/type", f"connector {connector.key} uses {scheme.type} auth, not {kind}")
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
            raise store.ConnectionAuthInvalid(
                "/auth/api_key", f"connector {connector.key} needs {', '.join(keys)}: send each in /auth/values"
            )
        given[keys[0]] = ("/auth/api_key", auth["api_key"])
    known = connector.spec.credential_fields()
    values: dict[str, str] = {}
    for name, (pointer, value) in given.items():
        if name not in known:
            expected = ", ".join(known) or "none"
            raise store.ConnectionAuthInvalid(pointer, f"is not a credential of connector {connector.key} (expected: {expected})")
        if not isinstance(value, str) or not value:
            raise store.ConnectionAuthInvalid(pointer, "must be a non-empty string")
        if len(value) > store.MAX_CREDENTIAL_LENGTH or _UNPRINTABLE & set(value):
            raise store.ConnectionAuthInvalid(pointer, f"must be at most {store.MAX_CREDENTIAL_LENGTH} printable characters")
        values[name] = value
    for name in scheme.credential_fields():
        if name not in values:
            one_key = scheme.type == "api_key" and len(scheme.credential_fields()) == 1
            raise store.ConnectionAuthInvalid(
                "/auth/api_key" if one_key else f"/auth/values/{name}", f"is required by connector {connector.key}"
            )
    return values


def create_connection(
    tx: store.Tx, org_id: str, customer_id: str, connector: str, *, name: str, auth: Mapping[str, Any] | None,
    encryptor: store.Encryptor, target: str = "api",
) -> dict[str, Any]:
    """Create a ``connected`` connection for ``customer_id`` to ``connector`` (key or id) with the
    credentials in ``auth`` (see ``credential_values``), stored encrypted; ``name`` defaults to
    the connector's.

    ``target="sandbox"`` points the connection at the organization's hosted sandbox of the
    connector instead of its API: allowed only for a customer outside the production environment
    and a connector imported from a document, with no ``auth`` (generated credentials of the
    connector's shape are stored: a sandbox checks that credentials are present, never their
    value, and a real credential must never be sent to one).

    Raises ``NotFound`` (connector or customer), ``Conflict`` (archived connector),
    ``ConnectionAuthInvalid``, ``InvalidInput``, ``SandboxTargetRefused`` (production),
    ``SandboxUnavailable`` (no document).
    """
    ref = _connectable(connector_for_connections(tx, org_id, connector))
    if target == "sandbox":
        values = _sandbox_credentials(tx, org_id, customer_id, ref, auth)
    else:
        if auth is None:
            raise store.ConnectionAuthInvalid("/auth", f"is required for a connection to the API of {ref.key}")
        values = credential_values(ref, auth)
    return store.Connections(tx).create(
        org_id, customer_id, ref.id, name=name or ref.spec.name or ref.key, auth_type=ref.spec.auth.type,
        credentials=values, encryptor=encryptor, target=target,
    )


def _sandbox_credentials(
    tx: store.Tx, org_id: str, customer_id: str, ref: Connector, auth: Mapping[str, Any] | None
) -> dict[str, Any]:
    customer = store.Customers(tx).get(org_id, customer_id)
    environment = store.Environments(tx).get(org_id, customer["environment_id"])
    if environment["slug"] == PRODUCTION:
        raise SandboxTargetRefused(environment["slug"])
    if store.SandboxDocuments(tx).checksum(org_id, ref.id) is None:
        raise SandboxUnavailable(ref.key)
    if auth is not None and any(k != "type" for k in auth if auth[k] is not None):
        raise store.ConnectionAuthInvalid(
            "/auth", "a sandbox connection takes no credentials: generated ones are stored (never send a real one)"
        )
    return placeholders(ref.spec)


def start_oauth(
    tx: store.Tx,
    org_id: str,
    customer_id: str,
    connector: str,
    *,
    name: str,
    callback_url: str,
    return_to: str | None,
    encryptor: store.Encryptor,
    now: datetime,
) -> dict[str, Any]:
    """Begin an OAuth 2.0 authorization: a ``pending`` connection, a one-time state carrying the
    organization (``<org_id>.<random>``, the callback has no other way to know it) and an
    encrypted PKCE verifier (S256).

    Returns ``authorize_url``, ``state``, ``connection_id`` and ``expires_at`` (of the state,
    ``store.OAUTH_STATE_TTL`` from ``now``). ``callback_url`` is this platform's callback,
    registered with the provider; ``return_to`` is where the callback finally sends the browser.
    Raises ``NotFound``, ``Conflict`` (archived connector), ``ConnectionAuthInvalid`` (not an
    authorization code connector), ``OAuthAppMissing``.
    """
    ref = _connectable(connector_for_connections(tx, org_id, connector))
    setup = oauth_setup(tx, org_id, ref, encryptor)
    connection = store.Connections(tx).create_pending(org_id, customer_id, ref.id, name=name or ref.spec.name or ref.key)
    verifier = new_code_verifier()
    expires_at = now + store.OAUTH_STATE_TTL
    state = store.OAuthStates(tx).create(
        org_id,
        customer_id=customer_id,
        connection_id=connection["id"],
        code_verifier=verifier,
        redirect_uri=callback_url,
        return_to=return_to,
        expires_at=expires_at,
        encryptor=encryptor,
    )
    url = authorization_url(
        setup.auth,
        client_id=setup.client_id,
        redirect_uri=callback_url,
        state=state,
        code_verifier=verifier if setup.auth.pkce else None,
    )
    return {"authorize_url": url, "state": state, "connection_id": connection["id"], "expires_at": expires_at}


# -- using -----------------------------------------------------------------------------------


def connection_for_run(tx: store.Tx, org_id: str, customer_id: str, connector: str) -> str | None:
    """The id of the connection a run for ``customer_id`` uses with ``connector`` (key or id): the
    most recently updated ``connected`` one; None when the customer has none.

    Raises ``ConnectionNeedsReconnect`` when the customer's only usable connection needs
    reconnecting.
    """
    row = store.Connections(tx).for_run(org_id, customer_id, connector)
    if row is None:
        return None
    if row["status"] == "needs_reconnect":
        raise store.ConnectionNeedsReconnect(
            row["id"], row["connector_key"], row["last_error"] or "the connection was marked for reconnection"
        )
    return row["id"]


async def credentials_for_connection(
    db: store.Database,
    org_id: str,
    connection_id: str,
    *,
    customer_id: str | None = None,
    encryptor: store.Encryptor,
    http: HttpClient,
    clock: Clock,
    leeway: float = REFRESH_LEEWAY,
) -> dict[str, Any]:
    """Decrypted credentials of one connection, ready for the engine (``StaticCredentials``).

    Reads in a tenant transaction bound to ``org_id`` and ``customer_id`` (None: the whole
    organization). For OAuth 2.0 the result also holds the OAuth app's ``client_id`` and
    ``client_secret`` (the engine needs them to refresh after a 401), and an access token expiring
    within ``leeway`` seconds of ``clock()`` is first refreshed with the refresh token grant
    through ``http`` (the process's SSRF-guarded ``engine.http.HttpClient``). The refresh commits
    its outcome in its own transaction, under the connection's row lock, before this returns or
    raises (see the module docstring).

    Raises ``NotFound``; ``Conflict`` (the connection is pending or disconnected);
    ``ConnectionNeedsReconnect`` (an OAuth connection marked so, one holding no access token, or a
    refresh answered ``invalid_grant``: the connection is then marked ``needs_reconnect`` with
    ``last_error``); ``OAuthAppMissing``; ``ConnectionAuthInvalid`` (its connector no longer uses
    the authorization code flow); ``TokenEndpointUnavailable`` (transient, and the access token
    already expired) and ``OAuthError`` from the engine.
    """
    oauth = OAuth2Client(http, clock=lambda: clock().timestamp(), leeway=leeway)
    refresh = _Refresh(db, org_id, customer_id, connection_id, encryptor, oauth, clock, leeway)
    return await anyio.to_thread.run_sync(refresh.run)


def _usable(row: Mapping[str, Any]) -> None:
    if row["status"] in ("pending", "disconnected"):
        raise store.Conflict("connection", "status", f"connection {row['id']} is {row['status']} and has no credentials to use")
    if row["status"] == "needs_reconnect" and row["auth_type"] == "oauth2":
        raise store.ConnectionNeedsReconnect(row["id"], row["connector_key"], row["last_error"] or "the grant is gone")


@dataclass
class _Refresh:
    """One ``credentials_for_connection`` call, run in a worker thread."""

    db: store.Database
    org_id: str
    customer_id: str | None
    connection_id: str
    encryptor: store.Encryptor = field(repr=False)
    oauth: OAuth2Client
    clock: Clock
    leeway: float

    def run(self) -> dict[str, Any]:
        with self.db.tenant(self.org_id, self.customer_id) as tx:
            outcome = self._in(tx)
        # Leaving the block committed the needs_reconnect mark before the caller hears of it.
        if isinstance(outcome, store.ConnectionNeedsReconnect):
            raise outcome
        return outcome

    def _in(self, tx: store.Tx) -> dict[str, Any] | store.ConnectionNeedsReconnect:
        connections = store.Connections(tx)
        row = connections.get(self.org_id, self.connection_id)
        _usable(row)
        values = connections.credentials(self.org_id, self.connection_id, self.encryptor)
        if row["auth_type"] != "oauth2" or row.get("target") == "sandbox":
            # A sandbox connection's tokens are generated and never expire: no OAuth app, no refresh.
            return values
        setup = oauth_setup(tx, self.org_id, connector_for_connections(tx, self.org_id, row["connector_id"]), self.encryptor)
        tokens = TokenSet.from_credentials(values)
        if tokens is not None and not tokens.expires_within(self.leeway, self.clock().timestamp()):
            return values | setup.client()
        # Expiring: lock, then look again; another worker may have refreshed while this one read.
        row, values = connections.lock_for_refresh(self.org_id, self.connection_id, self.encryptor)
        _usable(row)
        values |= setup.client()
        tokens = TokenSet.from_credentials(values)
        now = self.clock().timestamp()
        if tokens is None:
            return self._needs_reconnect(connections, row, "the connection holds no access token")
        if not tokens.expires_within(self.leeway, now):
            return values
        try:
            fresh = anyio.from_thread.run(partial(self.oauth.refresh, setup.auth, values, connector_id=setup.connector.key))
        except ReauthorizationRequired as exc:
            return self._needs_reconnect(connections, row, exc.reason)
        except TokenEndpointUnavailable:
            if not tokens.is_expired(now):
                return values  # still valid for a little while; the next use refreshes
            raise
        renewed = fresh.to_credentials()
        connections.save_tokens(self.org_id, self.connection_id, renewed, self.encryptor)
        return values | {k: v for k, v in renewed.items() if v is not None}

    def _needs_reconnect(
        self, connections: store.Connections, row: Mapping[str, Any], reason: str
    ) -> store.ConnectionNeedsReconnect:
        connections.mark(self.org_id, row["id"], "needs_reconnect", reason)
        return store.ConnectionNeedsReconnect(row["id"], row["connector_key"], reason)


# -- running ---------------------------------------------------------------------------------


class ConnectionCredentials(StaticCredentials):
    """The engine's credential provider for one customer's run, over that customer's connections.

    ``credentials`` are the values loaded before the run (``credentials_for_connection``) by
    connector id; ``connections`` names the connection each came from; ``customer_id`` binds the
    tenant transactions that store tokens (None: the organization). ``get`` serves them from
    memory. ``save`` (the engine renewed OAuth tokens mid-run, after a 401 or at expiry) merges
    the tokens in memory, as ``StaticCredentials`` does, and stores them on the connection at
    once: a provider that rotates refresh tokens has already revoked the one stored, so the next
    refresh would otherwise get ``invalid_grant``, even if this run later fails or is cut short.
    Connectors without a connection (a dry run's placeholders) stay in memory. A connection
    disconnected during the run keeps its credentials wiped.
    """

    def __init__(
        self,
        db: store.Database,
        org_id: str,
        customer_id: str | None,
        encryptor: store.Encryptor,
        credentials: Mapping[str, Mapping[str, Any]],
        connections: Mapping[str, str],
    ) -> None:
        super().__init__(credentials)
        self._db = db
        self._org_id = org_id
        self._customer_id = customer_id
        self._encryptor = encryptor
        self._connections = dict(connections)
        self.stored: list[str] = []  # ids of the connections whose tokens were stored, in order

    async def save(self, connector_id: str, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into ``connector_id``'s credentials and store the token fields on its
        connection. Raises ``StoreError`` when the store cannot be reached."""
        await super().save(connector_id, values)
        connection_id = self._connections.get(connector_id)
        if connection_id is not None:
            await anyio.to_thread.run_sync(self._store, connection_id, dict(values))

    def _store(self, connection_id: str, values: dict[str, Any]) -> None:
        with self._db.tenant(self._org_id, self._customer_id) as tx:
            try:
                store.Connections(tx).save_tokens(self._org_id, connection_id, values, self._encryptor)
            except store.Conflict:
                return  # disconnected during the run
        self.stored.append(connection_id)

    def __repr__(self) -> str:
        return f"ConnectionCredentials(connections={sorted(self._connections)!r}, saves={len(self.saves)})"

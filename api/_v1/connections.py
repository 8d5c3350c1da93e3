"""Connections: an end customer's authenticated accounts, by credentials or OAuth 2.0.

The customer is the one named by ``x-fastn-account-tenant-id`` (``principal.customer()``):
creating a connection or starting an OAuth authorization requires it; with it, every route sees
only that customer's connections (row-level security is bound to it). Organization-level callers
without the header see every customer's and may filter lists with ``customer``.

Credentials are write-only: no response, log line or audit entry holds them. Disconnecting
(``DELETE``) keeps the row, wipes its credentials and answers 200 with it.

The OAuth callback (``GET /v1/oauth/callback``) is called by the end customer's browser, with
no credentials of ours: the one-time ``state`` names the organization, and the route writes its
own audit entry (actor ``system``/``oauth_callback``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from fastapi import Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

import store
from api._auth import Principal, require
from api._deps import AppSettings, Clock, Db, Encryptor, Http
from api._lists import ListParams, PageOut, page_out
from api._v1._common import in_thread, tenant_tx
from api._v1._common import router as make_router
from engine.actions import ActionExecutor
from engine.auth import Authenticator, CredentialProvider, OAuth2Client
from engine.errors import EngineError, OAuthError, ReauthorizationRequired
from engine.specs import ConnectorSpec
from switchboard import credentials

router = make_router("connections")

Status = Literal["pending", "connected", "needs_reconnect", "disconnected"]
CALLBACK_PATH = "/v1/oauth/callback"
TEST_ACTION = "test"
MAX_DETAIL = 300
MAX_URL = 2048
Credential = Annotated[SecretStr, Field(min_length=1, max_length=store.MAX_CREDENTIAL_LENGTH)]
CredentialName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]


class ConnectionOut(BaseModel):
    id: str
    customer_id: str
    connector_id: str
    connector_key: str
    name: str
    auth_type: str
    status: Status
    has_credentials: bool = Field(description="Whether credentials are stored (they are never returned).")
    expires_at: datetime | None = Field(None, description="When the OAuth access token expires (refreshed before).")
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime


class _AuthIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: dict[CredentialName, Credential] | None = Field(
        None, max_length=20, description="Credentials by the name the connector's auth reads them (write-only)."
    )

    def plain(self) -> dict[str, Any]:
        """The credentials as plain values, for the store only."""
        out: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                out[name] = value.get_secret_value()
            elif name == "values" and value is not None:
                out[name] = {k: v.get_secret_value() for k, v in value.items()}
            else:
                out[name] = value
        return out


class NoAuthIn(_AuthIn):
    type: Literal["none"]


class ApiKeyAuthIn(_AuthIn):
    type: Literal["api_key"]
    api_key: Credential | None = Field(None, description="The key, for a connector with one; else use values.")


class BasicAuthIn(_AuthIn):
    type: Literal["basic"]
    username: Credential
    password: Credential


class BearerAuthIn(_AuthIn):
    type: Literal["bearer"]
    token: Credential


class OAuth2AuthIn(_AuthIn):
    """Refused with a pointer to ``POST /v1/connections/oauth/start``; listed so the error can say so."""

    type: Literal["oauth2"]


AuthIn = Annotated[Union[NoAuthIn, ApiKeyAuthIn, BasicAuthIn, BearerAuthIn, OAuth2AuthIn], Field(discriminator="type")]


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str = Field(min_length=1, max_length=128, description="Connector key or id.")
    name: str = Field("", max_length=200, description="Defaults to the connector's name.")
    auth: AuthIn


def _check_return_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    return value


class OAuthStartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str = Field(min_length=1, max_length=128, description="Connector key or id.")
    name: str = Field("", max_length=200, description="Defaults to the connector's name.")
    redirect_uri: str | None = Field(
        None,
        max_length=MAX_URL,
        description="Where the callback finally sends the browser (with connection_id and status); "
        "without it the callback answers JSON. Not the redirect URI registered with the provider.",
    )

    @field_validator("redirect_uri")
    @classmethod
    def _return_url(cls, value: str | None) -> str | None:
        return _check_return_url(value)


class OAuthStartOut(BaseModel):
    authorize_url: str = Field(description="Send the end customer's browser here.")
    state: str
    connection_id: str
    expires_at: datetime = Field(description="The authorization must complete before this.")


class OAuthCallbackOut(BaseModel):
    connection_id: str
    status: Status


class ConnectionTestOut(BaseModel):
    ok: bool = Field(description="Whether the provider accepted the authenticated call.")
    status: int | None = Field(description="The provider's HTTP status (null when no answer was received).")
    detail: str
    action: str | None = Field(description="The connector action called.")
    connection: ConnectionOut


@contextmanager
def _tx(db: store.Database, principal: Principal) -> Iterator[store.Tx]:
    # Bound to the customer the request names (any caller), not only to a key's bound customer.
    with tenant_tx(db, principal, named_customer=True) as tx:
        yield tx


@router.post("/connections", name="connection.create", response_model=ConnectionOut, status_code=201)
def create_connection(
    body: ConnectionIn, db: Db, encryptor: Encryptor, principal: Annotated[Principal, require("connections", "write")]
) -> Any:
    """Connect the customer named by ``x-fastn-account-tenant-id`` with an API key, basic or bearer
    credentials; the auth type must be the connector's (else 422 naming ``/auth/type``)."""
    customer_id = principal.customer()
    with _tx(db, principal) as tx:
        return credentials.create_connection(
            tx, principal.org_id, customer_id, body.connector, name=body.name, auth=body.auth.plain(), encryptor=encryptor
        )


@router.get("/connections", name="connection.list", response_model=PageOut[ConnectionOut])
def list_connections(
    db: Db,
    principal: Annotated[Principal, require("connections", "read")],
    page: ListParams,
    customer: Annotated[str | None, Query(max_length=128, description="Only this customer's (org callers).")] = None,
    connector: Annotated[str | None, Query(max_length=128, description="Connector key or id.")] = None,
    status: Status | None = None,
) -> Any:
    """Connections (sort: created_at, updated_at, name, status); a customer-scoped caller sees its own."""
    with _tx(db, principal) as tx:
        result = store.Connections(tx).list(
            principal.org_id, page.query(), customer_id=customer or principal.customer_id, connector=connector, status=status
        )
    return page_out(result, dict)


@router.get("/connections/{connection_id}", name="connection.get", response_model=ConnectionOut)
def get_connection(connection_id: str, db: Db, principal: Annotated[Principal, require("connections", "read")]) -> Any:
    """One connection (never its credentials)."""
    with _tx(db, principal) as tx:
        return store.Connections(tx).get(principal.org_id, connection_id)


@router.delete("/connections/{connection_id}", name="connection.disconnect", response_model=ConnectionOut)
def disconnect_connection(
    connection_id: str, db: Db, principal: Annotated[Principal, require("connections", "write")]
) -> Any:
    """Disconnect: status ``disconnected``, credentials wiped; answers 200 with the row (idempotent)."""
    with _tx(db, principal) as tx:
        return store.Connections(tx).disconnect(principal.org_id, connection_id)


def _test_action(spec: ConnectorSpec) -> str | None:
    if TEST_ACTION in spec.actions:
        return TEST_ACTION
    for name, action in spec.actions.items():
        if action.method == "GET" and not action.input.get("required") and not action.path_placeholders():
            return name
    return None


def _excerpt(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


@dataclass
class _Probe:
    ok: bool = False
    status: int | None = None
    detail: str = ""
    mark: tuple[str, str | None] | None = None  # the status (and last_error) the outcome sets


async def _probe(
    http: Any, clock: Any, row: dict[str, Any], ref: credentials.Connector, action: str, provider: CredentialProvider
) -> _Probe:
    executor = ActionExecutor(
        {ref.spec.id: ref.spec}, http=http, connection_scope=f"{row['org_id']}/{row['customer_id']}",
        auth=Authenticator(provider, OAuth2Client(http, clock=lambda: clock().timestamp())),
    )
    probe = _Probe()
    try:
        response = await executor.call(ref.spec.id, action, {}, paginate_pages=False, raise_for_status=False)
    except ReauthorizationRequired as exc:
        probe.detail = f"the connection needs to be reconnected: {exc.reason}"
        probe.mark = ("needs_reconnect", exc.reason)
    except EngineError as exc:
        probe.detail = str(exc)
    else:
        probe.ok, probe.status = response.ok, response.status
        probe.detail = f"{action} answered HTTP {response.status}" + ("" if response.ok else f": {_excerpt(response.body)}")
        if response.status in (401, 403):
            probe.mark = ("needs_reconnect", f"test call {action} was refused with HTTP {response.status}")
        elif response.ok and (row["status"] != "connected" or row["last_error"]):
            probe.mark = ("connected", None)
    return probe


@router.post("/connections/{connection_id}/test", name="connection.test", response_model=ConnectionTestOut)
async def test_connection(
    connection_id: str,
    db: Db,
    encryptor: Encryptor,
    clock: Clock,
    http_client: Http,
    principal: Annotated[Principal, require("connections", "write")],
) -> Any:
    """Make one real authenticated call: the connector's ``test`` action, else its first GET action
    that needs no input. ``status`` is the provider's HTTP status. A 401 or 403 marks the
    connection ``needs_reconnect``; a success marks a ``needs_reconnect`` one ``connected`` again.
    OAuth tokens expiring within a minute are refreshed first (``invalid_grant`` marks the
    connection ``needs_reconnect``). 409 for a pending or disconnected connection."""
    org_id = principal.org_id
    http = http_client

    def prepare() -> tuple[dict[str, Any], credentials.Connector, str]:
        with _tx(db, principal) as tx:
            row = store.Connections(tx).get(org_id, connection_id)
            ref = credentials.load_connector(tx, org_id, row["connector_id"])
            action = _test_action(ref.spec)
            if action is None:
                raise store.InvalidInput(
                    "connection", "connector",
                    f"connector {ref.key} has no action to test with: name one 'test' or add a GET action without required input",
                )
            return row, ref, action

    row, ref, action = await in_thread(prepare)
    try:
        values = await credentials.credentials_for_connection(
            db, org_id, connection_id, customer_id=principal.customer_id, encryptor=encryptor, http=http, clock=clock
        )
    except store.ConnectionNeedsReconnect as exc:  # marked and committed already
        probe = _Probe(detail=f"the connection needs to be reconnected: {exc.reason}")
    else:
        # Tokens the engine renews after a 401 are stored on the connection as they are issued.
        provider = credentials.ConnectionCredentials(
            db, org_id, principal.customer_id, encryptor, {ref.spec.id: values}, {ref.spec.id: connection_id}
        )
        probe = await _probe(http, clock, row, ref, action, provider)

    def record() -> dict[str, Any]:
        with _tx(db, principal) as tx:
            repo = store.Connections(tx)
            if probe.mark is not None:
                repo.mark(org_id, connection_id, *probe.mark)
            return repo.get(org_id, connection_id)

    connection = await in_thread(record)
    return {"ok": probe.ok, "status": probe.status, "detail": probe.detail, "action": action, "connection": connection}


def _callback_url(request: Request, settings: Any) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/") + CALLBACK_PATH
    return str(request.url_for("connection.oauth_callback"))


@router.post(
    "/connections/oauth/start",
    name="connection.oauth_start",
    response_model=OAuthStartOut,
    status_code=201,
    openapi_extra={"x-idempotent": True},
)
def start_oauth(
    body: OAuthStartIn,
    request: Request,
    db: Db,
    encryptor: Encryptor,
    clock: Clock,
    settings: AppSettings,
    principal: Annotated[Principal, require("connections", "write")],
) -> Any:
    """Start connecting the customer named by ``x-fastn-account-tenant-id`` with OAuth 2.0: creates
    a ``pending`` connection and returns the provider's authorize URL (with a one-time ``state`` and
    a PKCE S256 challenge). The organization's OAuth app for the connector supplies the client
    (422 without one). The provider redirects to ``/v1/oauth/callback``."""
    customer_id = principal.customer()
    with _tx(db, principal) as tx:
        return credentials.start_oauth(
            tx, principal.org_id, customer_id, body.connector, name=body.name, callback_url=_callback_url(request, settings),
            return_to=body.redirect_uri, encryptor=encryptor, now=clock(),
        )


def _audit(tx: Any, org_id: str, state: dict[str, Any], outcome: str, code: str | None, status: int, connector: str | None) -> None:
    store.AuditLog(tx).record(
        org_id, actor_type="system", actor_id="oauth_callback", action="connection.oauth_callback",
        resource_type="connection", resource_id=state["connection_id"], customer_id=state["customer_id"],
        outcome=outcome, error_code=code, status=status, detail={"connector": connector} if connector else {},
    )


@router.get(
    "/oauth/callback",
    name="connection.oauth_callback",
    response_model=OAuthCallbackOut,
    responses={303: {"description": "Connected; the browser goes on to the redirect_uri given at start."}},
)
async def oauth_callback(
    db: Db,
    encryptor: Encryptor,
    clock: Clock,
    http_client: Http,
    state: Annotated[str | None, Query(max_length=300)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
) -> Any:
    """Where the OAuth provider sends the end customer's browser (no credentials needed: the
    one-time ``state`` identifies the authorization). Exchanges ``code`` for tokens (PKCE), stores
    them encrypted and marks the connection ``connected``; then redirects to the ``redirect_uri``
    given at start (303), or answers JSON. An unknown, reused or expired state is a 400; a provider
    ``error`` (such as ``access_denied``) or a refused exchange leaves the connection
    ``disconnected`` with ``last_error`` and is a 400."""
    state = state or ""
    org_id = store.state_org(state)
    if org_id is None:
        raise store.OAuthStateInvalid("it is missing or not a state this platform issued")
    now = clock()

    def fail(
        tx: Any, taken: dict[str, Any], kind: str, reason: str, connector: str | None,
        problem: Any = store.OAuthCallbackFailed,
    ) -> None:
        # ``problem``: the error class the browser gets, for the audit entry's code and status.
        store.Connections(tx).mark(org_id, taken["connection_id"], "disconnected", f"OAuth authorization failed ({kind}): {reason}")
        _audit(tx, org_id, taken, "error", problem.code, problem.http_status, connector)

    def begin() -> tuple[dict[str, Any] | None, credentials.OAuthSetup | None, str | None]:
        with db.tenant(org_id) as tx:
            taken = store.OAuthStates(tx).consume(org_id, state, encryptor)
            if taken is None:
                return None, None, "it is unknown or was already used"
            if taken["expires_at"] <= now:
                fail(tx, taken, "expired", "the authorization was not completed in time; start again", None, store.OAuthStateInvalid)
                return None, None, "the authorization expired; start again"
            if error or not code:
                kind = error or "missing_code"
                fail(tx, taken, kind, error_description or f"the provider answered {kind}", None)
                return taken, None, kind
            try:
                connection = store.Connections(tx).get(org_id, taken["connection_id"])
                ref = credentials.load_connector(tx, org_id, connection["connector_id"])
                return taken, credentials.oauth_setup(tx, org_id, ref, encryptor), None
            except store.ResourceError as exc:
                fail(tx, taken, exc.code, str(exc), None)
                return taken, None, exc.code

    taken, setup, refused = await in_thread(begin)
    if taken is None:
        raise store.OAuthStateInvalid(refused or "it is unknown")
    if setup is None:
        raise store.OAuthCallbackFailed(taken["connection_id"], refused or "error", error_description or "the authorization was refused")
    ref = setup.connector
    client = OAuth2Client(http_client, clock=lambda: clock().timestamp())
    try:
        tokens = await client.exchange_code(
            setup.auth, client_id=setup.client_id, client_secret=setup.client_secret, code=code or "",
            redirect_uri=taken["redirect_uri"], code_verifier=taken["code_verifier"] if setup.auth.pkce else None,
        )
    except EngineError as exc:
        kind = exc.error if isinstance(exc, OAuthError) else exc.code

        def failed() -> None:
            with db.tenant(org_id) as tx:
                fail(tx, taken, kind, str(exc), ref.key, store.OAuthCallbackFailed if isinstance(exc, OAuthError) else type(exc))

        await in_thread(failed)
        if isinstance(exc, OAuthError):
            raise store.OAuthCallbackFailed(taken["connection_id"], exc.error, exc.description or str(exc)) from None
        raise

    def connected() -> None:
        with db.tenant(org_id) as tx:
            store.Connections(tx).save_tokens(org_id, taken["connection_id"], tokens.to_credentials(), encryptor)
            _audit(tx, org_id, taken, "success", None, 303 if taken["return_to"] else 200, ref.key)

    await in_thread(connected)
    result = {"connection_id": taken["connection_id"], "status": "connected"}
    if taken["return_to"]:
        return RedirectResponse(add_params_to_uri(taken["return_to"], list(result.items())), status_code=303)
    return result

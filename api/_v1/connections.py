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

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from fastapi import Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

import runtime
import store
from api._auth import Principal, require
from api._deps import AppConfig, Clock, Db, Encryptor, PlatformDep
from api._lists import ListParams, PageOut, page_out
from api._v1._common import in_thread, tenant_tx
from api._v1._common import router as make_router

router = make_router("connections")

Status = Literal["pending", "connected", "needs_reconnect", "disconnected"]
Target = Literal["api", "sandbox"]
CALLBACK_PATH = "/v1/oauth/callback"
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
    target: Target = Field("api", description="Where its calls go: the connector's API, or the organization's hosted "
                                              "sandbox of the connector (/v1/sandboxes/{connector}).")
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
    auth: AuthIn | None = Field(None, description="The credentials; required unless target is sandbox (then omit it).")
    target: Target = Field(
        "api",
        description="sandbox: call the organization's hosted sandbox of the connector instead of its API (customers "
                    "outside production only; the connector must be imported from a document). Generated credentials "
                    "are stored; send no auth.",
    )


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
    credentials; the auth type must be the connector's (else 422 naming ``/auth/type``).

    With ``target: sandbox`` (and no ``auth``) the connection calls the organization's hosted
    sandbox of the connector, OAuth 2.0 connectors included, with no real account: refused with
    422 ``sandbox_target_refused`` (pointer ``/target``) for a customer in production, and 409
    ``sandbox_unavailable`` for a connector not imported from a document."""
    customer_id = principal.customer()
    with _tx(db, principal) as tx:
        return runtime.create_connection(
            tx, principal.org_id, customer_id, body.connector, name=body.name,
            auth=body.auth.plain() if body.auth is not None else None, encryptor=encryptor, target=body.target,
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
            principal.org_id, page.query(), customer_id=customer or principal.customer_id, connector=connector, status=status,
            hidden_environment=principal.hidden_environment,
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


@router.post("/connections/{connection_id}/test", name="connection.test", response_model=ConnectionTestOut)
async def test_connection(
    connection_id: str, platform: PlatformDep, db: Db, principal: Annotated[Principal, require("connections", "write")]
) -> Any:
    """Make one real authenticated call: the connector's ``test`` action, else its first GET action
    that needs no input. ``status`` is the provider's HTTP status. A 401 or 403 marks the
    connection ``needs_reconnect``; a success marks a ``needs_reconnect`` one ``connected`` again.
    OAuth tokens expiring within a minute are refreshed first (``invalid_grant`` marks the
    connection ``needs_reconnect``). 409 for a pending or disconnected connection."""
    # The request's own transactions: the connection's new status commits with the audit entry.
    transactions = runtime.Transactions(open=partial(tenant_tx, db, named_customer=True), step=in_thread)
    result = await platform.connections.test(principal, connection_id, transactions=transactions)
    return {"ok": result.ok, "status": result.status, "detail": result.detail, "action": result.action,
            "connection": result.connection}


def _callback_url(request: Request, settings: runtime.Config) -> str:
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
    settings: AppConfig,
    principal: Annotated[Principal, require("connections", "write")],
) -> Any:
    """Start connecting the customer named by ``x-fastn-account-tenant-id`` with OAuth 2.0: creates
    a ``pending`` connection and returns the provider's authorize URL (with a one-time ``state`` and
    a PKCE S256 challenge). The organization's OAuth app for the connector supplies the client
    (422 without one). The provider redirects to ``/v1/oauth/callback``."""
    customer_id = principal.customer()
    with _tx(db, principal) as tx:
        return runtime.start_oauth(
            tx, principal.org_id, customer_id, body.connector, name=body.name, callback_url=_callback_url(request, settings),
            return_to=body.redirect_uri, encryptor=encryptor, now=clock(),
        )


@router.get(
    "/oauth/callback",
    name="connection.oauth_callback",
    response_model=OAuthCallbackOut,
    responses={303: {"description": "Connected; the browser goes on to the redirect_uri given at start."}},
)
async def oauth_callback(
    platform: PlatformDep,
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
    done = await platform.connections.oauth_callback(
        state or "", code=code, error=error, error_description=error_description
    )
    result = {"connection_id": done.connection_id, "status": "connected"}
    if done.return_to:
        return RedirectResponse(add_params_to_uri(done.return_to, list(result.items())), status_code=303)
    return result

"""Who is calling, and may they: the request's headers resolved by runtime's access policy.

Two ways in, as the platform documents them:

* API key: ``x-fastn-access-key`` with ``x-fastn-account-id`` (the organization). A key belongs to
  one organization, so the account header picks the tenant and the key is looked up inside it.
* Console user: ``Authorization: Bearer <JWT>`` from the configured OIDC issuer. The
  organization comes from the token's org claim (or ``x-fastn-account-id``), and the user must
  exist there (an invited user is activated on first sign-in).

``x-fastn-account-tenant-id`` names the end customer for customer-scoped operations. A key issued
for one customer is bound to it and cannot name another. The rules themselves (ceilings, bindings,
Test keys' environments) are ``runtime._access``'s, so a tool or an MCP call is checked the same way.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Header, Request

from api._deps import get_platform
from runtime import (
    ACCESS_KEY_HEADER,
    ACCOUNT_HEADER,
    CUSTOMER_CEILING,
    TENANT_HEADER,
    Principal,
    Unauthenticated,
    authenticate_key,
    authenticate_user,
)

__all__ = ["ACCESS_KEY_HEADER", "ACCOUNT_HEADER", "CUSTOMER_CEILING", "TENANT_HEADER", "CurrentPrincipal",
           "Principal", "authenticate", "require"]


def _resolve(
    request: Request, access_key: str | None, account_id: str | None, tenant_id: str | None, authorization: str | None
) -> Principal:
    platform = get_platform(request)
    if access_key:
        return authenticate_key(platform.db, account_id, access_key, tenant_id)
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        if platform.oidc is None:
            raise Unauthenticated("bearer tokens are not accepted: no OIDC issuer is configured")
        claims = platform.oidc.verify(token.strip())
        return authenticate_user(platform.db, claims, account_id=account_id, tenant_id=tenant_id,
                                 org_claim=platform.config.oidc_org_claim)
    raise Unauthenticated(f"send {ACCESS_KEY_HEADER} and {ACCOUNT_HEADER}, or Authorization: Bearer <token>")


async def authenticate(
    request: Request,
    access_key: Annotated[str | None, Header(alias=ACCESS_KEY_HEADER, description="An API key.")] = None,
    account_id: Annotated[str | None, Header(alias=ACCOUNT_HEADER, description="The organization.")] = None,
    tenant_id: Annotated[str | None, Header(alias=TENANT_HEADER, description="The end customer.")] = None,
    authorization: Annotated[str | None, Header(description="Bearer JWT of a console user.")] = None,
) -> Principal:
    """Resolve the caller (API key or OIDC bearer token) and charge the customer's API-call quota.

    Resolved once per request: later calls return the principal kept on ``request.state``.
    """
    existing = getattr(request.state, "principal", None)
    if existing is not None:
        return existing
    principal = await anyio.to_thread.run_sync(_resolve, request, access_key, account_id, tenant_id, authorization)
    request.state.principal = principal
    charge = getattr(request.app.state, "charge_api_call", None)
    if charge is not None and principal.customer_id:
        await anyio.to_thread.run_sync(charge, request, principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require(area: str, action: str) -> Any:
    """A dependency that authenticates and demands ``action`` on ``area``; yields the Principal."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        principal.require(area, action)
        return principal

    dependency.__name__ = f"require_{area}_{action}"
    return Depends(dependency)

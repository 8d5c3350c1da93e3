"""Who is calling, and may they.

Two ways in, as the platform documents them:

* API key: ``x-fastn-access-key`` with ``x-fastn-account-id`` (the organization). A key belongs to
  one organization, so the account header picks the tenant and the key is looked up inside it.
* Console user: ``Authorization: Bearer <JWT>`` from the configured OIDC issuer. The
  organization comes from the token's org claim (or ``x-fastn-account-id``), and the user must
  exist there (an invited user is activated on first sign-in).

``x-fastn-account-tenant-id`` names the end customer for customer-scoped operations. A key issued
for one customer is bound to it and cannot name another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Header, Request

import store
from api._deps import get_database
from api.errors import BadHeader, Forbidden, Unauthenticated

ACCESS_KEY_HEADER = "x-fastn-access-key"
ACCOUNT_HEADER = "x-fastn-account-id"
TENANT_HEADER = "x-fastn-account-tenant-id"


# What a key bound to one customer may ever do, whatever its role: read in that customer's scope,
# connect its accounts and run. Organization-wide changes (settings, people, secrets, specs,
# plans) and org-wide reads (people, secrets, settings) stay with unbound credentials, so a key
# handed to an end customer's widget cannot reach beyond that customer.
CUSTOMER_CEILING: dict[str, tuple[str, ...]] = {
    "connectors": ("read",),
    "customers": ("read",),
    "connections": ("read", "write"),
    "workflows": ("read", "execute"),
    "tools": ("read", "execute"),
    "agents": ("read", "execute"),
    "billing": ("read",),
    "audit": ("read",),
    "keys": ("read",),
}


def customer_ceiling(permissions: dict[str, list[str]]) -> dict[str, list[str]]:
    """``permissions`` cut down to ``CUSTOMER_CEILING``."""
    return {
        area: [action for action in actions if action in CUSTOMER_CEILING.get(area, ())]
        for area, actions in permissions.items()
    }


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: organization, actor, role and (optionally) the customer in scope."""

    org_id: str
    actor_type: str  # "api_key" | "user"
    actor_id: str
    role_id: str
    permissions: dict[str, list[str]] = field(repr=False)
    customer_id: str | None = None
    bound_customer: bool = False  # the credential itself is limited to customer_id
    key_kind: str | None = None

    def can(self, area: str, action: str) -> bool:
        """Whether the role grants ``action`` on ``area``."""
        return action in self.permissions.get(area, ())

    def require(self, area: str, action: str) -> None:
        """Raise ``Forbidden`` unless the role grants ``action`` on ``area``."""
        if not self.can(area, action):
            if self.bound_customer and action not in CUSTOMER_CEILING.get(area, ()):
                raise Forbidden(
                    f"{area}:{action}", f"credentials bound to one customer may not use permission {area}:{action}"
                )
            raise Forbidden(f"{area}:{action}", f"role {self.role_id!r} lacks permission {area}:{action}")

    def customer(self) -> str:
        """The customer in scope; ``BadHeader`` when the request names none."""
        if not self.customer_id:
            raise BadHeader(TENANT_HEADER, "this operation is for one customer: name it in this header")
        return self.customer_id


def _resolve(
    request: Request, access_key: str | None, account_id: str | None, tenant_id: str | None, authorization: str | None
) -> Principal:
    db: store.Database = get_database(request)
    if access_key:
        if not account_id:
            raise Unauthenticated(f"{ACCOUNT_HEADER} is required with {ACCESS_KEY_HEADER}")
        with db.tenant(account_id) as tx:
            key = store.ApiKeys(tx).authenticate(account_id, access_key)
            if key is None:
                raise Unauthenticated("the access key is not valid for this account (unknown or revoked)")
            role = store.Roles(tx).get(account_id, key["role_id"])
            customer_id = _tenant(tx, account_id, tenant_id, key["customer_id"])
        return Principal(
            org_id=account_id,
            actor_type="api_key",
            actor_id=key["id"],
            role_id=role["id"],
            permissions=customer_ceiling(role["permissions"]) if key["customer_id"] else role["permissions"],
            customer_id=customer_id,
            bound_customer=key["customer_id"] is not None,
            key_kind=key["kind"],
        )
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        verifier = request.app.state.oidc
        if verifier is None:
            raise Unauthenticated("bearer tokens are not accepted: no OIDC issuer is configured")
        claims = verifier.verify(token.strip())
        settings = request.app.state.settings
        claimed_org = claims.get(settings.oidc_org_claim)
        if claimed_org is not None and account_id and account_id != claimed_org:
            raise Forbidden(None, f"the token is for another account than {ACCOUNT_HEADER} names")
        org_id = claimed_org or account_id
        if not org_id or not isinstance(org_id, str):
            raise Unauthenticated(f"the token names no organization; send {ACCOUNT_HEADER}")
        with db.tenant(org_id) as tx:
            # An invited user is matched by email only when the issuer vouches for the address;
            # otherwise anyone could claim an invitation by putting its address in their profile.
            email = claims.get("email") if claims.get("email_verified") is True else None
            user = store.Users(tx).by_subject(org_id, claims["sub"], email)
            if user is None or user["status"] == "disabled":
                raise Unauthenticated("this identity is not an active user of the account")
            role = store.Roles(tx).get(org_id, user["role_id"])
            # An end customer's own user is bound to that customer exactly like a key issued for it.
            bound = user.get("customer_id")
            customer_id = _tenant(tx, org_id, tenant_id, bound)
        return Principal(
            org_id=org_id,
            actor_type="user",
            actor_id=user["id"],
            role_id=role["id"],
            permissions=customer_ceiling(role["permissions"]) if bound else role["permissions"],
            customer_id=customer_id,
            bound_customer=bound is not None,
        )
    raise Unauthenticated(f"send {ACCESS_KEY_HEADER} and {ACCOUNT_HEADER}, or Authorization: Bearer <token>")


def _tenant(tx: Any, org_id: str, requested: str | None, bound: str | None) -> str | None:
    if bound is not None:
        if requested and requested != bound:
            raise Forbidden(None, f"these credentials are limited to one customer; {TENANT_HEADER} names another")
        _active(store.Customers(tx).get(org_id, bound))
        return bound
    if requested:
        try:
            customer = store.Customers(tx).get(org_id, requested)
        except store.NotFound:
            raise BadHeader(TENANT_HEADER, f"customer {requested!r} does not exist in this account") from None
        _active(customer)
        return requested
    return None


def _active(customer: dict[str, Any]) -> None:
    # A suspended customer's widget and runs stop; the organization still manages (and can
    # reactivate) it through the customer routes, which name no tenant.
    if customer["status"] == "suspended":
        raise Forbidden(None, f"customer {customer['id']!r} is suspended")


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

"""Who is acting, and may they: the access policy every caller applies (routes, tools, MCP, workers).

Framework-free: a route resolves its headers into a :class:`Principal` with :func:`authenticate_key`
or :func:`authenticate_user`, and a tool or MCP call is checked by the same ``Principal.require``.

Three limits stack on a role's permissions:

* **Customer ceiling.** A key issued for one customer (or an End User bound to one) may only read
  in that customer's scope, connect its accounts and run (``CUSTOMER_CEILING``), whatever its role:
  a key handed to a customer's widget cannot change organization-wide settings.
* **Customer binding.** Such credentials name their customer; naming another is refused.
* **Environment scope.** A Test key (``sk_test_``) reaches only non-production environments:
  customers, deployments, secrets and connections of ``production`` are refused (403), so a key
  used while building can never act for a live customer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import store
from runtime.errors import BadHeader, Forbidden, Unauthenticated

ACCESS_KEY_HEADER = "x-fastn-access-key"
ACCOUNT_HEADER = "x-fastn-account-id"
TENANT_HEADER = "x-fastn-account-tenant-id"

# The environment a Test key may never reach.
PRODUCTION = "production"

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


# What the runtime itself may do when it acts for one customer without a caller (a trigger firing,
# a worker running a queued execution): read and run that customer's workflows, nothing else.
SYSTEM_PERMISSIONS: dict[str, list[str]] = {"workflows": ["read", "execute"]}


def customer_ceiling(permissions: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """``permissions`` cut down to ``CUSTOMER_CEILING``."""
    return {
        area: [action for action in actions if action in CUSTOMER_CEILING.get(area, ())]
        for area, actions in permissions.items()
    }


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: organization, actor, role and (optionally) the customer in scope."""

    org_id: str
    actor_type: str  # "api_key" | "user" | "system"
    actor_id: str
    role_id: str
    permissions: dict[str, list[str]] = field(repr=False)
    customer_id: str | None = None
    bound_customer: bool = False  # the credential itself is limited to customer_id
    key_kind: str | None = None  # "live" | "test" for API keys

    @property
    def test_only(self) -> bool:
        """Whether these credentials are limited to non-production environments (a Test key)."""
        return self.key_kind == "test"

    @property
    def hidden_environment(self) -> str | None:
        """The environment (slug) whose rows lists leave out for these credentials: production for a
        Test key, None otherwise."""
        return PRODUCTION if self.test_only else None

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

    def may_act_for(self, customer_id: str) -> None:
        """Raise ``Forbidden`` when the credentials are bound to a customer other than ``customer_id``."""
        if self.bound_customer and self.customer_id != customer_id:
            raise Forbidden(None, "these credentials are limited to one customer and cannot act for another")

    def reach_environment(self, environment: Mapping[str, Any]) -> None:
        """Raise ``Forbidden`` when a Test key would reach the production environment ``environment``
        (a row of ``store.Environments``)."""
        if self.test_only and environment.get("slug") == PRODUCTION:
            raise Forbidden(None, "a Test key reaches only non-production environments; use a Live key for production")


def system_principal(org_id: str, customer_id: str, actor_id: str) -> Principal:
    """The principal of work the platform does by itself for ``customer_id`` of ``org_id``: a
    trigger firing (``actor_id`` ``trigger:<id>``) or a durable worker running a queued execution
    (``worker:<executor id>``; whoever started the execution was authorized when it was recorded).
    Actor type ``system``, bound to that customer, allowed ``SYSTEM_PERMISSIONS`` only."""
    return Principal(org_id=org_id, actor_type="system", actor_id=actor_id, role_id="system",
                     permissions=SYSTEM_PERMISSIONS, customer_id=customer_id, bound_customer=True)


def tenant_scope(principal: Principal, *, customer: bool = True) -> tuple[str, str | None]:
    """The (organization, customer) a transaction for ``principal`` is bound to: the customer its
    credentials are limited to, with ``customer``; row-level security then enforces the same scope."""
    return principal.org_id, principal.customer_id if (customer and principal.bound_customer) else None


@contextmanager
def tenant_tx(db: store.Database, principal: Principal, *, customer: bool = True) -> Iterator[store.Tx]:
    """A transaction bound to ``tenant_scope(principal, customer=customer)``."""
    org_id, customer_id = tenant_scope(principal, customer=customer)
    with db.tenant(org_id, customer_id) as tx:
        yield tx


def check_environment(tx: store.Tx, principal: Principal, environment_ref: str) -> dict[str, Any]:
    """The environment ``environment_ref`` (id or slug), refused (403) when ``principal`` is a Test
    key and it is production. Raises ``NotFound``."""
    environment = store.Environments(tx).get(principal.org_id, environment_ref)
    principal.reach_environment(environment)
    return environment


def check_customer(tx: store.Tx, principal: Principal, customer: Mapping[str, Any]) -> None:
    """Refuse (403) a suspended customer, and a production one for a Test key."""
    if customer["status"] == "suspended":
        # A suspended customer's widget and runs stop; the organization still manages (and can
        # reactivate) it through the customer routes, which name no tenant.
        raise Forbidden(None, f"customer {customer['id']!r} is suspended")
    if principal.test_only:
        check_environment(tx, principal, customer["environment_id"])


def _tenant(tx: store.Tx, principal: Principal, requested: str | None, bound: str | None) -> str | None:
    if bound is not None:
        if requested and requested != bound:
            raise Forbidden(None, f"these credentials are limited to one customer; {TENANT_HEADER} names another")
        check_customer(tx, principal, store.Customers(tx).get(principal.org_id, bound))
        return bound
    if requested:
        try:
            customer = store.Customers(tx).get(principal.org_id, requested)
        except store.NotFound:
            raise BadHeader(TENANT_HEADER, f"customer {requested!r} does not exist in this account") from None
        check_customer(tx, principal, customer)
        return requested
    return None


def authenticate_key(db: store.Database, account_id: str | None, access_key: str, tenant_id: str | None) -> Principal:
    """The principal of API key ``access_key`` in organization ``account_id``, acting for customer
    ``tenant_id`` (or the customer the key is bound to). Blocking (SQL).

    Raises ``Unauthenticated`` (no account, unknown or revoked key), ``Forbidden`` (another
    customer than the bound one, a suspended customer, a production customer for a Test key) and
    ``BadHeader`` (an unknown customer).
    """
    if not account_id:
        raise Unauthenticated(f"{ACCOUNT_HEADER} is required with {ACCESS_KEY_HEADER}")
    with db.tenant(account_id) as tx:
        key = store.ApiKeys(tx).authenticate(account_id, access_key)
        if key is None:
            raise Unauthenticated("the access key is not valid for this account (unknown or revoked)")
        role = store.Roles(tx).get(account_id, key["role_id"])
        bound = key["customer_id"]
        principal = Principal(
            org_id=account_id, actor_type="api_key", actor_id=key["id"], role_id=role["id"],
            permissions=customer_ceiling(role["permissions"]) if bound else role["permissions"],
            bound_customer=bound is not None, key_kind=key["kind"],
        )
        customer_id = _tenant(tx, principal, tenant_id, bound)
    return _with_customer(principal, customer_id)


def authenticate_user(
    db: store.Database, claims: Mapping[str, Any], *, account_id: str | None, tenant_id: str | None, org_claim: str
) -> Principal:
    """The principal of a console user whose bearer token verified to ``claims``. The organization
    is the ``org_claim`` claim, else ``account_id``; the user must exist there (an invited user is
    matched by a verified email). Blocking (SQL). Raises ``Unauthenticated``, ``Forbidden``,
    ``BadHeader`` as :func:`authenticate_key` does."""
    claimed_org = claims.get(org_claim)
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
        principal = Principal(
            org_id=org_id, actor_type="user", actor_id=user["id"], role_id=role["id"],
            permissions=customer_ceiling(role["permissions"]) if bound else role["permissions"],
            bound_customer=bound is not None,
        )
        customer_id = _tenant(tx, principal, tenant_id, bound)
    return _with_customer(principal, customer_id)


def _with_customer(principal: Principal, customer_id: str | None) -> Principal:
    return replace(principal, customer_id=customer_id)

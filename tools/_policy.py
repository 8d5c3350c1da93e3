"""The policy hook every tool call passes first: the runtime's access policy applied to tools.

:func:`access_policy` refuses (``ToolRefused``, audited by the registry) when

* **role**: the principal's role lacks the tool's permission (``Principal.require``; a Viewer
  may search and read, not write drafts or publish);
* **tenant**: the customer the call names (the tool's ``customer_arg``, else the context's) is
  not a customer of the organization, is another customer than the credentials are bound to,
  is suspended, or is production for a Test key; ids of another organization's rows are refused
  again by the store's scoped queries and row-level security, as ``not_found``;
* **credits**: the organization has no credits left (``ToolContext.credits``);
* **quota**: the customer the call acts for is past a hard API-call limit (one API call is
  charged per tool call that acts for a customer, ``runtime.Quotas``).
"""

from __future__ import annotations

from pydantic import BaseModel

import store
from runtime import Forbidden, check_customer
from tools._context import ToolContext
from tools._registry import Tool
from tools.errors import ToolRefused


def call_customer(ctx: ToolContext, tool: Tool, args: BaseModel) -> str | None:
    """The customer a call acts for: the tool's customer argument when given, else the context's
    customer for a tool that acts for one; None for organization-level tools."""
    if tool.customer_arg is None:
        return None
    return getattr(args, tool.customer_arg, None) or ctx.customer_id


def access_policy(ctx: ToolContext, tool: Tool, args: BaseModel) -> None:
    """Refuse the call (``ToolRefused``) unless role, tenant, credits and quota allow it. Blocking (SQL)."""
    principal = ctx.principal
    area, action = tool.permission
    try:
        principal.require(area, action)
    except Forbidden as exc:
        raise ToolRefused(str(exc), code="forbidden", http_status=403) from None
    customer_id = call_customer(ctx, tool, args)
    if customer_id is not None:
        try:
            principal.may_act_for(customer_id)
            with ctx.platform.db.tenant(principal.org_id) as tx:
                check_customer(tx, principal, store.Customers(tx).get(principal.org_id, customer_id))
        except store.NotFound:
            raise ToolRefused(f"customer {customer_id!r} is not a customer of this organization",
                              pointer=f"/{tool.customer_arg}", code="tenant_scope", http_status=403) from None
        except Forbidden as exc:
            raise ToolRefused(str(exc), pointer=f"/{tool.customer_arg}", code="tenant_scope", http_status=403) from None
    remaining = ctx.credits.remaining(principal.org_id)
    if remaining is not None and remaining <= 0:
        raise ToolRefused("the organization has no agent credits left; add credits to continue",
                          code="credits_exhausted", http_status=402)
    if customer_id is not None:
        try:
            ctx.platform.quotas.charge(principal.org_id, customer_id, "api_calls")
        except store.QuotaExceeded as exc:
            raise ToolRefused(str(exc), code="quota_exceeded", http_status=429) from None

"""What a tool call runs with: the per-run dependencies a graph hands every tool (STYLE 7).

:class:`ToolContext` carries the runtime :class:`~runtime.Platform`, the acting
:class:`~runtime.Principal`, the (test) customer and environment the work is for, the thread, and
the seams the policy hook and the tools read: where each connector's sandbox answers
(:class:`Sandboxes`), how many credits the organization has left (:class:`Credits`), what the
builder approved (:class:`Approvals`) and where refusals are audited (:class:`AuditHook`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import store
from runtime import Platform, Principal


class Sandboxes(Protocol):
    """Where the sandbox of an organization's connector answers (its base URL), or None."""

    def base_url(self, org_id: str, connector: str) -> str | None:
        """The sandbox base URL (origin plus the API's base path) of ``connector`` (a key) for ``org_id``."""
        ...


class Credits(Protocol):
    """The organization's remaining agent credits (the policy hook refuses a call at zero).

    The platform's implementation is ``runtime.AgentCredits`` (``platform.credits``): the
    organization's allowance this period minus the credits its agents' model calls cost, from the
    usage ledger. :class:`CreditLimit` reads a fixed allowance per organization (tests).
    """

    def remaining(self, org_id: str) -> float | None:
        """Credits left for ``org_id``; None for no limit."""
        ...


class AuditHook(Protocol):
    """Records one tool call's outcome (refusals always; successful writes too). ``detail`` holds ids
    and codes only, never a value from the arguments that could be a secret."""

    def __call__(self, ctx: "ToolContext", tool: str, *, outcome: str, error_code: str | None = None,
                 status: int | None = None, detail: Mapping[str, Any] | None = None) -> None: ...


@dataclass(frozen=True)
class SandboxDirectory:
    """Sandboxes by connector key, the same for every organization (tests, a local setup)."""

    urls: Mapping[str, str] = field(default_factory=dict)

    def base_url(self, org_id: str, connector: str) -> str | None:
        """The URL registered for ``connector``, or None."""
        return self.urls.get(connector)


@dataclass(frozen=True)
class CreditLimit:
    """A fixed allowance of credits per organization (``default`` for the others; None: no limit),
    less what ``spent`` reports."""

    limits: Mapping[str, float] = field(default_factory=dict)
    default: float | None = None
    spent: Mapping[str, float] = field(default_factory=dict)

    def remaining(self, org_id: str) -> float | None:
        """The organization's limit minus what it spent; None without a limit."""
        limit = self.limits.get(org_id, self.default)
        return None if limit is None else limit - self.spent.get(org_id, 0.0)


class Approvals:
    """What the builder approved for publishing in this run, as ``(kind, key)`` pairs.

    A graph grants an approval when the builder answers its review interrupt with approve; the
    publish tool refuses anything not granted (unless the organization auto-approves)."""

    def __init__(self) -> None:
        self._granted: set[tuple[str, str]] = set()

    def grant(self, kind: str, key: str) -> None:
        """Approve publishing ``kind`` (``workflow`` or ``connector``) ``key``."""
        self._granted.add((kind, key))

    def revoke(self, kind: str, key: str) -> None:
        """Withdraw an approval (a rejected review)."""
        self._granted.discard((kind, key))

    def granted(self, kind: str, key: str) -> bool:
        """Whether ``kind`` ``key`` was approved."""
        return (kind, key) in self._granted


def store_audit(ctx: "ToolContext", tool: str, *, outcome: str, error_code: str | None = None,
                status: int | None = None, detail: Mapping[str, Any] | None = None) -> None:
    """The default :class:`AuditHook`: one entry in the organization's audit log (action
    ``tool.<name>``, resource type ``tool``), in its own transaction. Blocking (SQL)."""
    principal = ctx.principal
    with ctx.platform.db.tenant(principal.org_id) as tx:
        store.AuditLog(tx).record(
            principal.org_id, actor_type=principal.actor_type, actor_id=principal.actor_id, action=f"tool.{tool}",
            resource_type="tool", resource_id=tool, customer_id=ctx.customer_id, outcome=outcome,
            error_code=error_code, status=status,
            detail={"thread_id": ctx.thread_id, **(detail or {})},
        )


@dataclass(frozen=True)
class ToolContext:
    """The dependencies of one agent run's tool calls.

    ``customer_id`` is the customer dry runs and connection lists act for (a test customer while
    building); ``documents`` a local folder of OpenAPI documents the discovery tool searches;
    ``sandboxes``, ``credits``, ``approvals`` and ``audit`` are the seams above.
    """

    platform: Platform
    principal: Principal
    customer_id: str | None = None
    environment: str | None = None
    thread_id: str | None = None
    sandboxes: Sandboxes = field(default_factory=SandboxDirectory)
    credits: Credits = field(default_factory=CreditLimit)
    approvals: Approvals = field(default_factory=Approvals)
    audit: AuditHook = store_audit
    documents: Path | None = None

    @property
    def org_id(self) -> str:
        """The organization every call is scoped to."""
        return self.principal.org_id

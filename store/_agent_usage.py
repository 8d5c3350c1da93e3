"""Agent usage: a ledger of the chat model calls agents make, and the credits they cost.

Migration m012 (``AGENT_USAGE_SCHEMA``) adds the ``agent_usage`` table, one row per model call:
the organization, the thread and run it belongs to, the (test) customer the run acted for (NULL
for organization-level work), the model and its provider, input and output tokens, how they were
counted (``reported`` by the provider, ``offline``, or ``missing``: counted as 0), the credits
they cost and when. Rows are only ever added; billing sums them per run, thread, customer,
organization and period.

Credits are priced by the caller (``runtime.AgentCredits`` holds the rates per model); the store
keeps the price each call was charged, so a later change of rates does not rewrite history.

An organization's allowance of credits per period (a calendar month, UTC) comes from its plan
(``AGENT_CREDIT_PLANS``, beside the per-customer quotas of ``store.PLANS``) unless the
organization has its own (``organizations.agent_credits``, added by m012; NULL: the plan's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from store._ids import new_id
from store._paging import Filters, ListQuery, Page, add_time_range, fetch_page
from store._quotas import DEFAULT_PLAN
from store._schema import APP_ROLE
from store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from store._database import Tx

_ORG = "current_setting('app.org_id', true)"
_CUSTOMER = "coalesce(current_setting('app.customer_id', true), '')"

# Agent credits each plan allows an organization per period (all its threads and runs together).
# One credit is priced like a thousandth of a US dollar of a hosted model's tokens (see
# runtime.DEFAULT_CREDIT_RATES); Free covers a handful of builds with a hosted model a month, and
# the offline model costs nothing on any plan.
AGENT_CREDIT_PLANS: dict[str, float] = {"free": 1_000.0, "pro": 100_000.0, "enterprise": 2_000_000.0}
AGENT_CREDIT_PERIOD = "month"
# Largest allowance an organization may be given (numeric(18, 6) holds it with room).
MAX_AGENT_CREDITS = 1_000_000_000_000.0
COUNTED = ("reported", "offline", "missing")
UsageGroup = Literal["run", "thread"]
USAGE_GROUPS: tuple[UsageGroup, ...] = ("run", "thread")

AGENT_USAGE_SCHEMA = f"""
ALTER TABLE organizations ADD COLUMN agent_credits numeric(18, 6)
    CHECK (agent_credits IS NULL OR agent_credits >= 0);

CREATE TABLE agent_usage (
    org_id         text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id             text NOT NULL,
    run_id         text NOT NULL,
    thread_id      text,
    customer_id    text,
    model          text NOT NULL,
    provider       text NOT NULL,
    counted        text NOT NULL CHECK (counted IN ('reported', 'offline', 'missing')),
    input_tokens   bigint NOT NULL CHECK (input_tokens >= 0),
    output_tokens  bigint NOT NULL CHECK (output_tokens >= 0),
    credits        numeric(18, 6) NOT NULL CHECK (credits >= 0),
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
-- Billing sums an organization's period, a thread, a run and a customer's period.
CREATE INDEX agent_usage_period ON agent_usage (org_id, at);
CREATE INDEX agent_usage_thread ON agent_usage (org_id, thread_id, at);
CREATE INDEX agent_usage_run ON agent_usage (org_id, run_id);
CREATE INDEX agent_usage_customer ON agent_usage (org_id, customer_id, at);
ALTER TABLE agent_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON agent_usage USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
-- A transaction bound to a customer sees that customer's runs only (not the organization's own).
CREATE POLICY customer ON agent_usage AS RESTRICTIVE
    USING ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER}) WITH CHECK ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER});
-- A ledger: the app adds rows and reads them; it never rewrites what a call cost.
GRANT SELECT, INSERT ON agent_usage TO {APP_ROLE};
"""

_TOTALS = (
    "count(*)::bigint AS calls, coalesce(sum(input_tokens), 0)::bigint AS input_tokens,"
    " coalesce(sum(output_tokens), 0)::bigint AS output_tokens, coalesce(sum(credits), 0)::float8 AS credits"
)


def period_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The credit period (calendar month, UTC) containing ``now`` (aware): its start and its end."""
    if now.tzinfo is None:
        raise ValueError("credit periods need an aware datetime")
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def plan_agent_credits(plan: str) -> float:
    """Credits ``plan`` allows per period; a plan this code does not know gets the Free plan's."""
    return AGENT_CREDIT_PLANS.get(plan, AGENT_CREDIT_PLANS[DEFAULT_PLAN])


def check_agent_credits(value: Any, field: str = "agent_credits") -> float | None:
    """Validate an organization's own allowance: a number from 0 to ``MAX_AGENT_CREDITS``, or None
    (the plan's). Raises ``InvalidInput`` naming ``field``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_AGENT_CREDITS:
        raise InvalidInput("billing", field, f"must be a number of credits from 0 to {MAX_AGENT_CREDITS:.0f}, or null for the plan's")
    return float(value)


@dataclass(frozen=True)
class UsageTotals:
    """Model calls, tokens in and out, and credits spent, summed over some ledger rows."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    credits: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "total_tokens": self.total_tokens, "credits": round(self.credits, 6)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UsageTotals:
        return cls(int(row["calls"]), int(row["input_tokens"]), int(row["output_tokens"]), float(row["credits"]))


@dataclass(frozen=True)
class CreditSummary:
    """An organization's credits in one period: its allowance (and where it comes from), what the
    period's model calls spent, and what is left (never below 0 in ``remaining``; ``balance`` may be)."""

    plan: str
    allowance: float
    source: Literal["plan", "organization"]
    period_start: datetime
    period_end: datetime
    used: UsageTotals

    @property
    def balance(self) -> float:
        """Allowance minus credits spent (negative when the last call overshot)."""
        return self.allowance - self.used.credits

    @property
    def remaining(self) -> float:
        return max(self.balance, 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan, "period": AGENT_CREDIT_PERIOD, "period_start": self.period_start,
            "reset_at": self.period_end, "allowance": self.allowance, "source": self.source,
            "used": round(self.used.credits, 6), "remaining": round(self.remaining, 6), **{
                k: v for k, v in self.used.as_dict().items() if k != "credits"},
        }


class AgentUsage:
    """The agent usage ledger and credit allowance of organizations, in one transaction."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def record(
        self,
        org_id: str,
        *,
        run_id: str,
        model: str,
        provider: str,
        input_tokens: int,
        output_tokens: int,
        credits: float,
        counted: str = "reported",
        thread_id: str | None = None,
        customer_id: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Add one model call to the ledger; returns the row. Raises ``InvalidInput`` for negative
        figures or an unknown ``counted``."""
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens), ("credits", credits)):
            if value < 0:
                raise InvalidInput("agent_usage", name, "must not be negative")
        if counted not in COUNTED:
            raise InvalidInput("agent_usage", "counted", f"must be one of {', '.join(COUNTED)}")
        if not run_id:
            raise InvalidInput("agent_usage", "run_id", "is required")
        return self.tx.execute(
            "INSERT INTO agent_usage (org_id, id, run_id, thread_id, customer_id, model, provider, counted,"
            " input_tokens, output_tokens, credits, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " coalesce(%s, now())) RETURNING *",
            (org_id, new_id("use"), run_id, thread_id, customer_id, model, provider, counted, int(input_tokens),
             int(output_tokens), credits, at),
        ).fetchone()

    def totals(
        self,
        org_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        run_id: str | None = None,
        thread_id: str | None = None,
        customer_id: str | None = None,
    ) -> UsageTotals:
        """The sum of the organization's rows in ``[start, end)`` (either open), of one run, thread
        or customer when named."""
        filters = self._filters(org_id, start, end, run_id=run_id, thread_id=thread_id, customer_id=customer_id)
        row = self.tx.execute(f"SELECT {_TOTALS} FROM agent_usage WHERE {filters.where()}", filters.params).fetchone()
        return UsageTotals.from_row(row)

    def by_customer(self, org_id: str, customer_ids: Sequence[str], start: datetime, end: datetime) -> dict[str, UsageTotals]:
        """Each customer's totals in ``[start, end)`` (customers without a call are left out)."""
        rows = self.tx.execute(
            f"SELECT customer_id, {_TOTALS} FROM agent_usage WHERE org_id = %s AND customer_id = ANY(%s)"
            " AND at >= %s AND at < %s GROUP BY customer_id",
            (org_id, list(customer_ids), start, end),
        ).fetchall()
        return {row["customer_id"]: UsageTotals.from_row(row) for row in rows}

    # --- allowance ---

    def allowance(self, org_id: str) -> tuple[str, float, Literal["plan", "organization"]]:
        """The organization's plan, its allowance per period, and where the allowance comes from."""
        row = self.tx.execute("SELECT plan, agent_credits FROM organizations WHERE id = %s", (org_id,)).fetchone()
        if row is None:
            raise NotFound("organization", org_id)
        if row["agent_credits"] is not None:
            return row["plan"], float(row["agent_credits"]), "organization"
        return row["plan"], plan_agent_credits(row["plan"]), "plan"

    def set_allowance(self, org_id: str, credits: Any) -> float | None:
        """Give the organization its own allowance per period (None: back to the plan's)."""
        checked = check_agent_credits(credits)
        row = self.tx.execute(
            "UPDATE organizations SET agent_credits = %s, updated_at = now() WHERE id = %s RETURNING agent_credits",
            (checked, org_id),
        ).fetchone()
        if row is None:
            raise NotFound("organization", org_id)
        return checked

    def summary(self, org_id: str, now: datetime) -> CreditSummary:
        """The organization's credits in the period containing ``now``."""
        plan, allowance, source = self.allowance(org_id)
        start, end = period_bounds(now)
        return CreditSummary(plan, allowance, source, start, end, self.totals(org_id, start=start, end=end))

    # --- lists ---

    def page(
        self,
        org_id: str,
        query: ListQuery,
        *,
        group: UsageGroup = "run",
        run_id: str | None = None,
        thread_id: str | None = None,
        customer_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page:
        """A page of usage summed per run (``group="run"``: run_id, thread_id, customer_id) or per
        thread (``thread``: thread_id; runs without a thread are left out), each with its models,
        totals and first and last call (sort: last_at, first_at, credits). Filters: one run,
        thread or customer; a time range of the calls."""
        if group not in USAGE_GROUPS:
            raise InvalidInput("agent_usage", "group", f"must be one of {', '.join(USAGE_GROUPS)}")
        inner = self._filters(org_id, start, end, run_id=run_id, thread_id=thread_id, customer_id=customer_id)
        if group == "run":
            key, columns = "run_id", "run_id AS id, run_id, max(thread_id) AS thread_id, max(customer_id) AS customer_id"
        else:
            inner.add("thread_id IS NOT NULL")
            key, columns = "thread_id", "thread_id AS id, thread_id, count(DISTINCT run_id)::bigint AS runs"
        table = (
            f"(SELECT {columns}, array_agg(DISTINCT provider || ':' || model) AS models, {_TOTALS},"
            f" min(at) AS first_at, max(at) AS last_at FROM agent_usage WHERE {inner.where()} GROUP BY {key}) AS usage"
        )
        outer = Filters(params=dict(inner.params))
        return fetch_page(self.tx, "agent_usage", table, query,
                          {"last_at": "last_at", "first_at": "first_at", "credits": "credits"}, outer)

    @staticmethod
    def _filters(org_id: str, start: datetime | None, end: datetime | None, *, run_id: str | None,
                 thread_id: str | None, customer_id: str | None) -> Filters:
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if run_id is not None:
            filters.add("run_id = %(run)s", run=run_id)
        if thread_id is not None:
            filters.add("thread_id = %(thread)s", thread=thread_id)
        if customer_id is not None:
            filters.add("customer_id = %(customer)s", customer=customer_id)
        add_time_range(filters, "agent_usage", "at", start, end)
        return filters

"""Quotas: plans, customer tiers and overrides, and the usage counters that enforce them.

Four dimensions, each counted per customer in a fixed UTC window: events and API calls, per
minute and per day. A limit is an entry ``{"limit": int | None, "mode": "hard" | "warn"}``
(``None`` = unlimited). The effective entry of a dimension comes from the highest of three
layers that has one:

1. the customer's ``quota_overrides`` (``customers.quota_overrides``),
2. the customer's tier: the ``quota_tiers`` row whose name is ``customers.tier`` (a tier name with
   no row, such as the default ``"free"``, adds nothing),
3. the organization's plan (``organizations.plan``, one of ``PLANS``).

A tier or an override names only the dimensions it changes; each entry it has is complete.

Counting is a check-and-increment in SQL: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE count <
limit``, so concurrent requests serialize on the counter row and cannot overshoot. Both windows
of a charge change inside one savepoint; when a hard limit refuses, the savepoint is rolled back
and neither window counts the refused call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from store._ids import new_id
from store._orgs import taken
from store._paging import Filters, ListQuery, Page, fetch_page
from store.errors import InvalidInput, NotFound, OutsideTenantScope, QuotaExceeded

if TYPE_CHECKING:
    from store._database import Database
    from store._database import Tx

# What is counted (the prefix of a dimension) and the windows it is counted in.
KINDS = ("events", "api_calls")
WINDOWS = {"minute": timedelta(minutes=1), "day": timedelta(days=1)}
DIMENSIONS = ("events_per_day", "events_per_minute", "api_calls_per_day", "api_calls_per_minute")
ENFORCEMENT_MODES = ("hard", "warn")
# Counters are Postgres integers.
MAX_QUOTA_LIMIT = 2_000_000_000
TIER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def _plan(events_day: int, events_minute: int, calls_day: int, calls_minute: int, mode: str) -> dict[str, dict[str, Any]]:
    limits = dict(zip(DIMENSIONS, (events_day, events_minute, calls_day, calls_minute), strict=True))
    return {dimension: {"limit": limit, "mode": mode} for dimension, limit in limits.items()}


# Per-customer limits of each plan. Enterprise customers are never cut off: their limits only warn.
PLANS: dict[str, dict[str, dict[str, Any]]] = {
    "free": _plan(500, 10, 1_000, 20, "hard"),
    "pro": _plan(50_000, 500, 100_000, 1_000, "hard"),
    "enterprise": _plan(1_000_000, 5_000, 5_000_000, 20_000, "warn"),
}
DEFAULT_PLAN = "free"


def dimension_of(kind: str, window: str) -> str:
    """The dimension counting ``kind`` (``events``/``api_calls``) per ``window`` (``minute``/``day``)."""
    return f"{kind}_per_{window}"


def window_of(dimension: str) -> str:
    """``minute`` or ``day``: the window ``dimension`` is counted in."""
    return dimension.rsplit("_per_", 1)[1]


def window_bounds(dimension: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC window of ``dimension`` that contains ``now``: its start and its end (the reset time).

    Minute windows start on the minute; day windows at UTC midnight. ``now`` must be aware.
    """
    if now.tzinfo is None:
        raise ValueError("quota windows need an aware datetime")
    now = now.astimezone(UTC)
    window = window_of(dimension)
    if window == "minute":
        start = now.replace(second=0, microsecond=0)
    else:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + WINDOWS[window]


def plan_limits(plan: str) -> dict[str, dict[str, Any]]:
    """The limits of ``plan``. A plan this code does not know (set outside the API) gets the Free
    plan's limits, the most restrictive, rather than none."""
    return {dimension: dict(entry) for dimension, entry in PLANS.get(plan, PLANS[DEFAULT_PLAN]).items()}


def check_limits(resource: str, field: str, value: Any) -> dict[str, dict[str, Any]]:
    """Validate a tier's limits or a customer's overrides: ``{dimension: {"limit", "mode"}}`` for
    any of the dimensions.

    Returns the normalized map. Raises ``InvalidInput`` whose field names the dimension, e.g.
    ``limits/events_per_day/limit``.
    """
    if not isinstance(value, dict):
        raise InvalidInput(resource, field, 'must be an object of dimension -> {"limit": ..., "mode": ...}')
    normalized: dict[str, dict[str, Any]] = {}
    for dimension, entry in value.items():
        where = f"{field}/{dimension}"
        if dimension not in DIMENSIONS:
            raise InvalidInput(resource, where, f"is not a quota dimension; dimensions are {', '.join(DIMENSIONS)}")
        if not isinstance(entry, dict):
            raise InvalidInput(resource, where, 'must be an object {"limit": ..., "mode": ...}')
        unknown = set(entry) - {"limit", "mode"}
        if unknown:
            raise InvalidInput(resource, f"{where}/{sorted(unknown)[0]}", 'is not a limit field; use "limit" and "mode"')
        if "limit" not in entry:
            raise InvalidInput(resource, f"{where}/limit", "is required (an integer, or null for unlimited)")
        limit = entry["limit"]
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_QUOTA_LIMIT):
            raise InvalidInput(resource, f"{where}/limit", f"must be an integer from 0 to {MAX_QUOTA_LIMIT}, or null for unlimited")
        if entry.get("mode") not in ENFORCEMENT_MODES:
            raise InvalidInput(resource, f"{where}/mode", f"must be one of {', '.join(ENFORCEMENT_MODES)}")
        normalized[dimension] = {"limit": limit, "mode": entry["mode"]}
    return normalized


def effective_limits(
    plan: str, tier_limits: dict[str, Any] | None, overrides: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Merge the three layers into ``{dimension: {"limit", "mode", "source"}}``; ``source`` is the
    layer (``plan``, ``tier`` or ``override``) the entry came from."""
    result = {dimension: {**entry, "source": "plan"} for dimension, entry in plan_limits(plan).items()}
    for source, layer in (("tier", tier_limits or {}), ("override", overrides or {})):
        for dimension, entry in layer.items():
            # Rows are validated on write; an entry edited into a bad shape outside the API is skipped.
            if dimension in result and _well_formed(entry):
                result[dimension] = {"limit": entry["limit"], "mode": entry["mode"], "source": source}
    return result


def _well_formed(entry: Any) -> bool:
    if not isinstance(entry, dict) or entry.get("mode") not in ENFORCEMENT_MODES or "limit" not in entry:
        return False
    limit = entry["limit"]
    return limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0)


@dataclass(frozen=True)
class WindowUsage:
    """One dimension of a customer at one moment: the count of the current window and its limit."""

    dimension: str
    limit: int | None
    mode: str
    source: str
    window_start: datetime
    reset_at: datetime
    count: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.count, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "limit": self.limit,
            "mode": self.mode,
            "source": self.source,
            "window": window_of(self.dimension),
            "window_start": self.window_start,
            "reset_at": self.reset_at,
            "count": self.count,
            "remaining": self.remaining,
        }


@dataclass(frozen=True)
class Charge:
    """What a counted charge did: the windows after counting, and the warn-mode dimensions it exceeded."""

    usage: tuple[WindowUsage, ...]
    warnings: tuple[str, ...]


_CUSTOMERS_QUERY = """
SELECT c.id, c.name, c.tier, c.quota_overrides, o.plan, t.limits AS tier_limits
FROM customers c
JOIN organizations o ON o.id = c.org_id
LEFT JOIN quota_tiers t ON t.org_id = c.org_id AND t.name = c.tier
WHERE c.org_id = %s AND c.id = ANY(%s)
"""

# The counter row is locked by whichever request changes it first; a concurrent request waits and
# then re-checks the condition against the committed count.
_INCREMENT = """
INSERT INTO quota_usage AS u (org_id, customer_id, dimension, window_start, count)
VALUES (%(org)s, %(customer)s, %(dimension)s, %(start)s, 1)
ON CONFLICT (org_id, customer_id, dimension, window_start)
DO UPDATE SET count = u.count + 1
WHERE %(ceiling)s::integer IS NULL OR u.count < %(ceiling)s::integer
RETURNING count
"""


class Quotas:
    """Plans, tiers, overrides and usage of one organization's customers."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    # --- plan ---

    def plan(self, org_id: str) -> str:
        row = self.tx.execute("SELECT plan FROM organizations WHERE id = %s", (org_id,)).fetchone()
        if row is None:
            raise NotFound("organization", org_id)
        return row["plan"]

    def set_plan(self, org_id: str, plan: str) -> str:
        """Move the organization to ``plan`` (one of ``PLANS``); returns the plan."""
        if plan not in PLANS:
            raise InvalidInput("billing", "plan", f"must be one of {', '.join(PLANS)}")
        row = self.tx.execute(
            "UPDATE organizations SET plan = %s, updated_at = now() WHERE id = %s RETURNING plan", (plan, org_id)
        ).fetchone()
        if row is None:
            raise NotFound("organization", org_id)
        return row["plan"]

    def org_usage(self, org_id: str, now: datetime) -> dict[str, dict[str, Any]]:
        """The plan's limits with the organization-wide count of each dimension's current window
        (all customers together): ``{dimension: {limit, mode, window, window_start, reset_at, count}}``."""
        limits = plan_limits(self.plan(org_id))
        bounds = {dimension: window_bounds(dimension, now) for dimension in DIMENSIONS}
        rows = self.tx.execute(
            "SELECT dimension, sum(count)::bigint AS count FROM quota_usage WHERE org_id = %s AND ("
            + " OR ".join("(dimension = %s AND window_start = %s)" for _ in DIMENSIONS)
            + ") GROUP BY dimension",
            (org_id, *[value for dimension in DIMENSIONS for value in (dimension, bounds[dimension][0])]),
        ).fetchall()
        counts = {row["dimension"]: int(row["count"]) for row in rows}
        return {
            dimension: {
                **limits[dimension],
                "window": window_of(dimension),
                "window_start": bounds[dimension][0],
                "reset_at": bounds[dimension][1],
                "count": counts.get(dimension, 0),
            }
            for dimension in DIMENSIONS
        }

    # --- tiers ---

    def create_tier(self, org_id: str, name: str, limits: Any) -> dict[str, Any]:
        """Create tier ``name`` with ``limits`` (see ``check_limits``); ``Conflict`` if the name is taken."""
        checked = check_limits("quota_tier", "limits", limits)
        try:
            return self.tx.execute(
                "INSERT INTO quota_tiers (org_id, id, name, limits) VALUES (%s, %s, %s, %s) RETURNING *",
                (org_id, new_id("tier"), name, Jsonb(checked)),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("quota_tier", "name", name) from exc

    def get_tier(self, org_id: str, tier_id: str) -> dict[str, Any]:
        row = self.tx.execute(
            "SELECT * FROM quota_tiers WHERE org_id = %s AND id = %s", (org_id, tier_id)
        ).fetchone()
        if row is None:
            raise NotFound("quota_tier", tier_id)
        return row

    def list_tiers(self, org_id: str, query: ListQuery, *, name: str | None = None) -> Page:
        """Tiers (sort: created_at, name); ``name`` filters by exact name."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if name:
            filters.add("name = %(name)s", name=name)
        return fetch_page(self.tx, "quota_tier", "quota_tiers", query, {"created_at": "created_at", "name": "name"}, filters)

    def update_tier(self, org_id: str, tier_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Rename a tier and/or replace its ``limits``. Customers on the tier follow a rename.

        Raises ``OutsideTenantScope`` for a rename in a transaction limited to one customer: it
        would move only that customer, and the tier's other customers would fall off it.
        """
        unknown = set(changes) - {"name", "limits"}
        if unknown:
            raise InvalidInput("quota_tier", sorted(unknown)[0], "cannot be changed")
        tier = self.get_tier(org_id, tier_id)
        name = changes.get("name", tier["name"])
        if name != tier["name"]:
            scoped = self.tx.execute("SELECT current_setting('app.customer_id', true) AS customer").fetchone()
            if scoped["customer"]:
                raise OutsideTenantScope("customers")
        limits = check_limits("quota_tier", "limits", changes["limits"]) if "limits" in changes else tier["limits"]
        try:
            row = self.tx.execute(
                "UPDATE quota_tiers SET name = %s, limits = %s, updated_at = now() WHERE org_id = %s AND id = %s RETURNING *",
                (name, Jsonb(limits), org_id, tier_id),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("quota_tier", "name", name) from exc
        if name != tier["name"]:
            self.tx.execute(
                "UPDATE customers SET tier = %s, updated_at = now() WHERE org_id = %s AND tier = %s",
                (name, org_id, tier["name"]),
            )
        return row

    def delete_tier(self, org_id: str, tier_id: str) -> None:
        """Delete a tier. Its customers fall back to the plan's limits (and their overrides)."""
        deleted = self.tx.execute(
            "DELETE FROM quota_tiers WHERE org_id = %s AND id = %s RETURNING id", (org_id, tier_id)
        ).fetchone()
        if deleted is None:
            raise NotFound("quota_tier", tier_id)

    def tier_customers(self, org_id: str, names: list[str]) -> dict[str, int]:
        """How many customers are on each tier of ``names``."""
        rows = self.tx.execute(
            "SELECT tier, count(*) AS n FROM customers WHERE org_id = %s AND tier = ANY(%s) GROUP BY tier", (org_id, names)
        ).fetchall()
        return {row["tier"]: int(row["n"]) for row in rows}

    # --- customers ---

    def set_overrides(self, org_id: str, customer_id: str, overrides: Any) -> dict[str, Any]:
        """Replace the customer's overrides (``{}`` removes them all); returns the customer row."""
        checked = check_limits("customer", "quota_overrides", overrides)
        row = self.tx.execute(
            "UPDATE customers SET quota_overrides = %s, updated_at = now() WHERE org_id = %s AND id = %s RETURNING *",
            (Jsonb(checked), org_id, customer_id),
        ).fetchone()
        if row is None:
            raise NotFound("customer", customer_id)
        return row

    def limits(self, org_id: str, customer_id: str) -> dict[str, dict[str, Any]]:
        """The customer's effective limits (``effective_limits``); ``NotFound`` for an unknown customer."""
        row = self._customers(org_id, [customer_id])[customer_id]
        return effective_limits(row["plan"], row["tier_limits"], row["quota_overrides"])

    def _customers(self, org_id: str, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = {row["id"]: row for row in self.tx.execute(_CUSTOMERS_QUERY, (org_id, customer_ids)).fetchall()}
        for customer_id in customer_ids:
            if customer_id not in rows:
                raise NotFound("customer", customer_id)
        return rows

    def usage(self, org_id: str, customer_ids: list[str], now: datetime) -> list[dict[str, Any]]:
        """The quotas of each customer at ``now``, in the order given: ``{customer_id, name, tier,
        plan, overrides, quotas}`` where ``quotas`` maps every dimension to its current window
        (``WindowUsage.as_dict()``). ``NotFound`` names a customer that is not visible."""
        if not customer_ids:
            return []
        customers = self._customers(org_id, customer_ids)
        bounds = {dimension: window_bounds(dimension, now) for dimension in DIMENSIONS}
        rows = self.tx.execute(
            "SELECT customer_id, dimension, count FROM quota_usage WHERE org_id = %s AND customer_id = ANY(%s) AND ("
            + " OR ".join("(dimension = %s AND window_start = %s)" for _ in DIMENSIONS)
            + ")",
            (org_id, customer_ids, *[value for dimension in DIMENSIONS for value in (dimension, bounds[dimension][0])]),
        ).fetchall()
        counts = {(row["customer_id"], row["dimension"]): row["count"] for row in rows}
        result = []
        for customer_id in customer_ids:
            row = customers[customer_id]
            limits = effective_limits(row["plan"], row["tier_limits"], row["quota_overrides"])
            quotas = {
                dimension: WindowUsage(
                    dimension=dimension,
                    limit=limits[dimension]["limit"],
                    mode=limits[dimension]["mode"],
                    source=limits[dimension]["source"],
                    window_start=bounds[dimension][0],
                    reset_at=bounds[dimension][1],
                    count=counts.get((customer_id, dimension), 0),
                ).as_dict()
                for dimension in DIMENSIONS
            }
            result.append(
                {
                    "customer_id": customer_id,
                    "name": row["name"],
                    "tier": row["tier"],
                    "plan": row["plan"],
                    "overrides": row["quota_overrides"],
                    "quotas": quotas,
                }
            )
        return result

    def usage_page(
        self, org_id: str, query: ListQuery, now: datetime, *, customer_id: str | None = None, tier: str | None = None
    ) -> Page:
        """A page of customers' quotas (items as in ``usage``); sort: created_at, name, id;
        filters: one customer, a tier."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if customer_id:
            filters.add("id = %(customer)s", customer=customer_id)
        if tier:
            filters.add("tier = %(tier)s", tier=tier)
        page = fetch_page(
            self.tx, "customer", "customers", query, {"created_at": "created_at", "name": "name", "id": "id"}, filters,
            columns="id",
        )
        return Page(items=self.usage(org_id, [row["id"] for row in page.items], now), next_cursor=page.next_cursor)

    def charge(self, org_id: str, customer_id: str, kind: str, now: datetime) -> Charge:
        """Count one ``kind`` (``events`` or ``api_calls``) for the customer in its day and minute windows.

        Raises ``QuotaExceeded`` (naming the dimension, its limit and when it resets) when a hard
        limit is reached; then neither window counts. When both would refuse, the day is named:
        waiting for the next minute would not help. A warn-mode limit counts and lets through;
        the returned ``Charge.warnings`` names the dimensions now over their limit.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        limits = self.limits(org_id, customer_id)
        usage: list[WindowUsage] = []
        warnings: list[str] = []
        # A savepoint: an exception raised in it (the refusal) undoes both windows' increments,
        # even when the caller's transaction goes on.
        with self.tx.transaction():
            # Always day before minute: one lock order for every request, so no deadlocks.
            for window in ("day", "minute"):
                dimension = dimension_of(kind, window)
                entry = limits[dimension]
                start, reset_at = window_bounds(dimension, now)
                hard = entry["mode"] == "hard" and entry["limit"] is not None
                if hard and entry["limit"] == 0:
                    raise QuotaExceeded(dimension, 0, reset_at, now)
                row = self.tx.execute(
                    _INCREMENT,
                    {
                        "org": org_id, "customer": customer_id, "dimension": dimension, "start": start,
                        "ceiling": entry["limit"] if hard else None,
                    },
                ).fetchone()
                if row is None:
                    raise QuotaExceeded(dimension, entry["limit"], reset_at, now)
                count = row["count"]
                if window == "minute" and count == 1:
                    # A new minute: the customer's earlier minute counters are no longer needed.
                    self.tx.execute(
                        "DELETE FROM quota_usage"
                        " WHERE org_id = %s AND customer_id = %s AND dimension = %s AND window_start < %s",
                        (org_id, customer_id, dimension, start),
                    )
                if entry["limit"] is not None and count > entry["limit"]:
                    warnings.append(dimension)
                usage.append(WindowUsage(dimension, entry["limit"], entry["mode"], entry["source"], start, reset_at, count))
        return Charge(tuple(usage), tuple(warnings))


def charge_quota(db: Database, org_id: str, customer_id: str, kind: str, now: datetime) -> Charge:
    """``Quotas.charge`` in a transaction of its own on ``db`` (a ``store.Database``), bound to the
    customer. Raises as ``Quotas.charge`` does."""
    with db.tenant(org_id, customer_id) as tx:
        # Counters are not worth an fsync per request: a crash may forget the last moment's counts
        # (letting a few calls more through), never refuse wrongly. The setting ends with this
        # transaction, which holds nothing else.
        tx.execute("SET LOCAL synchronous_commit = off")
        return Quotas(tx).charge(org_id, customer_id, kind, now)

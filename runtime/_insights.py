"""Insights for the widget: one customer's day at a glance (what is summarized: ``store/_insights.py``).

"Today" starts at midnight in the organization's time zone, by the platform's clock; executions
needing attention and the most-used workflow look back ``INSIGHTS_LOOKBACK``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import store

if TYPE_CHECKING:
    from runtime._platform import Platform

INSIGHTS_LOOKBACK = timedelta(days=7)


def start_of_day(now: datetime, timezone: str) -> datetime:
    """Midnight of ``now``'s day in ``timezone`` (UTC for an unknown zone)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def customer_insights(platform: Platform, tx: store.Tx, org_id: str, customer_id: str | None, *,
                      hidden_environment: str | None = None) -> dict[str, Any]:
    """The insights of ``customer_id`` in ``tx`` (bind it to the customer: row-level security then
    confines every read); None: of the organization's customers together, but those of
    ``hidden_environment`` (a slug). Raises ``store.NotFound`` (customer)."""
    now = platform.clock()
    organization = store.Organizations(tx).get(org_id)
    since = start_of_day(now, organization.get("timezone") or "UTC")
    return store.Insights(tx).summary(org_id, customer_id, since=since, attention_since=now - INSIGHTS_LOOKBACK,
                                      hidden_environment=hidden_environment)

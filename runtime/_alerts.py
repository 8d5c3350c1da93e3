"""Alert evaluation: the loop every worker runs, each due rule evaluated once per slot.

Each worker process runs an :class:`AlertEvaluator`. Every ``poll_seconds`` it lists the enabled
rules due at the platform clock's now (``store.alert_rules_due``, as the owner, across
organizations) and, for each, in one transaction of the rule's organization: locks the rule if it
is still due (``FOR UPDATE SKIP LOCKED``, the condition read after the lock), measures its metric
over the window ending now, fires or resolves it (an alert row and an ``alert.fired`` or
``alert.resolved`` platform event, whose notification deliveries the database queues in the same
transaction) and moves ``next_eval_at`` on by the rule's interval; then commits. So with any
number of workers a rule is evaluated once per slot, and a state change is recorded once: the
alert, its event, its deliveries and the advanced slot commit together or not at all.

What a rule measures and when it fires: ``store/_alerts.py``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread

import store
from runtime._periodic import Periodic

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)

# How often an evaluator looks for due rules (``switchboard worker``: SWITCHBOARD_ALERT_POLL_SECONDS).
ALERT_POLL_SECONDS = 5.0
# Rules one pass evaluates at most (the rest wait for the next pass).
ALERT_BATCH = 100


class AlertEvaluator(Periodic):
    """Evaluates due alert rules from this process, for the life of an ``async with`` block (see
    the module docstring). :meth:`tick` is one pass, callable alone (tests, a one-shot command)."""

    name = "alerts"

    def __init__(self, platform: Platform, *, poll_seconds: float = ALERT_POLL_SECONDS, batch: int = ALERT_BATCH) -> None:
        super().__init__(platform, poll_seconds=poll_seconds, batch=batch)

    async def tick(self) -> list[dict[str, Any]]:
        """One pass; returns each evaluation it made (``rule_id``, ``value``, ``count``, ``state``,
        ``changed``: ``fired``, ``resolved`` or None, and ``alert`` when it changed)."""
        platform = self.platform
        now = platform.clock()
        due = await anyio.to_thread.run_sync(store.alert_rules_due, platform.conninfo, now, self.batch)
        done = []
        for org_id, rule_id in due:
            try:
                result = await anyio.to_thread.run_sync(self.evaluate, org_id, rule_id, now)
            except Exception as exc:  # one broken rule must not stop the others
                log.warning("alerts: rule %s of %s failed to evaluate: %s", rule_id, org_id, exc)
                continue
            if result is not None:
                done.append(result)
        return done

    def evaluate(self, org_id: str, rule_id: str, now: datetime) -> dict[str, Any] | None:
        """Evaluate rule ``rule_id`` if it is due at ``now`` and no other transaction holds it;
        None when it was not (another evaluator has it, or has just done it)."""
        with self.platform.db.tenant(org_id) as tx:
            rules = store.AlertRules(tx)
            rule = rules.lock_due(org_id, rule_id, now)
            if rule is None:
                return None
            return rules.evaluate(org_id, rule, now)

"""Charging the customer's quotas, for whatever starts work: a request, a run, a trigger, a tool.

``charge_api_call`` counts one API call made for a customer; ``charge_event`` one workflow run
about to start. Both raise ``store.QuotaExceeded`` (HTTP 429, with ``Retry-After``) at a hard
limit without counting, and return the ``store.Charge`` whose ``warnings`` name the warn-mode
dimensions past their limit (the API reports them in ``X-Quota-Warning``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import store
from runtime._access import Principal


class Quotas:
    """Quota charges on one database, read against one clock (tests inject a fake one)."""

    def __init__(self, db: store.Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    def charge(self, org_id: str, customer_id: str, kind: str) -> store.Charge:
        """Count one ``kind`` (``api_calls`` or ``events``) for ``customer_id`` of ``org_id`` now,
        in its own transaction. Blocking (SQL). Raises ``store.QuotaExceeded`` (nothing counted) at a
        hard limit and ``store.NotFound`` for an unknown customer."""
        return store.charge_quota(self._db, org_id, customer_id, kind, self._clock())

    def charge_api_call(self, principal: Principal) -> store.Charge | None:
        """One API call for the customer ``principal`` acts for; None (nothing counted) when it acts
        for none."""
        if not principal.customer_id:
            return None
        return self.charge(principal.org_id, principal.customer_id, "api_calls")

    def charge_event(self, principal: Principal, customer_id: str) -> store.Charge:
        """One event (a workflow run about to start) for ``customer_id``. Raises ``Forbidden`` when
        the caller's credentials are bound to another customer, and as :meth:`charge` does."""
        principal.may_act_for(customer_id)
        return self.charge(principal.org_id, customer_id, "events")

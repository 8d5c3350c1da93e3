"""Rate limits shared by every process: one schedule row per organization and connection rate key.

Migration m013 (``RATE_LIMITS_SCHEMA``) adds ``rate_limits``. A row holds a connection's
theoretical arrival time (``tat``, GCRA, the leaky bucket as a virtual schedule; see
``engine/http/_ratelimit.py``) in epoch seconds of the database's clock. Taking a slot is one
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: the row lock serializes the processes sending
on the connection, each gets the next slot ``interval`` after the one before (a burst of
``tolerance`` seconds' worth at once), and the clock read is the database's, taken after the lock,
so workers on machines whose clocks differ share one schedule.

Rows are small and few (one per connection that declares a rate limit); a row whose ``tat`` is in
the past means "free now", so none needs pruning for correctness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store._schema import APP_ROLE

if TYPE_CHECKING:
    from store._database import Tx

_ORG = "current_setting('app.org_id', true)"

RATE_LIMITS_SCHEMA = f"""
CREATE TABLE rate_limits (
    org_id     text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    rate_key   text NOT NULL,
    tat        double precision NOT NULL,
    seen       double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, rate_key)
);
ALTER TABLE rate_limits ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rate_limits USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limits TO {APP_ROLE};
"""

_NOW = "extract(epoch FROM clock_timestamp())::float8"

# tat' = max(tat, now) + interval; the slot is max(now, tat' - interval - tolerance). ``now`` is read
# once, after the row lock is taken (inside the SET's sub-select), and kept in ``seen`` so that the
# slot and the caller's wait are measured from the same instant: read twice, the later reading
# would make the slot of an idle connection later than the schedule it anchors.
_RESERVE = f"""
INSERT INTO rate_limits AS r (org_id, rate_key, tat, seen)
SELECT %(org)s, %(key)s, n + %(interval)s, n FROM (SELECT {_NOW} AS n) clock
ON CONFLICT (org_id, rate_key) DO UPDATE
   SET (tat, seen, updated_at) = (SELECT greatest(r.tat, n) + %(interval)s, n, now() FROM (SELECT {_NOW} AS n) clock)
RETURNING greatest(tat - %(interval)s - %(tolerance)s, seen) AS slot, seen AS now
"""

# Nothing before now + seconds, and no burst after it: the schedule moves to now + seconds +
# tolerance (never back), so the next slot is at now + seconds and the ones after it an interval apart.
_HOLD = f"""
INSERT INTO rate_limits AS r (org_id, rate_key, tat, seen)
SELECT %(org)s, %(key)s, n + %(seconds)s + %(tolerance)s, n FROM (SELECT {_NOW} AS n) clock
ON CONFLICT (org_id, rate_key) DO UPDATE
   SET (tat, seen, updated_at) = (SELECT greatest(r.tat, n + %(seconds)s + %(tolerance)s), n, now()
                                    FROM (SELECT {_NOW} AS n) clock)
"""


class RateLimits:
    """The shared schedules of one organization's connections (see the module docstring)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def reserve(self, org_id: str, rate_key: str, interval: float, tolerance: float) -> tuple[float, float]:
        """Take ``rate_key``'s next slot (``interval`` seconds after the one before, a burst of
        ``tolerance`` seconds' worth at once). Returns the slot and the database's time now, both
        epoch seconds (``now`` read once the row was locked): the caller waits ``slot - now``."""
        if interval <= 0 or tolerance < 0:
            raise ValueError("a rate limit's interval must be positive and its tolerance not negative")
        row = self.tx.execute(_RESERVE, {"org": org_id, "key": rate_key, "interval": interval,
                                         "tolerance": tolerance}).fetchone()
        assert row is not None
        return float(row["slot"]), float(row["now"])

    def hold(self, org_id: str, rate_key: str, seconds: float, tolerance: float) -> None:
        """Let no slot of ``rate_key`` start before ``seconds`` from now, and no burst after
        (``tolerance`` as in :meth:`reserve`): the provider answered 429."""
        self.tx.execute(_HOLD, {"org": org_id, "key": rate_key, "seconds": max(0.0, seconds),
                                "tolerance": max(0.0, tolerance)})

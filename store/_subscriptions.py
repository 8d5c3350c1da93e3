"""App subscriptions: webhook-style app events registered with the provider, one row per deployed
workflow, customer and event (migration m015, ``SUBSCRIPTIONS_SCHEMA``).

A row is what was (or is being) registered: the provider's subscription id (``remote_id``), the
hash of the secret token in the delivery URL (the token itself is shown to the provider only), and
``status``: ``pending`` (being registered), ``active``, or ``failed`` (``error`` says why; tried
again at the next pass). Rows have no foreign key to deployments: a row outlives its deployment
until it is unregistered (see ``runtime/_subscriptions.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from store._db import connect, translate_errors
from store._ids import new_id
from store._schema import APP_ROLE
from store.errors import NotFound

if TYPE_CHECKING:
    from store._database import Tx

_ORG = "current_setting('app.org_id', true)"
_CUSTOMER = "coalesce(current_setting('app.customer_id', true), '')"

SUBSCRIPTION_STATUSES = ("pending", "active", "failed")

SUBSCRIPTIONS_SCHEMA = f"""
CREATE TABLE app_subscriptions (
    org_id          text NOT NULL,
    id              text NOT NULL,
    workflow_id     text NOT NULL,
    environment_id  text NOT NULL,
    customer_id     text NOT NULL,
    connector       text NOT NULL,
    event           text NOT NULL,
    token_hash      text NOT NULL,
    remote_id       text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'failed')),
    error           jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, workflow_id, environment_id, customer_id, connector, event),
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE
);
ALTER TABLE app_subscriptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON app_subscriptions USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
CREATE POLICY customer ON app_subscriptions AS RESTRICTIVE
    USING ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER}) WITH CHECK ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER});
GRANT SELECT, INSERT, UPDATE, DELETE ON app_subscriptions TO {APP_ROLE};
"""

# Deployed workflows triggered by an app event (in the deployed spec, or an enabled attached
# trigger), times the active customers of the deployment's environment. Which of them name a
# webhook event with ``subscribe`` is for the runtime to say (it reads the connectors' specs).
_CANDIDATES = """
SELECT d.org_id, d.workflow_id, d.environment_id, c.id AS customer_id,
       v.spec -> 'trigger' ->> 'connector' AS connector, v.spec -> 'trigger' ->> 'event' AS event
  FROM deployments d
  JOIN workflows w ON w.org_id = d.org_id AND w.id = d.workflow_id AND w.status <> 'archived'
  JOIN workflow_versions v ON v.org_id = d.org_id AND v.workflow_id = d.workflow_id AND v.version = d.version
  JOIN customers c ON c.org_id = d.org_id AND c.environment_id = d.environment_id AND c.status = 'active'
 WHERE v.spec -> 'trigger' ->> 'kind' = 'app_event'
UNION
SELECT d.org_id, d.workflow_id, d.environment_id, c.id, t.config ->> 'connector', t.config ->> 'event'
  FROM triggers t
  JOIN deployments d ON d.org_id = t.org_id AND d.workflow_id = t.workflow_id
  JOIN workflows w ON w.org_id = d.org_id AND w.id = d.workflow_id AND w.status <> 'archived'
  JOIN customers c ON c.org_id = d.org_id AND c.environment_id = d.environment_id AND c.status = 'active'
 WHERE t.kind = 'app_event' AND t.enabled
"""

_KEY = ("workflow_id", "environment_id", "customer_id", "connector", "event")


def subscription_candidates(admin_conninfo: str) -> dict[str, list[dict[str, Any]]]:
    """By organization: the (workflow, environment, customer, connector, event) that an app event
    subscription may be wanted for (see ``_CANDIDATES``), and every organization that has
    subscription rows (with an empty list when nothing is wanted there any more). Asked as the
    owner, across tenants."""
    with translate_errors(), connect(admin_conninfo, autocommit=True) as conn:
        rows = conn.execute(_CANDIDATES).fetchall()
        held = conn.execute("SELECT DISTINCT org_id FROM app_subscriptions").fetchall()
    found: dict[str, list[dict[str, Any]]] = {org_id: [] for (org_id,) in held}
    for org_id, *values in rows:
        if values[3] and values[4]:
            found.setdefault(org_id, []).append(dict(zip(_KEY, values, strict=True)))
    return found


class AppSubscriptions:
    """An organization's app event subscriptions."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def try_lock(self, org_id: str) -> bool:
        """Take, for the rest of the transaction, the lock that lets one process at a time register
        and unregister ``org_id``'s subscriptions; False when another holds it."""
        row = self.tx.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 15)) AS taken",
                              (f"app_subscriptions/{org_id}",)).fetchone()
        return bool(row["taken"])

    def list(self, org_id: str) -> list[dict[str, Any]]:
        """Every subscription of ``org_id``, oldest first."""
        return self.tx.execute(
            "SELECT * FROM app_subscriptions WHERE org_id = %s ORDER BY created_at, id", (org_id,)).fetchall()

    def get(self, org_id: str, subscription_id: str) -> dict[str, Any]:
        """One subscription. Raises ``NotFound``."""
        row = self.tx.execute("SELECT * FROM app_subscriptions WHERE org_id = %s AND id = %s",
                              (org_id, subscription_id)).fetchone()
        if row is None:
            raise NotFound("subscription", subscription_id)
        return row

    def add(self, org_id: str, wanted: dict[str, Any], token_hash: str) -> dict[str, Any]:
        """A ``pending`` subscription for ``wanted`` (its ``_KEY`` fields), or the one there is
        (its token hash replaced: a failed one is registered again with a new URL)."""
        return self.tx.execute(
            "INSERT INTO app_subscriptions (org_id, id, workflow_id, environment_id, customer_id, connector, event,"
            " token_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (org_id, workflow_id, environment_id, customer_id, connector, event)"
            " DO UPDATE SET token_hash = excluded.token_hash, status = 'pending', updated_at = now() RETURNING *",
            (org_id, new_id("sub"), *(wanted[k] for k in _KEY), token_hash),
        ).fetchone()

    def settle(self, org_id: str, subscription_id: str, *, remote_id: str | None = None,
               error: dict[str, Any] | None = None) -> None:
        """Record how registering went: ``active`` with the provider's id, or ``failed`` with ``error``."""
        self.tx.execute(
            "UPDATE app_subscriptions SET status = %s, remote_id = coalesce(%s, remote_id), error = %s,"
            " updated_at = now() WHERE org_id = %s AND id = %s",
            ("failed" if error else "active", remote_id, Jsonb(error) if error else None, org_id, subscription_id),
        )

    def remove(self, org_id: str, subscription_id: str) -> None:
        """Forget a subscription (it was unregistered, or never registered)."""
        self.tx.execute("DELETE FROM app_subscriptions WHERE org_id = %s AND id = %s", (org_id, subscription_id))

    @staticmethod
    def key(row: dict[str, Any]) -> tuple[str, ...]:
        """What identifies a wanted subscription: workflow, environment, customer, connector, event."""
        return tuple(row[k] for k in _KEY)

"""Migration m005 (``EVENTS_SCHEMA``): the events ledger, its row-level security and grants, and
the trigger each execution was started with.

An event is something that arrived to start work for one customer: a webhook delivery, a due
schedule, a change found in a customer's app, a manual request. It is stored before anything runs,
so what arrived is never lost silently, even when it is refused (a quota) or runs nothing (a filter).

Status (``EVENT_STATUSES``):

* ``received``: stored and acknowledged; its run has not been dispatched yet;
* ``dispatched``: handed to the runtime, at most once (``execution_ids`` names what it started);
* ``filtered``: stored, but the trigger's filter did not match it: nothing runs;
* ``refused``: stored, but not accepted (a quota, a disabled trigger): ``error`` says why;
* ``failed``: accepted, but its run could not start (no published version, a bad filter...).

Deduplication: a webhook sender's ``webhook-id`` is unique per trigger among the events that were
accepted (every status but ``refused``), by a unique index rather than a read-then-write, so
concurrent deliveries of one id store one event. A refused delivery does not hold its id: the
sender's retry after ``Retry-After`` is a new attempt, and each attempt is recorded.

Events belong to a customer (``customer_id``), so a customer-bound transaction sees only its own,
like executions. There is no foreign key to triggers or workflows: the ledger outlives them.

An execution keeps what fired it (``executions.trigger``, a webhook's payload): a queued execution
is run later by a durable worker, which gives the run that trigger as a run started inline has it.
"""

from __future__ import annotations

from store._schema import APP_ROLE

EVENT_SOURCES = ("webhook", "schedule", "app_event", "manual")
EVENT_STATUSES = ("received", "dispatched", "filtered", "refused", "failed")
# The tables m005 adds (each bound to the organization and, by customer_id, to the customer).
EVENT_TABLES = ("events",)

_ORG = "current_setting('app.org_id', true)"
_CUSTOMER = "coalesce(current_setting('app.customer_id', true), '')"


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


EVENTS_SCHEMA = f"""
CREATE TABLE events (
    org_id         text NOT NULL,
    id             text NOT NULL,
    customer_id    text NOT NULL,
    environment_id text NOT NULL,
    source         text NOT NULL CHECK (source IN ({_quoted(EVENT_SOURCES)})),
    trigger_id     text,
    workflow_id    text,
    webhook_id     text CHECK (length(webhook_id) BETWEEN 1 AND 255),
    status         text NOT NULL CHECK (status IN ({_quoted(EVENT_STATUSES)})),
    error          jsonb,
    payload        jsonb,
    payload_bytes  integer NOT NULL DEFAULT 0,
    execution_ids  text[] NOT NULL DEFAULT '{{}}',
    received_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    dispatched_at  timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX events_webhook_id ON events (org_id, trigger_id, webhook_id)
    WHERE webhook_id IS NOT NULL AND status <> 'refused';
CREATE INDEX events_received_at ON events (org_id, received_at DESC, id DESC);
CREATE INDEX events_awaiting ON events (received_at) WHERE status = 'received';
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON events USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
CREATE POLICY customer ON events AS RESTRICTIVE
    USING ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER}) WITH CHECK ({_CUSTOMER} = '' OR customer_id = {_CUSTOMER});
GRANT SELECT, INSERT, UPDATE, DELETE ON events TO {APP_ROLE};
ALTER TABLE executions ADD COLUMN trigger jsonb;
"""

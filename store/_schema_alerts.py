"""Migration m014 (``ALERTS_SCHEMA``): alert rules and alerts, outbound notification endpoints,
deliveries and their attempts, and the platform's own events in the events ledger.

Platform events. The events ledger (m005) held what arrived to start work; it now also holds what
the platform itself says happened (``source = 'platform'``, with a ``type`` from
``PLATFORM_EVENT_TYPES``). Such an event may belong to no customer (an organization-wide alert:
``customer_id`` and ``environment_id`` are then NULL, and a customer-bound transaction does not see
it). Two of them are written by the database in the transaction that makes them true, so no path
can miss one: ``execution.failed`` when an execution's status becomes ``failed`` or ``timeout``
(a run's finish, a durable worker's finish, the sweep that fails a lost process's runs), and
``connection.needs_reconnect`` when a connection's status becomes ``needs_reconnect``. Alerts
write ``alert.fired`` and ``alert.resolved`` from ``store.AlertRules``.

Deliveries. Inserting a platform event inserts, in the same transaction, one pending delivery per
enabled endpoint of the organization subscribed to its type (the ``events_notify`` trigger): one
ledger from the execution to the event to each delivery and each of its attempts. A delivery keeps
the exact body it sends (Standard Webhooks' ``{"type", "timestamp", "data"}``) so every retry signs
and sends the same bytes under the same message id (the delivery id), and its retry schedule
(``attempts``, ``next_attempt_at``) so a restarted worker continues where another stopped.

Alert rules carry their evaluation schedule (``next_eval_at``) and state (``ok`` or ``firing``,
with the open alert's id); an evaluator locks a due rule ``FOR UPDATE SKIP LOCKED`` and advances
it in the transaction that records what it found, so two workers never evaluate one rule twice
for one slot.

Every table is bound to the organization by row-level security, like the others.
"""

from __future__ import annotations

from store._schema import APP_ROLE
from store._schema_events import EVENT_SOURCES

PLATFORM_EVENT_TYPES = ("execution.failed", "alert.fired", "alert.resolved", "connection.needs_reconnect")
ALERT_METRICS = ("error_rate", "latency_p99", "latency_p95", "latency_avg", "throughput", "failure_count")
ALERT_OPERATORS = (">", ">=", "<", "<=")
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
# The tables m014 adds, each bound to the organization.
ALERT_TABLES = ("alert_rules", "alerts", "notification_endpoints", "notification_deliveries", "notification_attempts")

_ORG = "current_setting('app.org_id', true)"


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


# Ids made in SQL look like store._ids.new_id's: a prefix and 96 random bits in hex.
_EVENT_ID = "'evt_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24)"
_MESSAGE_ID = "'msg_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24)"

ALERTS_SCHEMA = f"""
ALTER TABLE events ALTER COLUMN customer_id DROP NOT NULL;
ALTER TABLE events ALTER COLUMN environment_id DROP NOT NULL;
ALTER TABLE events DROP CONSTRAINT events_source_check;
ALTER TABLE events ADD CONSTRAINT events_source_check CHECK (source IN ({_quoted((*EVENT_SOURCES, "platform"))}));
ALTER TABLE events ADD COLUMN type text CHECK (type IS NULL OR type IN ({_quoted(PLATFORM_EVENT_TYPES)}));
ALTER TABLE events ADD CONSTRAINT events_platform_type CHECK ((source = 'platform') = (type IS NOT NULL));
CREATE INDEX events_retention ON events (received_at) WHERE status <> 'received';
CREATE INDEX executions_retention ON executions (started_at) WHERE status NOT IN ('queued', 'running');
CREATE INDEX executions_finished ON executions (org_id, finished_at) WHERE finished_at IS NOT NULL AND NOT dry_run;

CREATE TABLE alert_rules (
    org_id           text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id               text NOT NULL,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    metric           text NOT NULL CHECK (metric IN ({_quoted(ALERT_METRICS)})),
    operator         text NOT NULL DEFAULT '>' CHECK (operator IN ({_quoted(ALERT_OPERATORS)})),
    threshold        double precision NOT NULL,
    window_seconds   integer NOT NULL CHECK (window_seconds > 0),
    interval_seconds integer NOT NULL CHECK (interval_seconds > 0),
    min_count        integer NOT NULL DEFAULT 1 CHECK (min_count >= 0),
    workflow_id      text,
    connector        text,
    enabled          boolean NOT NULL DEFAULT true,
    state            text NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'firing')),
    alert_id         text,
    last_value       double precision,
    last_count       integer,
    evaluated_at     timestamptz,
    next_eval_at     timestamptz NOT NULL DEFAULT now(),
    created_by       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, workflow_id) REFERENCES workflows(org_id, id) ON DELETE CASCADE,
    CHECK (workflow_id IS NULL OR connector IS NULL)
);
CREATE INDEX alert_rules_due ON alert_rules (next_eval_at) WHERE enabled;

CREATE TABLE alerts (
    org_id            text NOT NULL,
    id                text NOT NULL,
    rule_id           text NOT NULL,
    status            text NOT NULL CHECK (status IN ('firing', 'resolved')),
    metric            text NOT NULL,
    operator          text NOT NULL,
    threshold         double precision NOT NULL,
    value             double precision,
    fired_at          timestamptz NOT NULL,
    resolved_at       timestamptz,
    resolved_value    double precision,
    fired_event_id    text,
    resolved_event_id text,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, rule_id) REFERENCES alert_rules(org_id, id) ON DELETE CASCADE
);
CREATE INDEX alerts_fired_at ON alerts (org_id, fired_at DESC, id DESC);
CREATE UNIQUE INDEX alerts_one_firing ON alerts (org_id, rule_id) WHERE status = 'firing';

CREATE TABLE notification_endpoints (
    org_id      text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id          text NOT NULL,
    url         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description text NOT NULL DEFAULT '',
    event_types text[] NOT NULL CHECK (cardinality(event_types) > 0
                                       AND event_types <@ ARRAY[{_quoted(PLATFORM_EVENT_TYPES)}]::text[]),
    secret      bytea NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);

CREATE TABLE notification_deliveries (
    org_id           text NOT NULL,
    id               text NOT NULL,
    endpoint_id      text NOT NULL,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    body             jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ({_quoted(DELIVERY_STATUSES)})),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES notification_endpoints(org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, event_id) REFERENCES events(org_id, id) ON DELETE CASCADE
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_deliveries_endpoint ON notification_deliveries (org_id, endpoint_id, created_at DESC, id DESC);
CREATE INDEX notification_deliveries_event ON notification_deliveries (org_id, event_id);
CREATE INDEX notification_deliveries_retention ON notification_deliveries (created_at) WHERE status <> 'pending';

CREATE TABLE notification_attempts (
    org_id        text NOT NULL,
    delivery_id   text NOT NULL,
    attempt       integer NOT NULL CHECK (attempt > 0),
    at            timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    response_code integer,
    latency_ms    double precision,
    error         text,
    PRIMARY KEY (org_id, delivery_id, attempt),
    FOREIGN KEY (org_id, delivery_id) REFERENCES notification_deliveries(org_id, id) ON DELETE CASCADE
);

-- One pending delivery per enabled endpoint subscribed to a platform event's type, in the
-- transaction that stores the event.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_deliveries (org_id, id, endpoint_id, event_id, event_type, body, next_attempt_at)
    SELECT NEW.org_id, {_MESSAGE_ID}, ep.id, NEW.id, NEW.type,
           jsonb_build_object(
               'type', NEW.type,
               'timestamp', to_char(NEW.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'data', coalesce(NEW.payload, '{{}}'::jsonb) || jsonb_build_object('event_id', NEW.id)),
           NEW.received_at
    FROM notification_endpoints ep
    WHERE ep.org_id = NEW.org_id AND ep.enabled AND NEW.type = ANY(ep.event_types);
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH ROW WHEN (NEW.type IS NOT NULL)
    EXECUTE FUNCTION events_notify();

-- execution.failed, in the transaction that fails the execution, whoever fails it.
CREATE FUNCTION executions_failed_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb;
BEGIN
    payload := jsonb_build_object(
        'execution_id', NEW.id, 'workflow_id', NEW.workflow_id,
        'workflow_key', (SELECT w.key FROM workflows w WHERE w.org_id = NEW.org_id AND w.id = NEW.workflow_id),
        'customer_id', NEW.customer_id, 'version', NEW.version, 'status', NEW.status, 'tier', NEW.tier,
        'triggered_by', NEW.triggered_by, 'error', NEW.error, 'started_at', NEW.started_at,
        'finished_at', NEW.finished_at);
    INSERT INTO events (org_id, id, customer_id, environment_id, source, type, workflow_id, status, payload,
                        payload_bytes, execution_ids, dispatched_at)
    SELECT NEW.org_id, {_EVENT_ID}, NEW.customer_id, c.environment_id, 'platform', 'execution.failed',
           NEW.workflow_id, 'dispatched', payload, octet_length(payload::text), ARRAY[NEW.id], clock_timestamp()
    FROM customers c WHERE c.org_id = NEW.org_id AND c.id = NEW.customer_id;
    RETURN NULL;
END $$;
CREATE TRIGGER executions_failed_event AFTER UPDATE OF status ON executions FOR EACH ROW
    WHEN (NEW.status IN ('failed', 'timeout') AND OLD.status IS DISTINCT FROM NEW.status AND NOT NEW.dry_run)
    EXECUTE FUNCTION executions_failed_event();

-- connection.needs_reconnect, in the transaction that marks the connection.
CREATE FUNCTION connections_reconnect_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb;
BEGIN
    payload := jsonb_build_object(
        'connection_id', NEW.id, 'customer_id', NEW.customer_id, 'connector_id', NEW.connector_id,
        'connector', (SELECT k.key FROM connectors k WHERE k.org_id = NEW.org_id AND k.id = NEW.connector_id),
        'status', NEW.status);
    INSERT INTO events (org_id, id, customer_id, environment_id, source, type, status, payload, payload_bytes,
                        dispatched_at)
    SELECT NEW.org_id, {_EVENT_ID}, NEW.customer_id, c.environment_id, 'platform', 'connection.needs_reconnect',
           'dispatched', payload, octet_length(payload::text), clock_timestamp()
    FROM customers c WHERE c.org_id = NEW.org_id AND c.id = NEW.customer_id;
    RETURN NULL;
END $$;
CREATE TRIGGER connections_reconnect_event AFTER UPDATE OF status ON connections FOR EACH ROW
    WHEN (NEW.status = 'needs_reconnect' AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION connections_reconnect_event();
""" + "".join(
    f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
    f"CREATE POLICY tenant ON {table} USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});\n"
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE};\n"
    for table in ALERT_TABLES
)


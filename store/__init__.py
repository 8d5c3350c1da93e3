"""The store: Postgres access for Switchboard. The only package that speaks SQL.

Public surface: the embedded server, migrations, database administration helpers, the app's
connection pool with its tenant transactions, the repositories, paging and the error hierarchy.
Nothing here touches the database on import.
"""

from store._agent_usage import (
    AGENT_CREDIT_PERIOD,
    AGENT_CREDIT_PLANS,
    USAGE_GROUPS,
    AgentUsage,
    CreditSummary,
    UsageTotals,
    period_bounds,
)
from store._api_keys import KEY_KINDS, ApiKeys, hash_key
from store._audit import AuditLog, has_changes
from store._catalog import CatalogEntry, CatalogIndex, ensure_catalog_index
from store._connections import (
    CONNECTION_STATUSES,
    MAX_CREDENTIAL_LENGTH,
    OAUTH_TOKEN_FIELDS,
    Connections,
    ConnectorRef,
    connection_purpose,
    connector_ref,
)
from store._oauth_states import OAUTH_STATE_TTL, OAuthStates, state_org
from store._crypto import Encryptor, MasterKeyring, RotationReport, master_key_id, rotate_master_key
from store._database import Database, Tx, app_conninfo, execution_org, has_organizations, set_app_password
from store._db import create_database, drop_database, with_database
from store._durable import durable_database_url, migrate_durable
from store._processes import PROCESS_LOST, end_process, fail_orphaned, register_process, unstarted_executions
from store._idempotency import IdempotencyKeys
from store._ids import CLIENT_ID_PATTERN, new_id
from store._orgs import DEFAULT_ENVIRONMENTS, RESIDENCIES, Customers, Environments, Organizations
from store._oauth_apps import OAuthApps
from store._paging import DEFAULT_LIMIT, MAX_LIMIT, ListQuery, Page
from store._rate_limits import RateLimits
from store._quotas import DIMENSIONS, ENFORCEMENT_MODES, PLANS, Charge, Quotas, WindowUsage, charge_quota, check_limits
from store._people import (
    ACTIONS,
    AREA_ACTIONS,
    AREAS,
    USER_STATUSES,
    Roles,
    Users,
    check_permissions,
    exceeding_permissions,
)
from store._sandboxes import CONNECTION_TARGETS, SANDBOX_TABLES, SandboxDocuments
from store._schema import APP_ROLE
from store._threads import (
    CHECKPOINT_TABLES,
    EVENT_TYPES as THREAD_EVENT_TYPES,
    RUN_FINISHED,
    RUN_STATUSES,
    THREAD_STATUSES,
    THREAD_TABLES,
    Threads,
    checkpoint_thread_id,
    open_checkpointer,
)
from store._secrets import MAX_SECRET_BYTES, SECRET_NAME_PATTERN, Secrets
from store._connectors import CONNECTOR_STATUSES, VERSION_STATES, Connectors
from store._events import Events, events_awaiting_dispatch
from store._alerts import (
    ALERT_STATUSES,
    DEFAULT_ALERT_INTERVAL_SECONDS,
    MAX_ALERT_WINDOW_SECONDS,
    AlertRules,
    Alerts,
    alert_rules_due,
)
from store._insights import Insights
from store._notifications import (
    Deliveries,
    NotificationEndpoints,
    check_endpoint_url,
    deliveries_due,
    new_signing_secret,
)
from store._retention import DEFAULT_PRUNE_BATCH, PruneReport, prune
from store._schema_alerts import ALERT_METRICS, ALERT_OPERATORS, ALERT_TABLES, DELIVERY_STATUSES, PLATFORM_EVENT_TYPES
from store._traces import TRACE_STATUSES, Traces
from store._polls import SEEN_LIMIT as POLL_SEEN_LIMIT, Polls, polls_due, sync_polls
from store._waits import WAIT_SOURCES, EventWaits, payload_matches
from store._subscriptions import SUBSCRIPTION_STATUSES, AppSubscriptions, subscription_candidates
from store._schedules import Schedules, schedules_due
from store._schema_events import EVENT_SOURCES, EVENT_STATUSES
from store._workflows import (
    DRAFT_VERSION,
    EXECUTION_STATUSES,
    EXECUTION_TIERS,
    FINISHED_STATUSES,
    TRIGGERED_BY,
    TRIGGER_KINDS,
    WORKFLOW_STATUSES,
    WORKFLOW_TYPES,
    Executions,
    Triggers,
    Workflows,
)
from store._migrations import (
    MIGRATIONS,
    Migration,
    MigrationState,
    current_version,
    latest_version,
    migrate,
    migration_status,
)
from store._server import EmbeddedPostgres, resolve_conninfo, start_embedded
from store.errors import (
    OutsideTenantScope,
    ValueNotStorable,
    ConnectionAuthInvalid,
    ConnectionNeedsReconnect,
    OAuthAppMissing,
    OAuthCallbackFailed,
    OAuthStateInvalid,
    DatabaseUnavailable,
    EmbeddedPostgresError,
    Conflict,
    DecryptionFailed,
    EncryptionError,
    KeyRotationRefused,
    KeyringInsecure,
    MasterKeyInvalid,
    MasterKeyMissing,
    InvalidInput,
    MigrationChanged,
    MigrationFailed,
    MigrationMismatch,
    NotFound,
    QueryFailed,
    QuotaExceeded,
    ResourceError,
    SchemaError,
    SchemaTooNew,
    StoreError,
)

__all__ = [
    # durable executions and process leases
    "PROCESS_LOST",
    "durable_database_url",
    "end_process",
    "fail_orphaned",
    "migrate_durable",
    "register_process",
    "unstarted_executions",
    # connector catalog
    "CatalogEntry",
    "CatalogIndex",
    "ensure_catalog_index",
    # end connector catalog
    # connectors and workflows
    "CONNECTOR_STATUSES",
    "DRAFT_VERSION",
    "EXECUTION_STATUSES",
    "EXECUTION_TIERS",
    "FINISHED_STATUSES",
    "TRIGGERED_BY",
    "TRIGGER_KINDS",
    "VERSION_STATES",
    "WORKFLOW_STATUSES",
    "WORKFLOW_TYPES",
    "Connectors",
    "Executions",
    "Triggers",
    "Workflows",
    # events
    "EVENT_SOURCES",
    "EVENT_STATUSES",
    "Events",
    "events_awaiting_dispatch",
    # end events
    # alerts, notifications, insights and retention
    "ALERT_METRICS",
    "ALERT_OPERATORS",
    "ALERT_STATUSES",
    "ALERT_TABLES",
    "DEFAULT_ALERT_INTERVAL_SECONDS",
    "DEFAULT_PRUNE_BATCH",
    "DELIVERY_STATUSES",
    "MAX_ALERT_WINDOW_SECONDS",
    "PLATFORM_EVENT_TYPES",
    "AlertRules",
    "Alerts",
    "Deliveries",
    "Insights",
    "NotificationEndpoints",
    "PruneReport",
    "alert_rules_due",
    "check_endpoint_url",
    "deliveries_due",
    "new_signing_secret",
    "prune",
    # end alerts
    # traces
    "TRACE_STATUSES",
    "Traces",
    # schedules
    "Schedules",
    "schedules_due",
    # end schedules
    # polls
    "POLL_SEEN_LIMIT",
    "Polls",
    "polls_due",
    "sync_polls",
    # end polls
    # event waits and escalations (m015_durable2)
    "EventWaits",
    "WAIT_SOURCES",
    "payload_matches",
    # end event waits
    # app event subscriptions (m015_durable2)
    "AppSubscriptions",
    "SUBSCRIPTION_STATUSES",
    "subscription_candidates",
    # end app event subscriptions
    # hosted sandboxes
    "CONNECTION_TARGETS",
    "SANDBOX_TABLES",
    "SandboxDocuments",
    # end hosted sandboxes
    # agent threads
    "CHECKPOINT_TABLES",
    "RUN_FINISHED",
    "RUN_STATUSES",
    "THREAD_EVENT_TYPES",
    "THREAD_STATUSES",
    "THREAD_TABLES",
    "Threads",
    "checkpoint_thread_id",
    "open_checkpointer",
    # end agent threads
    # connections
    "CONNECTION_STATUSES",
    "MAX_CREDENTIAL_LENGTH",
    "OAUTH_STATE_TTL",
    "OAUTH_TOKEN_FIELDS",
    "ConnectionAuthInvalid",
    "ConnectionNeedsReconnect",
    "Connections",
    "ConnectorRef",
    "OAuthAppMissing",
    "OAuthCallbackFailed",
    "OAuthStateInvalid",
    "OAuthStates",
    "connection_purpose",
    "connector_ref",
    "state_org",
    # end connections
    # agent usage and credits
    "AGENT_CREDIT_PERIOD",
    "AGENT_CREDIT_PLANS",
    "USAGE_GROUPS",
    "AgentUsage",
    "CreditSummary",
    "UsageTotals",
    "period_bounds",
    # end agent usage and credits
    # quotas
    "DIMENSIONS",
    "ENFORCEMENT_MODES",
    "PLANS",
    "Charge",
    "QuotaExceeded",
    "Quotas",
    "RateLimits",
    "WindowUsage",
    "charge_quota",
    "check_limits",
    # end quotas
    "ACTIONS",
    "APP_ROLE",
    "AREAS",
    "AREA_ACTIONS",
    "CLIENT_ID_PATTERN",
    "DEFAULT_ENVIRONMENTS",
    "DEFAULT_LIMIT",
    "KEY_KINDS",
    "MAX_LIMIT",
    "MAX_SECRET_BYTES",
    "RESIDENCIES",
    "SECRET_NAME_PATTERN",
    "USER_STATUSES",
    "ApiKeys",
    "AuditLog",
    "Conflict",
    "Customers",
    "Database",
    "DecryptionFailed",
    "EncryptionError",
    "Encryptor",
    "KeyRotationRefused",
    "KeyringInsecure",
    "MasterKeyInvalid",
    "MasterKeyMissing",
    "MasterKeyring",
    "RotationReport",
    "master_key_id",
    "rotate_master_key",
    "Environments",
    "IdempotencyKeys",
    "InvalidInput",
    "ListQuery",
    "NotFound",
    "OutsideTenantScope",
    "OAuthApps",
    "Organizations",
    "Page",
    "ResourceError",
    "ValueNotStorable",
    "Roles",
    "Secrets",
    "Tx",
    "Users",
    "app_conninfo",
    "check_permissions",
    "exceeding_permissions",
    "execution_org",
    "has_changes",
    "has_organizations",
    "hash_key",
    "new_id",
    "set_app_password",
    "MIGRATIONS",
    "DatabaseUnavailable",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "Migration",
    "MigrationChanged",
    "MigrationFailed",
    "MigrationMismatch",
    "MigrationState",
    "QueryFailed",
    "SchemaError",
    "SchemaTooNew",
    "StoreError",
    "create_database",
    "current_version",
    "drop_database",
    "latest_version",
    "migrate",
    "migration_status",
    "resolve_conninfo",
    "start_embedded",
    "with_database",
]

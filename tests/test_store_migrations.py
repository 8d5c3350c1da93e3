"""Migrations against the real test Postgres: applied once, recorded, refused when history differs."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading

import psycopg
import pytest

import store
from store import Migration


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_public_surface_is_stable() -> None:
    # The contract other packages build on: adding or removing a name is a deliberate change here.
    assert sorted(store.__all__) == [
        "ACTIONS",
        "AGENT_CREDIT_PERIOD",
        "AGENT_CREDIT_PLANS",
        "ALERT_METRICS",
        "ALERT_OPERATORS",
        "ALERT_STATUSES",
        "ALERT_TABLES",
        "APP_ROLE",
        "AREAS",
        "AREA_ACTIONS",
        "AgentUsage",
        "AlertRules",
        "Alerts",
        "ApiKeys",
        "AppSubscriptions",
        "AuditLog",
        "CHECKPOINT_TABLES",
        "CLIENT_ID_PATTERN",
        "CONNECTION_STATUSES",
        "CONNECTION_TARGETS",
        "CONNECTOR_STATUSES",
        "CatalogEntry",
        "CatalogIndex",
        "Charge",
        "Conflict",
        "ConnectionAuthInvalid",
        "ConnectionNeedsReconnect",
        "Connections",
        "ConnectorRef",
        "Connectors",
        "CreditSummary",
        "Customers",
        "DEFAULT_ALERT_INTERVAL_SECONDS",
        "DEFAULT_ENVIRONMENTS",
        "DEFAULT_LIMIT",
        "DEFAULT_PRUNE_BATCH",
        "DELIVERY_STATUSES",
        "DIMENSIONS",
        "DRAFT_VERSION",
        "Database",
        "DatabaseUnavailable",
        "DecryptionFailed",
        "Deliveries",
        "ENFORCEMENT_MODES",
        "EVENT_SOURCES",
        "EVENT_STATUSES",
        "EXECUTION_STATUSES",
        "EXECUTION_TIERS",
        "EmbeddedPostgres",
        "EmbeddedPostgresError",
        "EncryptionError",
        "Encryptor",
        "Environments",
        "EventWaits",
        "Events",
        "Executions",
        "FINISHED_STATUSES",
        "IdempotencyKeys",
        "Insights",
        "InvalidInput",
        "KEY_KINDS",
        "KeyRotationRefused",
        "KeyringInsecure",
        "ListQuery",
        "MAX_ALERT_WINDOW_SECONDS",
        "MAX_CREDENTIAL_LENGTH",
        "MAX_LIMIT",
        "MAX_SECRET_BYTES",
        "MIGRATIONS",
        "MasterKeyInvalid",
        "MasterKeyMissing",
        "MasterKeyring",
        "Migration",
        "MigrationChanged",
        "MigrationFailed",
        "MigrationMismatch",
        "MigrationState",
        "NotFound",
        "NotificationEndpoints",
        "OAUTH_STATE_TTL",
        "OAUTH_TOKEN_FIELDS",
        "OAuthAppMissing",
        "OAuthApps",
        "OAuthCallbackFailed",
        "OAuthStateInvalid",
        "OAuthStates",
        "Organizations",
        "OutsideTenantScope",
        "PLANS",
        "PLATFORM_EVENT_TYPES",
        "POLL_SEEN_LIMIT",
        "PROCESS_LOST",
        "Page",
        "Polls",
        "PruneReport",
        "QueryFailed",
        "QuotaExceeded",
        "Quotas",
        "RESIDENCIES",
        "RUN_FINISHED",
        "RUN_STATUSES",
        "RateLimits",
        "ResourceError",
        "Roles",
        "RotationReport",
        "SANDBOX_TABLES",
        "SECRET_NAME_PATTERN",
        "SUBSCRIPTION_STATUSES",
        "SandboxDocuments",
        "Schedules",
        "SchemaError",
        "SchemaTooNew",
        "Secrets",
        "StoreError",
        "THREAD_EVENT_TYPES",
        "THREAD_STATUSES",
        "THREAD_TABLES",
        "TRACE_STATUSES",
        "TRIGGERED_BY",
        "TRIGGER_KINDS",
        "Threads",
        "Traces",
        "Triggers",
        "Tx",
        "USAGE_GROUPS",
        "USER_STATUSES",
        "UsageTotals",
        "Users",
        "VERSION_STATES",
        "ValueNotStorable",
        "WAIT_SOURCES",
        "WORKFLOW_STATUSES",
        "WORKFLOW_TYPES",
        "WindowUsage",
        "Workflows",
        "alert_rules_due",
        "app_conninfo",
        "charge_quota",
        "check_endpoint_url",
        "check_limits",
        "check_permissions",
        "checkpoint_thread_id",
        "connection_purpose",
        "connector_ref",
        "create_database",
        "current_version",
        "deliveries_due",
        "drop_database",
        "durable_database_url",
        "end_process",
        "ensure_catalog_index",
        "events_awaiting_dispatch",
        "exceeding_permissions",
        "execution_org",
        "fail_orphaned",
        "has_changes",
        "has_organizations",
        "hash_key",
        "latest_version",
        "master_key_id",
        "migrate",
        "migrate_durable",
        "migration_status",
        "new_id",
        "new_signing_secret",
        "open_checkpointer",
        "payload_matches",
        "period_bounds",
        "polls_due",
        "prune",
        "register_process",
        "resolve_conninfo",
        "rotate_master_key",
        "schedules_due",
        "set_app_password",
        "start_embedded",
        "state_org",
        "subscription_candidates",
        "sync_polls",
        "unstarted_executions",
        "with_database",
    ]
    for name in store.__all__:
        assert getattr(store, name) is not None


def test_migration_names_match_their_position() -> None:
    for version, migration in enumerate(store.MIGRATIONS, start=1):
        assert re.fullmatch(rf"m{version:03d}_[a-z0-9_]+", migration.name), migration.name
    assert store.MIGRATIONS[0].name == "m001_pgvector"


def test_fresh_database_is_version_zero(fresh_db: str) -> None:
    assert store.current_version(fresh_db) == 0


def test_migrate_applies_once_and_records_versions(fresh_db: str) -> None:
    latest = store.latest_version()
    assert store.migrate(fresh_db) == list(range(1, latest + 1))
    assert store.migrate(fresh_db) == []
    assert store.current_version(fresh_db) == latest
    recorded = _rows(fresh_db, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert recorded == [(v, m.name) for v, m in enumerate(store.MIGRATIONS, start=1)]


def test_m001_enables_pgvector(fresh_db: str) -> None:
    store.migrate(fresh_db)
    assert _rows(fresh_db, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == [("vector",)]
    assert _rows(fresh_db, "SELECT '[3,4]'::vector <-> '[0,0]'::vector") == [(5.0,)]


def test_failed_migration_rolls_back_and_keeps_earlier_version(fresh_db: str) -> None:
    broken = (*store.MIGRATIONS, Migration("m999_broken", "CREATE TABLE half_done (id int); SELECT * FROM no_such_table"))
    with pytest.raises(store.MigrationFailed) as info:
        store.migrate(fresh_db, broken)
    err = info.value
    assert (err.version, err.name, err.code) == (len(broken), "m999_broken", "migration_failed")
    assert "no_such_table" in err.reason
    assert store.current_version(fresh_db) == store.latest_version()
    assert _rows(fresh_db, "SELECT to_regclass('half_done')") == [(None,)]


def test_callable_migration_gets_the_connection(fresh_db: str) -> None:
    def add_table(conn: psycopg.Connection) -> None:
        conn.execute("CREATE TABLE from_callable (id int)")

    assert store.migrate(fresh_db, (Migration("m001_callable", add_table),)) == [1]
    assert _rows(fresh_db, "SELECT to_regclass('from_callable') IS NOT NULL") == [(True,)]


def test_database_ahead_of_code_is_refused(fresh_db: str) -> None:
    store.migrate(fresh_db, (*store.MIGRATIONS, Migration("m002_future", "SELECT 1")))
    with pytest.raises(store.SchemaTooNew) as info:
        store.migrate(fresh_db)
    assert (info.value.database_version, info.value.code_version) == (len(store.MIGRATIONS) + 1, len(store.MIGRATIONS))


def test_edited_history_is_refused(fresh_db: str) -> None:
    store.migrate(fresh_db)
    with pytest.raises(store.MigrationMismatch) as info:
        store.migrate(fresh_db, (Migration("m001_renamed", "SELECT 1"), *store.MIGRATIONS[1:]))
    assert (info.value.recorded_name, info.value.expected_name) == ("m001_pgvector", "m001_renamed")
    assert isinstance(info.value, store.SchemaError)


def test_concurrent_migrations_apply_each_version_once(fresh_db: str) -> None:
    barrier = threading.Barrier(3)
    results: list[list[int]] = []

    def worker() -> None:
        barrier.wait()
        results.append(store.migrate(fresh_db))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [[], [], list(range(1, store.latest_version() + 1))]


def test_unreachable_database_is_a_typed_error() -> None:
    with pytest.raises(store.DatabaseUnavailable) as info:
        store.current_version("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    assert info.value.code == "database_unavailable"
    assert info.value.http_status == 503
    assert isinstance(info.value, store.StoreError)


def test_malformed_url_is_a_typed_error() -> None:
    with pytest.raises(store.DatabaseUnavailable, match="invalid database URL"):
        store.migrate("this is not a url")


def test_database_names_are_checked(database_url: str) -> None:
    with pytest.raises(ValueError, match="database name"):
        store.create_database(database_url, 'x"; DROP DATABASE postgres; --')


def test_creating_an_existing_database_is_a_query_error(fresh_db: str, database_url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(fresh_db)["dbname"]
    with pytest.raises(store.QueryFailed) as info:
        store.create_database(database_url, name)
    assert info.value.sqlstate == "42P04"  # duplicate_database


# --- checksums: an applied migration is never edited ---


def _set_checksum(url: str, version: int, checksum: str | None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = %s", (checksum, version))


def test_each_applied_migration_records_the_sha256_of_its_sql(fresh_db: str) -> None:
    store.migrate(fresh_db)
    recorded = _rows(fresh_db, "SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert recorded == [(v, hashlib.sha256(m.apply.encode()).hexdigest()) for v, m in enumerate(store.MIGRATIONS, 1)]


def test_m002_is_sql_text_so_its_checksum_covers_every_statement() -> None:
    m002 = store.MIGRATIONS[1]
    assert m002.name == "m002_platform" and isinstance(m002.apply, str)
    # Tables, row-level security, the system roles, the app role and its grants: all in the hashed text.
    for part in ("CREATE TABLE organizations", "CREATE POLICY tenant ON customers", "INSERT INTO roles",
                 "'end_user'", "CREATE ROLE switchboard_app", "GRANT CONNECT ON DATABASE",
                 "GRANT SELECT ON schema_migrations TO switchboard_app"):
        assert part in m002.apply, part
    edited = dataclasses.replace(m002, apply=m002.apply.replace("'end_user'", "'end_users'"))
    assert edited.checksum != m002.checksum


def test_an_edited_migration_text_is_refused_naming_it(fresh_db: str) -> None:
    original = (Migration("m001_things", "CREATE TABLE things (id int)"),)
    assert store.migrate(fresh_db, original) == [1]
    edited = (Migration("m001_things", "CREATE TABLE things (id bigint)"), Migration("m002_more", "CREATE TABLE more (id int)"))
    with pytest.raises(store.MigrationChanged) as info:
        store.migrate(fresh_db, edited)
    err = info.value
    assert (err.version, err.name, err.code, err.http_status) == (1, "m001_things", "migration_changed", 500)
    assert (err.recorded_checksum, err.code_checksum) == (original[0].checksum, edited[0].checksum)
    assert isinstance(err, store.SchemaError)
    assert "migration 1 (m001_things) was changed after it was applied" in str(err)
    assert "append-only" in str(err) and "new migration" in str(err)
    # Refused before anything ran: the new migration was not applied.
    assert _rows(fresh_db, "SELECT to_regclass('more')") == [(None,)]
    with pytest.raises(store.MigrationChanged):
        store.migration_status(fresh_db, edited)
    # The original code still runs against it.
    assert store.migrate(fresh_db, original) == []


def test_an_edited_platform_migration_is_refused_by_migrate_and_status(fresh_db: str) -> None:
    store.migrate(fresh_db)
    m002 = store.MIGRATIONS[1]
    edited = (store.MIGRATIONS[0], dataclasses.replace(m002, apply=m002.apply + "\nCREATE TABLE sneaked_in (id int);\n"),
              *store.MIGRATIONS[2:])
    for check in (store.migrate, store.migration_status):
        with pytest.raises(store.MigrationChanged) as info:
            check(fresh_db, edited)
        assert (info.value.version, info.value.name) == (2, "m002_platform")
    assert _rows(fresh_db, "SELECT to_regclass('sneaked_in')") == [(None,)]


def test_a_recorded_checksum_that_differs_is_refused(fresh_db: str) -> None:
    store.migrate(fresh_db)
    _set_checksum(fresh_db, 2, "0" * 64)
    for check in (store.migrate, store.migration_status):
        with pytest.raises(store.MigrationChanged, match=r"migration 2 \(m002_platform\) was changed") as info:
            check(fresh_db)
        assert info.value.recorded_checksum == "0" * 64
        assert info.value.code_checksum == store.MIGRATIONS[1].checksum


def test_migrations_applied_before_checksums_get_the_codes_once(fresh_db: str) -> None:
    store.migrate(fresh_db)
    # A database from before checksums: no column at all.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE schema_migrations DROP COLUMN checksum")
    assert [s.applied for s in store.migration_status(fresh_db)] == [True] * store.latest_version()
    assert store.migrate(fresh_db) == []
    recorded = _rows(fresh_db, "SELECT checksum FROM schema_migrations ORDER BY version")
    assert recorded == [(m.checksum,) for m in store.MIGRATIONS]
    # Recorded once: from now on an edit is caught.
    _set_checksum(fresh_db, 1, "f" * 64)
    with pytest.raises(store.MigrationChanged):
        store.migrate(fresh_db)


def test_migration_status_lists_applied_and_pending_without_writing(fresh_db: str) -> None:
    fresh = store.migration_status(fresh_db)
    assert [(s.version, s.name, s.applied) for s in fresh] == [
        (v, m.name, False) for v, m in enumerate(store.MIGRATIONS, 1)]
    assert _rows(fresh_db, "SELECT to_regclass('schema_migrations')") == [(None,)]  # status only reads
    store.migrate(fresh_db, store.MIGRATIONS[:1])
    states = store.migration_status(fresh_db)
    assert [s.applied for s in states] == [True] + [False] * (store.latest_version() - 1)
    assert states[0].applied_at is not None and states[0].checksum == store.MIGRATIONS[0].checksum


def test_a_callable_migrations_checksum_follows_its_source() -> None:
    def one(conn: psycopg.Connection) -> None:
        conn.execute("CREATE TABLE a (id int)")

    def two(conn: psycopg.Connection) -> None:
        conn.execute("CREATE TABLE a (id bigint)")

    assert Migration("m001_x", one).checksum != Migration("m001_x", two).checksum
    assert Migration("m001_x", one).checksum == Migration("m001_x", one).checksum
    assert len(Migration("m001_x", "SELECT 1").checksum) == 64

"""Migrations against the real test Postgres: applied once, recorded, refused when history differs."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import store
from store import Migration


@pytest.fixture
def fresh_db(database_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = store.create_database(database_url, name)
    yield url
    store.drop_database(database_url, name)


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_public_surface_is_stable() -> None:
    # The contract other packages build on: adding or removing a name is a deliberate change here.
    assert sorted(store.__all__) == [
        "ACTIONS",
        "APP_ROLE",
        "AREAS",
        "AREA_ACTIONS",
        "ApiKeys",
        "AuditLog",
        "CLIENT_ID_PATTERN",
        "CONNECTION_STATUSES",
        "CONNECTOR_STATUSES",
        "Charge",
        "Conflict",
        "ConnectionAuthInvalid",
        "ConnectionNeedsReconnect",
        "Connections",
        "ConnectorRef",
        "Connectors",
        "Customers",
        "DEFAULT_ENVIRONMENTS",
        "DEFAULT_LIMIT",
        "DIMENSIONS",
        "DRAFT_VERSION",
        "Database",
        "DatabaseUnavailable",
        "DecryptionFailed",
        "ENFORCEMENT_MODES",
        "EXECUTION_STATUSES",
        "EmbeddedPostgres",
        "EmbeddedPostgresError",
        "EncryptionError",
        "Encryptor",
        "Environments",
        "Executions",
        "IdempotencyKeys",
        "InvalidInput",
        "KEY_KINDS",
        "KeyRotationRefused",
        "KeyringInsecure",
        "ListQuery",
        "MAX_CREDENTIAL_LENGTH",
        "MAX_LIMIT",
        "MAX_SECRET_BYTES",
        "MIGRATIONS",
        "MasterKeyInvalid",
        "MasterKeyMissing",
        "MasterKeyring",
        "Migration",
        "MigrationFailed",
        "MigrationMismatch",
        "NotFound",
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
        "Page",
        "QueryFailed",
        "QuotaExceeded",
        "Quotas",
        "RESIDENCIES",
        "ResourceError",
        "Roles",
        "RotationReport",
        "SECRET_NAME_PATTERN",
        "SchemaError",
        "SchemaTooNew",
        "Secrets",
        "StoreError",
        "TRIGGER_KINDS",
        "Triggers",
        "Tx",
        "USER_STATUSES",
        "Users",
        "VERSION_STATES",
        "ValueNotStorable",
        "WORKFLOW_STATUSES",
        "WORKFLOW_TYPES",
        "WindowUsage",
        "Workflows",
        "app_conninfo",
        "charge_quota",
        "check_limits",
        "check_permissions",
        "connection_purpose",
        "create_database",
        "current_version",
        "drop_database",
        "exceeding_permissions",
        "has_changes",
        "has_organizations",
        "hash_key",
        "latest_version",
        "load_connector",
        "master_key_id",
        "migrate",
        "new_id",
        "resolve_conninfo",
        "rotate_master_key",
        "set_app_password",
        "start_embedded",
        "state_org",
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

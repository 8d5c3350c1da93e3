"""Explicit, append-only schema migrations.

The position of a migration in ``MIGRATIONS`` is its version number (the first is version 1).
Never edit or reorder one that has shipped: add a new one at the end. ``migrate`` checks the
recorded names against this list and refuses a database whose history differs.

Migrations run only when ``migrate()`` is called (by ``switchboard db migrate``,
``switchboard run`` or a test), never on import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from store._db import DEFAULT_CONNECT_TIMEOUT, error_reason, connect
from store._schema import apply_platform_schema
from store.errors import MigrationFailed, MigrationMismatch, SchemaTooNew

# Arbitrary constant shared by every Switchboard process: migrate() holds this advisory lock so
# two processes starting at once (API and worker) do not apply the same migration twice.
_MIGRATION_LOCK_KEY = 0x5357_4954_4348  # "SWITCH"


@dataclass(frozen=True)
class Migration:
    """One schema change: ``apply`` is SQL text, or a callable given the open connection.

    Each migration runs in its own transaction together with the row that records it, so a
    failure leaves the database at the previous version.
    """

    name: str
    apply: str | Callable[[psycopg.Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    # pgvector backs the connector catalog's semantic search.
    Migration("m001_pgvector", "CREATE EXTENSION IF NOT EXISTS vector"),
    Migration("m002_platform", apply_platform_schema),
    # The interpreter's run record, kept with the execution so a run can be replayed offline.
    Migration("m003_execution_records", "ALTER TABLE executions ADD COLUMN record jsonb"),
)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The version a fully migrated database has for ``migrations``."""
    return len(migrations)


def _recorded(conn: psycopg.Connection) -> dict[int, str]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    return dict(conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall())


def _check_history(recorded: dict[int, str], migrations: Sequence[Migration]) -> None:
    if recorded and max(recorded) > len(migrations):
        raise SchemaTooNew(max(recorded), len(migrations))
    for version, name in recorded.items():
        expected = migrations[version - 1].name
        if name != expected:
            raise MigrationMismatch(version, name, expected)


def migrate(conninfo: str, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every migration the database at ``conninfo`` lacks; return the versions applied, in order.

    Idempotent: a fully migrated database yields ``[]``. Raises ``SchemaTooNew`` or
    ``MigrationMismatch`` when the recorded history does not fit ``migrations``,
    ``MigrationFailed`` when one fails (earlier ones stay applied), and ``DatabaseUnavailable``.
    """
    applied: list[int] = []
    with connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            recorded = _recorded(conn)
            _check_history(recorded, migrations)
            for version, migration in enumerate(migrations, start=1):
                if version in recorded:
                    continue
                try:
                    with conn.transaction():
                        if isinstance(migration.apply, str):
                            conn.execute(migration.apply)
                        else:
                            migration.apply(conn)
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (version, migration.name),
                        )
                except psycopg.Error as exc:
                    raise MigrationFailed(version, migration.name, error_reason(exc)) from exc
                applied.append(version)
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))
            except psycopg.Error:
                pass  # the connection is gone, and with it the session-level lock
    return applied


def current_version(conninfo: str, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT) -> int:
    """Return the highest migration version recorded in the database, 0 for a fresh database.

    Raises ``DatabaseUnavailable`` when the database cannot be reached within ``connect_timeout`` seconds.
    """
    with connect(conninfo, autocommit=True, connect_timeout=connect_timeout) as conn:
        recorded = _recorded(conn)
    return max(recorded, default=0)

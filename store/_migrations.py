"""Explicit, append-only schema migrations.

The position of a migration in ``MIGRATIONS`` is its version number (the first is version 1).
Never edit or reorder one that has shipped: add a new one at the end. ``schema_migrations``
records each applied migration's name and checksum (sha256 of its SQL text); ``migrate`` and
``migration_status`` refuse a database whose recorded history differs from this list
(``MigrationMismatch`` for a name, ``MigrationChanged`` for a checksum).

Migrations run only when ``migrate()`` is called (by ``switchboard db migrate``,
``switchboard run`` or a test), never on import.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from store._db import DEFAULT_CONNECT_TIMEOUT, error_reason, connect
from store._agent_usage import AGENT_USAGE_SCHEMA
from store._catalog import CATALOG_SCHEMA
from store._schema import DURABLE_EXECUTIONS, EXECUTION_CONTROL, PLATFORM_SCHEMA
from store._polls import POLLS_SCHEMA
from store._rate_limits import RATE_LIMITS_SCHEMA
from store._sandboxes import SANDBOXES_SCHEMA
from store._schedules import SCHEDULES_MIGRATION
from store._schema_alerts import ALERTS_SCHEMA
from store._schema_events import EVENTS_SCHEMA
from store._threads import THREADS_SCHEMA
from store._subscriptions import SUBSCRIPTIONS_SCHEMA
from store._waits import DURABLE2_SCHEMA
from store.errors import MigrationChanged, MigrationFailed, MigrationMismatch, SchemaTooNew

# Arbitrary constant shared by every Switchboard process: migrate() holds this advisory lock so
# two processes starting at once (API and worker) do not apply the same migration twice.
_MIGRATION_LOCK_KEY = 0x5357_4954_4348  # "SWITCH"


@dataclass(frozen=True)
class Migration:
    """One schema change: ``apply`` is SQL text, or a callable given the open connection.

    Each migration runs in its own transaction together with the row that records it, so a
    failure leaves the database at the previous version. Prefer SQL text: its checksum covers
    every statement. A callable's checksum covers only its own source code, not what it calls.
    """

    name: str
    apply: str | Callable[[psycopg.Connection], None]

    @property
    def checksum(self) -> str:
        """sha256 (hex) of the SQL text, or of a callable's source; recorded when the migration is applied."""
        if isinstance(self.apply, str):
            text = self.apply
        else:
            try:
                text = inspect.getsource(self.apply)
            except (OSError, TypeError):
                # No source to read (defined in a REPL, or a builtin): its name is all there is.
                text = f"{self.apply.__module__}.{self.apply.__qualname__}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    """One migration of the code as the database knows it: ``applied_at`` is None while pending."""

    version: int
    name: str
    checksum: str
    applied_at: datetime | None

    @property
    def applied(self) -> bool:
        """True once the database has recorded this migration."""
        return self.applied_at is not None


MIGRATIONS: tuple[Migration, ...] = (
    # pgvector backs the connector catalog's semantic search.
    Migration("m001_pgvector", "CREATE EXTENSION IF NOT EXISTS vector"),
    Migration("m002_platform", PLATFORM_SCHEMA),
    # The interpreter's run record, kept with the execution so a run can be replayed offline.
    Migration("m003_execution_records", "ALTER TABLE executions ADD COLUMN record jsonb"),
    # Durable executions: tiers, triggers, the queued/timeout/cancelled statuses and process leases.
    Migration("m004_durable_executions", DURABLE_EXECUTIONS),
    # Incoming events (webhook deliveries first), stored before anything runs: store/_schema_events.py.
    Migration("m005_events", EVENTS_SCHEMA),
    # Schedules: one row per scheduled deployment and customer, with its next slot: store/_schedules.py.
    Migration("m006_schedules", SCHEDULES_MIGRATION),
    # Overlap turns, cancel and re-run from the failed step (store/_schema.py EXECUTION_CONTROL).
    Migration("m007_execution_control", EXECUTION_CONTROL),
    # The connector catalog: embeddings (HNSW) and full-text documents of connectors and actions.
    Migration("m008_catalog", CATALOG_SCHEMA),
    # App events by polling: a cursor per polled workflow and customer, and the records seen: store/_polls.py.
    Migration("m009_polling", POLLS_SCHEMA),
    # Hosted sandboxes: imported connectors' documents, sandbox seeds, connections.target
    # (store/_sandboxes.py).
    Migration("m010_sandboxes", SANDBOXES_SCHEMA),
    # Agent threads, their runs and events, and LangGraph's checkpoint tables with row-level
    # security on the organization's namespace (store/_threads.py).
    Migration("m011_threads", THREADS_SCHEMA),
    # Agent usage: a ledger of model calls (tokens, credits) per run, thread and organization, and
    # organizations.agent_credits, an organization's own allowance (store/_agent_usage.py).
    Migration("m012_agent_usage", AGENT_USAGE_SCHEMA),
    # Per-connection rate limits shared by every process: a schedule row per organization and
    # connection (store/_rate_limits.py). Numbered 13: m011_threads and m012_agent_usage come first.
    Migration("m013_rate_limits", RATE_LIMITS_SCHEMA),
    # Alerts, outbound notifications and the platform's own events (store/_schema_alerts.py).
    Migration("m014_alerts", ALERTS_SCHEMA),
    # Tier escalations and carried calls of executions, Long executions' event waits
    # (store/_waits.py) and webhook-style app event subscriptions (store/_subscriptions.py).
    Migration("m015_durable2", DURABLE2_SCHEMA + SUBSCRIPTIONS_SCHEMA),
)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
-- Added after the first release: rows applied before it get the code's checksum at the next migrate().
ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text
"""


@dataclass(frozen=True)
class _Row:
    name: str
    checksum: str | None
    applied_at: datetime


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The version a fully migrated database has for ``migrations``."""
    return len(migrations)


def _recorded(conn: psycopg.Connection) -> dict[int, _Row]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    # Through to_jsonb so that a table from before the checksum column reads as NULL checksums
    # without altering it (migration_status only reads).
    rows = conn.execute(
        "SELECT version, name, to_jsonb(m) ->> 'checksum', applied_at FROM schema_migrations m ORDER BY version"
    ).fetchall()
    return {version: _Row(name, checksum, applied_at) for version, name, checksum, applied_at in rows}


def _check_history(recorded: dict[int, _Row], migrations: Sequence[Migration]) -> None:
    if recorded and max(recorded) > len(migrations):
        raise SchemaTooNew(max(recorded), len(migrations))
    for version, row in recorded.items():
        migration = migrations[version - 1]
        if row.name != migration.name:
            raise MigrationMismatch(version, row.name, migration.name)
        # No checksum: applied before checksums were recorded; migrate() records the code's.
        if row.checksum is not None and row.checksum != migration.checksum:
            raise MigrationChanged(version, migration.name, row.checksum, migration.checksum)


def migration_status(
    conninfo: str, migrations: Sequence[Migration] = MIGRATIONS, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
) -> list[MigrationState]:
    """Every migration of ``migrations``, in order, with when the database at ``conninfo`` applied it.

    Reads only. Raises what ``migrate`` would refuse with: ``SchemaTooNew``, ``MigrationMismatch``,
    ``MigrationChanged`` (an applied migration's checksum differs from the code's); and
    ``DatabaseUnavailable``.
    """
    with connect(conninfo, autocommit=True, connect_timeout=connect_timeout) as conn:
        recorded = _recorded(conn)
    _check_history(recorded, migrations)
    return [
        MigrationState(version, m.name, m.checksum, recorded[version].applied_at if version in recorded else None)
        for version, m in enumerate(migrations, start=1)
    ]


def migrate(conninfo: str, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every migration the database at ``conninfo`` lacks; return the versions applied, in order.

    Idempotent: a fully migrated database yields ``[]``. Raises ``SchemaTooNew``,
    ``MigrationMismatch`` or ``MigrationChanged`` when the recorded history does not fit ``migrations``
    (before applying anything),
    ``MigrationFailed`` when one fails (earlier ones stay applied), and ``DatabaseUnavailable``.
    """
    applied: list[int] = []
    with connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            recorded = _recorded(conn)
            _check_history(recorded, migrations)
            for version, row in recorded.items():
                if row.checksum is None:
                    conn.execute(
                        "UPDATE schema_migrations SET checksum = %s WHERE version = %s AND checksum IS NULL",
                        (migrations[version - 1].checksum, version),
                    )
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
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (version, migration.name, migration.checksum),
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

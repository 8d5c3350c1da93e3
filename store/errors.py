"""Errors of the store. psycopg and pgserver exceptions never leave ``store/``; they are
translated into these at the boundary (``store._db.translate_errors``).

Hierarchy::

    StoreError                      root; code "store_error", HTTP 500
    ├── DatabaseUnavailable         cannot connect, or the connection dropped; HTTP 503
    ├── EmbeddedPostgresError       the embedded server (pgserver) failed to start; HTTP 503
    ├── QueryFailed                 the database rejected a statement; HTTP 500
    └── SchemaError                 the schema cannot be brought to this code's version; HTTP 500
        ├── MigrationFailed         a migration failed to apply (and was rolled back)
        ├── SchemaTooNew            the database is ahead of this code
        └── MigrationMismatch       a recorded migration has a different name than the code's

Every error builds its message from typed fields and carries ``code`` and ``http_status``,
which ``api/`` maps to a problem+json response.
"""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """Root of the errors raised by ``store``."""

    code: str = "store_error"
    http_status: int = 500


class DatabaseUnavailable(StoreError, ConnectionError):
    """The database could not be reached. ``reason`` is the driver's message, without credentials."""

    code = "database_unavailable"
    http_status = 503

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"database unavailable: {reason}")


class EmbeddedPostgresError(StoreError):
    """The embedded Postgres server in ``data_dir`` could not be started."""

    code = "embedded_postgres_failed"
    http_status = 503

    def __init__(self, data_dir: Path, reason: str) -> None:
        self.data_dir = data_dir
        self.reason = reason
        super().__init__(f"embedded Postgres in {data_dir} failed: {reason}")


class QueryFailed(StoreError):
    """The database rejected a statement. ``sqlstate`` is Postgres's five-character error code."""

    code = "query_failed"
    http_status = 500

    def __init__(self, sqlstate: str | None, reason: str) -> None:
        self.sqlstate = sqlstate
        self.reason = reason
        super().__init__(f"query failed ({sqlstate or 'no sqlstate'}): {reason}")


class SchemaError(StoreError):
    """The database schema cannot be brought to this code's version."""

    code = "schema_error"
    http_status = 500


class MigrationFailed(SchemaError):
    """Migration ``version`` (``name``) could not be applied; the database keeps the earlier version."""

    code = "migration_failed"

    def __init__(self, version: int, name: str, reason: str) -> None:
        self.version = version
        self.name = name
        self.reason = reason
        super().__init__(f"migration {version} ({name}) failed: {reason}")


class SchemaTooNew(SchemaError):
    """The database records migrations this code does not know; run a newer Switchboard."""

    code = "schema_too_new"

    def __init__(self, database_version: int, code_version: int) -> None:
        self.database_version = database_version
        self.code_version = code_version
        super().__init__(f"database schema is at version {database_version}, newer than this code's {code_version}")


class MigrationMismatch(SchemaError):
    """Version ``version`` is recorded as ``recorded_name`` but the code calls it ``expected_name``:
    a shipped migration was edited or reordered, which append-only migrations forbid."""

    code = "migration_mismatch"

    def __init__(self, version: int, recorded_name: str, expected_name: str) -> None:
        self.version = version
        self.recorded_name = recorded_name
        self.expected_name = expected_name
        super().__init__(
            f"migration {version} is recorded as {recorded_name!r} but this code names it {expected_name!r}"
        )

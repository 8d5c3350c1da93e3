"""The store: Postgres access for Switchboard. The only package that speaks SQL.

Public surface: the embedded server, migrations, database administration helpers and the
error hierarchy. Nothing here touches the database on import.
"""

from store._db import create_database, drop_database, with_database
from store._migrations import MIGRATIONS, Migration, current_version, latest_version, migrate
from store._server import EmbeddedPostgres, resolve_conninfo, start_embedded
from store.errors import (
    DatabaseUnavailable,
    EmbeddedPostgresError,
    MigrationFailed,
    MigrationMismatch,
    QueryFailed,
    SchemaError,
    SchemaTooNew,
    StoreError,
)

__all__ = [
    "MIGRATIONS",
    "DatabaseUnavailable",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "Migration",
    "MigrationFailed",
    "MigrationMismatch",
    "QueryFailed",
    "SchemaError",
    "SchemaTooNew",
    "StoreError",
    "create_database",
    "current_version",
    "drop_database",
    "latest_version",
    "migrate",
    "resolve_conninfo",
    "start_embedded",
    "with_database",
]

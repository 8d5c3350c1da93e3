"""The factories for DBOS, the durable execution engine: the URL of its system database (the
platform's own Postgres; its tables live in their own schema) and creating or upgrading its tables.

DBOS speaks SQLAlchemy over psycopg 3: the platform's conninfo (a ``postgresql://`` URL or libpq
``key=value`` text) becomes a ``postgresql+psycopg://`` URL.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict


def durable_database_url(conninfo: str) -> str:
    """``conninfo`` as the SQLAlchemy URL DBOS connects with (driver psycopg)."""
    from sqlalchemy.engine import URL

    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    # A socket directory or a list of hosts stays a query parameter (libpq reads it there).
    host = params.get("host", "")
    host = params.pop("host") if host and not host.startswith("/") and "," not in host else None
    port = params.pop("port", None) if host is not None else None
    url = URL.create(
        "postgresql+psycopg", username=params.pop("user", None), password=params.pop("password", None) or None,
        host=host, port=int(port) if port and port.isdigit() else None, database=params.pop("dbname", None),
        query=params,
    )
    return url.render_as_string(hide_password=False)


def migrate_durable(conninfo: str, schema: str = "dbos") -> None:
    """Create or upgrade DBOS's tables in ``schema`` of the database at ``conninfo`` (as the
    owner). Idempotent: DBOS records the version of its tables and applies only what is missing."""
    from dbos import DBOS

    DBOS.migrate(durable_database_url(conninfo), schema=schema)

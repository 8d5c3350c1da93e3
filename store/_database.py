"""The app's connection pool and the tenant transaction.

The pool connects as the app role (``switchboard_app``), which row-level security binds. Every
unit of work runs in ``Database.tenant(org_id, customer_id)``: one transaction whose first
statement sets ``app.org_id`` and ``app.customer_id`` with ``set_config(..., true)``. Those
settings end with the transaction, so a pooled connection never carries one request's tenant
into the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from store._db import connect, translate_errors
from store._schema import APP_ROLE
from store.errors import DatabaseUnavailable

DEFAULT_POOL_MIN = 1
DEFAULT_POOL_MAX = 10
# Seconds a request waits for a free connection before the store reports itself unavailable.
DEFAULT_POOL_TIMEOUT = 10.0

Tx = psycopg.Connection[dict[str, Any]]


def app_conninfo(admin_conninfo: str, password: str | None = None) -> str:
    """The conninfo of the app role on the same server and database as ``admin_conninfo``."""
    if password is None:
        return make_conninfo(admin_conninfo, user=APP_ROLE)
    return make_conninfo(admin_conninfo, user=APP_ROLE, password=password)


def set_app_password(admin_conninfo: str, password: str) -> None:
    """Set the app role's password (for servers that do not trust local connections)."""
    with connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(APP_ROLE), sql.Literal(password)))


class Database:
    """A pool of app-role connections. Open with ``Database.open(conninfo)`` or as a context manager."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    def open(
        cls,
        conninfo: str,
        *,
        min_size: int = DEFAULT_POOL_MIN,
        max_size: int = DEFAULT_POOL_MAX,
        timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> Database:
        """Open a pool on ``conninfo`` (the app role's). Raises ``DatabaseUnavailable`` when no
        connection can be made within ``timeout`` seconds."""
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"row_factory": dict_row},
            # A server restart leaves dead connections in the pool; check each before handing it out.
            check=ConnectionPool.check_connection,
            open=False,
            name="switchboard",
        )
        try:
            pool.open(wait=True, timeout=timeout)
        except Exception as exc:  # psycopg_pool.PoolTimeout, or a refused login
            pool.close()
            raise DatabaseUnavailable(f"cannot open a connection pool: {exc}") from exc
        return cls(pool)

    @classmethod
    @contextmanager
    def from_conn_string(cls, conninfo: str, **options: Any) -> Iterator[Database]:
        """Open a pool for the duration of a ``with`` block."""
        database = cls.open(conninfo, **options)
        try:
            yield database
        finally:
            database.close()

    @property
    def conninfo(self) -> str:
        """The conninfo the pool connects with (the app role's): what connections of their own,
        such as the checkpointer's, use."""
        return self._pool.conninfo

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tenant(self, org_id: str, customer_id: str | None = None) -> Iterator[Tx]:
        """A transaction bound to ``org_id`` (and ``customer_id`` when given).

        Yields the connection; commits when the block ends, rolls back when it raises. Row-level
        security confines every statement in it to that tenant. psycopg errors become
        ``StoreError`` subclasses.
        """
        if not org_id:
            raise ValueError("a tenant transaction needs an organization id")
        with translate_errors():
            with self._pool.connection() as conn:
                conn.execute(
                    "SELECT set_config('app.org_id', %s, true), set_config('app.customer_id', %s, true)",
                    (org_id, customer_id or ""),
                )
                yield conn


def execution_org(admin_conninfo: str, execution_id: str) -> str | None:
    """The organization execution ``execution_id`` belongs to, or None (asked as the owner, across
    tenants: the operator's ``workflow replay --execution`` names only the execution)."""
    with connect(admin_conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT org_id FROM executions WHERE id = %s", (execution_id,)).fetchone()
    return row[0] if row else None


def has_organizations(admin_conninfo: str) -> bool:
    """Whether any organization exists (asked as the owner, across tenants: a first-start check)."""
    with connect(admin_conninfo, autocommit=True) as conn:
        return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM organizations)").fetchone()[0])

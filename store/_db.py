"""Connections and the error boundary: the one place where psycopg exceptions become StoreErrors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from store.errors import (
    DatabaseUnavailable,
    OutsideTenantScope,
    QueryFailed,
    ValueNotStorable,
)

DEFAULT_CONNECT_TIMEOUT = 10

_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# SQLSTATE classes that mean "the server is not there for you" rather than "your statement is wrong":
# 08 connection exception, 57P admin shutdown / cannot connect now, 53 insufficient resources.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53")
# Data exceptions that mean "this text cannot be stored": a value the client sent, never a bug of
# ours. 22P02 comes from jsonb given an unpaired surrogate escape (only that one is taken: other
# 22P02s are malformed numbers and dates); 22P05 and 22021 from text.
_UNSTORABLE_SQLSTATES = frozenset({"22P05", "22021"})
_UNSTORABLE_REASON = "text must be valid Unicode without NUL characters"
# Postgres names the policy only when a restrictive one refused: 'policy "customer" for table "x"'
# or 'policy for table "x"' (and '(USING expression)' for an upsert).
_RLS_TABLE = re.compile(r'row-level security policy\b.* for table "([^"]+)"')


def _refusal(exc: psycopg.Error) -> Exception | None:
    """The client error a driver error stands for, or None when it is the server's."""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        # A WITH CHECK policy refused a row outside the transaction's tenant; any other 42501
        # (a missing grant, the append-only audit log) is a server fault.
        found = _RLS_TABLE.search(exc.diag.message_primary or "")
        return OutsideTenantScope(found.group(1)) if found else None
    if isinstance(exc, psycopg.DataError):
        # psycopg itself refuses a NUL in text before sending (no SQLSTATE).
        json_text = exc.sqlstate == "22P02" and "type json" in (exc.diag.message_primary or "")
        if json_text or exc.sqlstate in _UNSTORABLE_SQLSTATES or (exc.sqlstate is None and "NUL" in str(exc)):
            return ValueNotStorable(_UNSTORABLE_REASON)
    return None


def error_reason(exc: BaseException) -> str:
    """The first line of a driver error: the reason, without libpq's multi-line context."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn psycopg exceptions raised inside the block into ``StoreError`` subclasses.

    Connection-level failures become ``DatabaseUnavailable``; a row refused by row-level security
    ``OutsideTenantScope`` (403); text Postgres cannot store (a NUL, an unpaired surrogate)
    ``ValueNotStorable`` (422); everything else the driver raises ``QueryFailed`` with its SQLSTATE.
    """
    try:
        yield
    except psycopg.Error as exc:
        sqlstate = exc.sqlstate
        if isinstance(exc, psycopg.OperationalError) and (
            sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
        ):
            raise DatabaseUnavailable(error_reason(exc)) from exc
        refusal = _refusal(exc)
        if refusal is not None:
            raise refusal from exc
        raise QueryFailed(sqlstate, error_reason(exc)) from exc
    except UnicodeEncodeError:
        # psycopg encodes str parameters as UTF-8, which an unpaired surrogate cannot be. The
        # exception would quote the text, so it is not chained.
        raise ValueNotStorable(_UNSTORABLE_REASON) from None


@contextmanager
def connect(
    conninfo: str, *, autocommit: bool = False, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
) -> Iterator[psycopg.Connection]:
    """Open a connection, yield it, commit on success (unless autocommit) and close it.

    Raises ``DatabaseUnavailable`` when the server cannot be reached or ``conninfo`` is malformed,
    and ``QueryFailed`` for statements the database rejects inside the block.
    """
    try:
        conn = psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.ProgrammingError as exc:
        # libpq refuses a malformed connection string before any network traffic.
        raise DatabaseUnavailable(f"invalid database URL: {error_reason(exc)}") from exc
    except psycopg.Error as exc:
        raise DatabaseUnavailable(error_reason(exc)) from exc
    with translate_errors(), conn:
        yield conn


def with_database(conninfo: str, dbname: str) -> str:
    """Return ``conninfo`` pointing at database ``dbname`` on the same server, same credentials."""
    return make_conninfo(conninfo, dbname=dbname)


def _checked_name(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
    return name


def create_database(conninfo: str, name: str) -> str:
    """Create database ``name`` on the server of ``conninfo`` and return a conninfo for it.

    ``name`` must be a lower-case SQL identifier (``ValueError`` otherwise). Raises
    ``QueryFailed`` if it already exists, ``DatabaseUnavailable`` if the server cannot be reached.
    """
    with connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_checked_name(name))))
    return with_database(conninfo, name)


def drop_database(conninfo: str, name: str) -> None:
    """Drop database ``name`` (if it exists) on the server of ``conninfo``, closing its sessions."""
    with connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_checked_name(name))))

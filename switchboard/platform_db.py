"""The platform database as the CLI sees it: the admin conninfo (migrations, key rotation) and the
app role's pool (everything tenants do).

The app role's password: ``SWITCHBOARD_APP_DATABASE_PASSWORD`` when set; otherwise, locally, one is
generated into ``<data_dir>/app-db-password`` (mode 0600) and set on the role after migrating, so a
``DATABASE_URL`` server that requires passwords works with no extra setting. The embedded server
trusts local connections, where the password is simply unused.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

import store
from switchboard.settings import Settings

APP_PASSWORD_FILE = "app-db-password"


def _local_password(data_dir: Path) -> str:
    path = data_dir / APP_PASSWORD_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def with_app_password(settings: Settings) -> Settings:
    """``settings`` with ``app_database_password`` filled in (generated locally when unset).

    Unchanged when ``app_database_url`` is configured: then the operator manages the role.
    """
    if settings.app_database_url or settings.app_database_password:
        return settings
    return settings.model_copy(update={"app_database_password": SecretStr(_local_password(settings.data_dir))})


def prepare(settings: Settings, admin_conninfo: str, *, migrate: bool = True) -> tuple[Settings, list[int]]:
    """Migrate (optionally) and give the app role its password; returns the settings to run with
    and the migration versions applied.

    Without migrating, the recorded history is still checked: a database whose applied migrations
    differ from the code's (``store.MigrationChanged`` and the other ``store.SchemaError``) is
    refused either way.
    """
    if migrate:
        applied = store.migrate(admin_conninfo)
    else:
        store.migration_status(admin_conninfo)
        applied = []
    settings = with_app_password(settings)
    if not settings.app_database_url and settings.app_database_password:
        store.set_app_password(admin_conninfo, settings.app_database_password.get_secret_value())
    return settings, applied


def app_database_url(settings: Settings, admin_conninfo: str) -> str:
    """The app role's conninfo: ``app_database_url``, else the admin's server and database as
    ``switchboard_app`` with ``app_database_password``."""
    if settings.app_database_url:
        return settings.app_database_url
    password = settings.app_database_password.get_secret_value() if settings.app_database_password else None
    return store.app_conninfo(admin_conninfo, password)


@contextmanager
def open_platform(settings: Settings) -> Iterator[tuple[store.Database, str, Settings]]:
    """Start the database (embedded unless DATABASE_URL), migrate, and yield the app-role pool,
    the admin conninfo and the effective settings; stops what it started."""
    conninfo, embedded = store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
    try:
        settings, _ = prepare(settings, conninfo)
        with store.Database.from_conn_string(app_database_url(settings, conninfo), max_size=2) as db:
            yield db, conninfo, settings
    finally:
        if embedded is not None:
            embedded.stop()

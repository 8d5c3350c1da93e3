"""``switchboard db``: the database behind Switchboard (embedded or ``DATABASE_URL``)."""

from __future__ import annotations

import click

from switchboard.commands import load_settings


@click.group("db")
def db() -> None:
    """Manage the database: migrations and connection details."""


@db.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations and print what was applied."""
    import store

    settings = load_settings()
    conninfo, embedded = store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
    try:
        applied = store.migrate(conninfo)
        version = store.current_version(conninfo)
    finally:
        if embedded is not None:
            embedded.stop()
    names = {v: store.MIGRATIONS[v - 1].name for v in applied}
    for version_applied in applied:
        click.echo(f"applied {version_applied} {names[version_applied]}")
    click.echo(f"schema version {version}" + ("" if applied else " (already up to date)"))


@db.command("status")
def status_command() -> None:
    """Print each migration as applied or pending, and the schema version.

    Exits 1, naming the migration, when the database's history differs from the code's: an applied
    migration edited since (its checksum differs), renamed, or unknown to this code.
    """
    import store

    settings = load_settings()
    conninfo, embedded = store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
    try:
        states = store.migration_status(conninfo)
    finally:
        if embedded is not None:
            embedded.stop()
    width = max((len(state.name) for state in states), default=0)
    for state in states:
        when = f"applied {state.applied_at:%Y-%m-%d %H:%M:%S %Z}".rstrip() if state.applied_at else "pending"
        click.echo(f"{state.version:>4}  {state.name:<{width}}  {when}  sha256:{state.checksum[:12]}")
    version = max((state.version for state in states if state.applied), default=0)
    pending = sum(not state.applied for state in states)
    click.echo(f"schema version {version} of {len(states)}" + (f", {pending} pending" if pending else ""))


@db.command("url")
def url_command() -> None:
    """Print the database conninfo (for psql and other tools).

    Without DATABASE_URL this starts the embedded server and leaves it running, so the printed
    URL stays usable; the next `switchboard run` to exit stops it.
    """
    import store

    settings = load_settings()
    conninfo, _ = store.resolve_conninfo(settings.database_url, settings.pg_data_dir, keep_running=True)
    click.echo(conninfo)

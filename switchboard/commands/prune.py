"""``switchboard prune``: forget Activity older than the retention, once (workers also do it
periodically). What is pruned and how it avoids blocking writers: ``store/_retention.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from switchboard.commands import load_settings


@click.command("prune")
@click.option("--older-than-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Age to prune from [env SWITCHBOARD_RETENTION_DAYS, default 30].")
@click.option("--batch", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rows removed per transaction.")
def prune(older_than_days: float | None, batch: int) -> None:
    """Remove executions (with their traces), events and notification deliveries older than the
    retention, in batches; print how many of each."""
    import store

    settings = load_settings()
    days = older_than_days if older_than_days is not None else settings.retention_days
    if days is None:
        raise click.ClickException("no retention is set (SWITCHBOARD_RETENTION_DAYS) and --older-than-days is not given")
    conninfo, embedded = store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
    try:
        cutoff = datetime.now(UTC) - timedelta(days=days)
        report = store.prune(conninfo, cutoff, batch=batch)
    finally:
        if embedded is not None:
            embedded.stop()
    removed = ", ".join(f"{count} {name}" for name, count in report.removed.items())
    click.echo(f"pruned {removed} older than {cutoff:%Y-%m-%d %H:%M:%S %Z} in {report.batches} batches")

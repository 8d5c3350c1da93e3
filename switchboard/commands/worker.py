"""``switchboard worker``: run durable executions (Standard and Long tiers) from the shared queue.

Any number of workers, on any number of machines, share the work through the one Postgres. Each
needs its own stable ``--id``: a worker restarted with the same id resumes, at launch, the
executions its predecessor left unfinished.
"""

from __future__ import annotations

import asyncio
import signal

import click

from switchboard.commands import load_settings


async def _serve(settings, migrate: bool) -> None:
    import anyio.to_thread

    import store
    from switchboard.app import open_platform, worker_for
    from switchboard.platform_db import prepare

    conninfo, embedded = await anyio.to_thread.run_sync(
        lambda: store.resolve_conninfo(settings.database_url, settings.pg_data_dir))
    try:
        settings, applied = await anyio.to_thread.run_sync(lambda: prepare(settings, conninfo, migrate=migrate))
        if applied:
            click.echo(f"applied migrations {', '.join(map(str, applied))}", err=True)
        settings = settings.model_copy(update={"database_url": conninfo})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_platform(settings) as platform, worker_for(platform, settings) as worker:
            click.echo(f"Switchboard worker {worker.executor_id} running (process {platform.process_id})")
            await stop.wait()
    finally:
        if embedded is not None:
            await anyio.to_thread.run_sync(embedded.stop)


@click.command("worker")
@click.option("--id", "worker_id", default=None,
              help="This worker's stable id [env SWITCHBOARD_WORKER_ID, default: the host name].")
@click.option("--concurrency", type=int, default=None, help="Executions run at once [env SWITCHBOARD_WORKER_CONCURRENCY, default 8].")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply pending migrations first.")
def worker(worker_id: str | None, concurrency: int | None, migrate: bool) -> None:
    """Run durable executions (Standard and Long workflows) until stopped (SIGINT, SIGTERM)."""
    settings = load_settings(worker_id=worker_id, worker_concurrency=concurrency)
    asyncio.run(_serve(settings, migrate))

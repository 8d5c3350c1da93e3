"""``switchboard run``: start the database (embedded unless DATABASE_URL), migrate, serve the API."""

from __future__ import annotations

import signal
import sys

import click

from switchboard.commands import load_settings


def _exit_on_sigterm() -> None:
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it; with the default handler the
    # process would die there without running atexit hooks (pgserver's stop among them).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@click.command("run")
@click.option("--host", default=None, help="Interface to bind [env SWITCHBOARD_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port; 0 picks a free one [env PORT / SWITCHBOARD_PORT, default 8000].")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply pending migrations first.")
def run(host: str | None, port: int | None, migrate: bool) -> None:
    """Start Postgres (embedded unless DATABASE_URL), apply migrations and serve the API."""
    import uvicorn

    import store
    from api import create_app

    settings = load_settings(host=host, port=port)
    conninfo, embedded = store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
    try:
        if migrate:
            applied = store.migrate(conninfo)
            if applied:
                click.echo(f"applied migrations {', '.join(map(str, applied))}", err=True)
        app = create_app(settings.model_copy(update={"database_url": conninfo}))
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=True, lifespan="on"
        )
        server = uvicorn.Server(config)
        sock = config.bind_socket()  # bound before printing, so the printed port is the real one
        bound_host, bound_port = sock.getsockname()[:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        where = f"embedded Postgres in {embedded.data_dir}" if embedded else "DATABASE_URL"
        click.echo(f"Switchboard API on http://{url_host}:{bound_port} (database: {where})")
        sys.stdout.flush()
        _exit_on_sigterm()
        server.run(sockets=[sock])
    finally:
        if embedded is not None:
            embedded.stop()

"""``switchboard run``: start the database (embedded unless DATABASE_URL), migrate, serve the API."""

from __future__ import annotations

import signal
import socket
import sys

import click

from switchboard.commands import load_settings


def _exit_on_signals() -> None:
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal. With the
    # default handlers SIGTERM would kill the process without running atexit hooks (pgserver's stop
    # among them) and SIGINT would end in a KeyboardInterrupt traceback; exit with 128+signal instead.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: sys.exit(128 + received))


def _listen_socket(host: str, port: int) -> socket.socket:
    # Bound here rather than by uvicorn so that a busy port is one clear error and the printed
    # address carries the real port when PORT=0.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (no Nagle stalls).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _first_start(settings, conninfo: str) -> None:
    # A new user's first `make run`: an empty data directory and a database with no organization
    # get a local organization, a Live key and a customer, written where curl examples find them.
    import store
    from switchboard import bootstrap
    from switchboard.platform_db import app_database_url

    if (settings.data_dir / bootstrap.DEV_CREDENTIALS_FILE).exists():
        return
    with store.Database.from_conn_string(app_database_url(settings, conninfo), max_size=1) as db:
        if store.has_organizations(conninfo):
            return
        credentials = bootstrap.bootstrap_local(db, settings.data_dir)
    if credentials is None:
        return
    path = settings.data_dir / bootstrap.DEV_CREDENTIALS_FILE
    click.echo(
        "First start: created a local organization, a Live API key and a customer "
        f"(saved to {path}):\n"
        f"  x-fastn-account-id:        {credentials.account_id}\n"
        f"  x-fastn-access-key:        {credentials.access_key}\n"
        f"  x-fastn-account-tenant-id: {credentials.tenant_id}"
    )


@click.command("run")
@click.option("--host", default=None, help="Interface to bind [env SWITCHBOARD_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port; 0 picks a free one [env PORT / SWITCHBOARD_PORT, default 8000].")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply pending migrations first.")
@click.option("--worker/--no-worker", "with_worker", default=True, show_default=True,
              help="Also run a durable worker in this process (Standard and Long workflows).")
def run(host: str | None, port: int | None, migrate: bool, with_worker: bool) -> None:
    """Start Postgres (embedded unless DATABASE_URL), apply migrations and serve the API (and, by
    default, a durable worker in the same process)."""
    import uvicorn

    import store
    from switchboard.app import create_app
    from switchboard.platform_db import prepare

    settings = load_settings(host=host, port=port)
    _exit_on_signals()
    conninfo, embedded = store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
    try:
        settings, applied = prepare(settings, conninfo, migrate=migrate)
        if applied:
            click.echo(f"applied migrations {', '.join(map(str, applied))}", err=True)
        _first_start(settings, conninfo)
        updates: dict[str, object] = {"database_url": conninfo}
        if with_worker and settings.worker_id is None:
            # Not the host name: that is a separate `switchboard worker`'s default id on this host.
            updates["worker_id"] = f"{socket.gethostname()}-run"
        app = create_app(settings.model_copy(update=updates), worker=with_worker)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=True, lifespan="on"
        )
        server = uvicorn.Server(config)
        sock = _listen_socket(settings.host, settings.port)
        bound_host, bound_port = sock.getsockname()[:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        where = f"embedded Postgres in {embedded.data_dir}" if embedded else "DATABASE_URL"
        click.echo(f"Switchboard API on http://{url_host}:{bound_port} (database: {where})")
        sys.stdout.flush()
        server.run(sockets=[sock])
    finally:
        if embedded is not None:
            embedded.stop()

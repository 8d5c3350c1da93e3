"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

import store
from api import _health
from api.errors import install_error_handlers
from switchboard.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: ``get_settings()``).

    On startup the app uses ``settings.database_url`` or, when it is None, starts (or joins) the
    embedded Postgres under ``settings.pg_data_dir``, and stops it on shutdown. It does not
    migrate: that is ``switchboard db migrate`` or ``switchboard run``.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conninfo, embedded = await anyio.to_thread.run_sync(
            lambda: store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
        )
        app.state.conninfo = conninfo
        try:
            yield
        finally:
            if embedded is not None:
                await anyio.to_thread.run_sync(embedded.stop)

    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        summary="Open integration platform: agents build integrations, a deterministic engine runs them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(_health.router)
    return app

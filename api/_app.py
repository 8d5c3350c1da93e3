"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import _health, _hooks, _limits, _openapi, _quota, _v1
from api.errors import install_error_handlers
from runtime import Config, Platform, recover_events

API_VERSION = "0.1.0"

PlatformOpener = Callable[[], AbstractAsyncContextManager[Platform]]


def create_app(open_platform: PlatformOpener, config: Config | None = None) -> FastAPI:
    """Build the API over the platform ``open_platform()`` yields while the app runs.

    The process shell (``switchboard.app.create_app``) passes an opener that starts or joins the
    database, loads the keyring and opens the HTTP client; tests may pass their own. Nothing is
    opened before the app starts, so the OpenAPI document can be built without a database.
    ``config`` is what the routes read of the settings (it must match the platform's).
    """
    config = config or Config()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_platform() as platform:
            app.state.platform = platform
            app.state.config = platform.config
            # The route class audits through the pool directly.
            app.state.db = platform.db
            # Events a crash left between their acknowledgement and their dispatch run now, without
            # holding up the start.
            recovery = asyncio.create_task(recover_events(platform), name="recover events")
            try:
                yield
            finally:
                recovery.cancel()
                await asyncio.gather(recovery, return_exceptions=True)
                await platform.dispatcher.aclose()

    # FastAPIOffline serves the Swagger UI and ReDoc assets from the package instead of a CDN,
    # so /docs works on a machine without internet.
    app = FastAPIOffline(
        title="Switchboard",
        version=API_VERSION,
        summary="Open integration platform: agents build integrations, a deterministic engine runs them.",
        lifespan=lifespan,
    )
    app.state.config = config
    install_error_handlers(app)
    _quota.install(app)
    _limits.install(app, default_limit=config.max_request_bytes, spec_limit=config.max_spec_request_bytes)
    app.include_router(_health.router)
    app.include_router(_hooks.router)
    app.include_router(_hooks.app_events_router)
    _v1.install(app)
    app.openapi = lambda: _openapi.document_problem_responses(app)  # type: ignore[method-assign]
    return app

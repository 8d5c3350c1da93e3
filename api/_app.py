"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

import agents
from api import _health, _hooks, _limits, _openapi, _quota, _v1
from api.errors import install_error_handlers
from runtime import Config, Platform, recover_events
from tools import ToolContext

API_VERSION = "0.1.0"

PlatformOpener = Callable[[], AbstractAsyncContextManager[Platform]]


def default_graph_factory(name: str, ctx: ToolContext, checkpointer: Any) -> Any:
    """The platform's graphs (``agents.build_graph``) with the model of the settings."""
    return agents.build_graph(name, ctx, checkpointer=checkpointer)


def create_app(open_platform: PlatformOpener, config: Config | None = None, *,
               graph_factory: agents.GraphFactory | None = None, graphs: tuple[str, ...] | None = None) -> FastAPI:
    """Build the API over the platform ``open_platform()`` yields while the app runs.

    The process shell (``switchboard.app.create_app``) passes an opener that starts or joins the
    database, loads the keyring and opens the HTTP client; tests may pass their own. Nothing is
    opened before the app starts, so the OpenAPI document can be built without a database.
    ``config`` is what the routes read of the settings (it must match the platform's).
    ``graph_factory`` builds the graphs threads run (default: ``agents.build_graph``), ``graphs``
    the names a thread may choose (default: ``agents.GRAPHS``).
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
            app.state.threads = agents.Threads(platform, graph_factory or default_graph_factory,
                                               graphs=graphs or agents.GRAPHS)
            try:
                yield
            finally:
                # The runs of this process end cancelled (their events say so) rather than busy.
                await app.state.threads.aclose()
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
    _v1.install(app)
    app.openapi = lambda: _openapi.document_problem_responses(app)  # type: ignore[method-assign]
    return app

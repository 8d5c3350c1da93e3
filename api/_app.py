"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

import agents
from api import _health, _hooks, _langgraph, _limits, _openapi, _quota, _v1
from api.errors import install_error_handlers
from runtime import Config, Platform, recover_events
from tools import ToolContext

API_VERSION = "0.1.0"

PlatformOpener = Callable[[], AbstractAsyncContextManager[Platform]]


def default_graph_factory(name: str, ctx: ToolContext, checkpointer: Any) -> Any:
    """The platform's graphs (``agents.build_graph``) with the offline model."""
    return agents.build_graph(name, ctx, checkpointer=checkpointer)


def model_graph_factory(model: agents.ModelSetting) -> agents.GraphFactory:
    """The platform's graphs with the chat model ``model`` (offline: each graph's own plan)."""
    chosen = None if model.provider == "offline" else model

    def factory(name: str, ctx: ToolContext, checkpointer: Any) -> Any:
        return agents.build_graph(name, ctx, model=chosen, checkpointer=checkpointer)

    return factory


def metered_runs(platform: Platform, model: agents.ModelSetting) -> agents.RunCallbacks:
    """Each thread run's credit meter: model calls refused at no credits left, and counted in the
    ledger per run, thread, customer and organization."""

    def callbacks(principal: Any, thread: dict[str, Any], run_id: str) -> list[Any]:
        return agents.usage_callbacks(platform, principal.org_id, thread["id"], run_id, model,
                                      customer_id=thread.get("customer_id"))

    return callbacks


def run_context(documents: Path | None) -> agents.ContextFactory:
    """The tools' context of a thread run: the poster, the thread's customer, the platform's credits
    (the policy hook refuses tool calls at none left) and the local folder of API documents."""

    def context(platform: Platform, principal: Any, thread: dict[str, Any]) -> ToolContext:
        return ToolContext(platform=platform, principal=principal, customer_id=thread.get("customer_id"),
                           thread_id=thread["id"], credits=platform.credits, documents=documents)

    return context


def create_app(open_platform: PlatformOpener, config: Config | None = None, *,
               graph_factory: agents.GraphFactory | None = None, graphs: tuple[str, ...] | None = None,
               run_callbacks: agents.RunCallbacks | None = None, model: agents.ModelSetting | None = None,
               documents: Path | None = None) -> FastAPI:
    """Build the API over the platform ``open_platform()`` yields while the app runs.

    The process shell (``switchboard.app.create_app``) passes an opener that starts or joins the
    database, loads the keyring and opens the HTTP client; tests may pass their own. Nothing is
    opened before the app starts, so the OpenAPI document can be built without a database.
    ``config`` is what the routes read of the settings (it must match the platform's).
    ``graph_factory`` builds the graphs threads run (default: ``agents.build_graph``), ``graphs``
    the names a thread may choose (default: ``agents.GRAPHS``), ``run_callbacks`` the callback
    handlers each thread run gets (default: the credit meter), ``model`` the agents' chat model
    (default: offline) and ``documents`` a folder of API documents the agents' discovery searches.
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
            chat = model or agents.ModelSetting()
            # The LangGraph routes see each run's own graph stream through taps on the factory.
            app.state.langgraph_taps = taps = _langgraph.RunTaps()
            app.state.threads = agents.Threads(platform, taps.wrap(graph_factory or model_graph_factory(chat)),
                                               graphs=graphs or agents.GRAPHS,
                                               callbacks=run_callbacks or metered_runs(platform, chat),
                                               context=run_context(documents))
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
    app.include_router(_hooks.app_events_router)
    _v1.install(app)
    app.openapi = lambda: _openapi.document_problem_responses(app)  # type: ignore[method-assign]
    return app

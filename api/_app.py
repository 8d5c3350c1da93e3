"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio.to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

import store
from api import _health, _limits, _openapi, _quota, _v1
from api._oidc import OidcVerifier
from api.errors import install_error_handlers
from switchboard.engine_runtime import build_http_client
from switchboard.platform_db import app_database_url
from switchboard.settings import Settings, get_settings

API_VERSION = "0.1.0"


def _now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: ``get_settings()``).

    On startup the app uses ``settings.database_url`` or, when it is None, starts (or joins) the
    embedded Postgres under ``settings.pg_data_dir``, opens a pool as the app role, loads the
    master keyring, and stops what it started on shutdown. It does not migrate: that is
    ``switchboard db migrate`` or ``switchboard run``. ``clock`` replaces the wall clock (quotas).
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conninfo, embedded = await anyio.to_thread.run_sync(
            lambda: store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
        )
        app.state.conninfo = conninfo
        keyring = await anyio.to_thread.run_sync(
            lambda: store.MasterKeyring.from_settings(
                settings.master_key, settings.master_key_path, production=settings.mode == "production"
            )
        )
        app.state.encryptor = store.Encryptor(keyring)
        # min_size=0: the pool connects on first use, so /health answers (503, "run db migrate")
        # on a database the app role cannot use yet.
        app.state.db = store.Database.open(app_database_url(settings, conninfo), min_size=0)
        app.state.oidc = OidcVerifier.from_settings(settings)
        # One guarded outbound client for the process: connection tests, OAuth and runs share
        # its connection pool (a client per request costs ~18 ms).
        app.state.http = build_http_client(settings)
        try:
            yield
        finally:
            await app.state.http.aclose()
            app.state.db.close()
            if app.state.oidc is not None:
                app.state.oidc.close()
            if embedded is not None:
                await anyio.to_thread.run_sync(embedded.stop)

    # FastAPIOffline serves the Swagger UI and ReDoc assets from the package instead of a CDN,
    # so /docs works on a machine without internet.
    app = FastAPIOffline(
        title="Switchboard",
        version=API_VERSION,
        summary="Open integration platform: agents build integrations, a deterministic engine runs them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock or _now
    install_error_handlers(app)
    _quota.install(app)
    _limits.install(app, default_limit=settings.max_request_bytes, spec_limit=settings.max_spec_request_bytes)
    app.include_router(_health.router)
    _v1.install(app)
    app.openapi = lambda: _openapi.document_problem_responses(app)  # type: ignore[method-assign]
    return app

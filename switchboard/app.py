"""The process's Platform and the API over it, built from settings.

:func:`open_platform` starts (or joins) the database, loads the master keyring, opens the app
role's pool, the guarded HTTP client and the OIDC verifier, and yields the one
:class:`runtime.Platform` the API, workers and tools share; it closes them on the way out.
:func:`create_app` is the API for ``switchboard run`` and the tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import anyio.to_thread
from fastapi import FastAPI

import api
import store
from api import OidcVerifier
from engine.expressions import ExpressionBudget
from engine.http import HttpClient
from runtime import Config, Embedder, Platform, ProcessLease, build_embedder, utc_now
from switchboard.engine_runtime import build_http_client
from switchboard.platform_db import app_database_url
from switchboard.settings import Settings, get_settings

if TYPE_CHECKING:
    from agents import GraphFactory
    from runtime import Worker


def runtime_config(settings: Settings) -> Config:
    """What the runtime and the API read of ``settings``."""
    seconds = settings.expression_budget_seconds
    budget = ExpressionBudget(seconds=seconds, evaluation_seconds=min(seconds, ExpressionBudget().evaluation_seconds))
    return Config(
        run_deadline=settings.run_deadline_seconds,
        standard_deadline=settings.standard_deadline_seconds,
        long_deadline=settings.long_deadline_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        lease_seconds=settings.lease_seconds,
        durable_schema=settings.durable_schema,
        expression_budget=budget,
        mode=settings.mode,
        egress_allow=tuple(settings.egress_allow),
        public_url=settings.public_url,
        oidc_org_claim=settings.oidc_org_claim,
        max_request_bytes=settings.max_request_bytes,
        max_spec_request_bytes=settings.max_spec_request_bytes,
        max_event_bytes=settings.max_event_bytes,
    )


def build_catalog_embedder(settings: Settings, http: HttpClient) -> Embedder:
    """The catalog's embedder for ``settings.embedder``; an ``openai:`` one sends through ``http``."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return build_embedder(settings.embedder, http, base_url=settings.openai_base_url, api_key=key)


@asynccontextmanager
async def open_platform(settings: Settings, *, clock: Callable[[], datetime] | None = None,
                        worker: bool = False) -> AsyncIterator[Platform]:
    """The platform for ``settings``: ``database_url``, or the embedded Postgres under
    ``pg_data_dir`` (started or joined, and stopped if this call started it). It does not migrate:
    that is ``switchboard db migrate`` or ``switchboard run``. ``clock`` replaces the wall clock.

    The process holds a lease while the platform is open (``runtime.ProcessLease``: the inline
    executions of gone processes are failed when it starts and with each heartbeat); with
    ``worker`` it also runs a durable worker (``runtime.Worker``) in-process."""
    conninfo, embedded = await anyio.to_thread.run_sync(
        lambda: store.resolve_conninfo(settings.database_url, settings.pg_data_dir)
    )
    try:
        keyring = await anyio.to_thread.run_sync(
            lambda: store.MasterKeyring.from_settings(
                settings.master_key, settings.master_key_path, production=settings.mode == "production"
            )
        )
        # min_size=0: the pool connects on first use, so /health answers (503, "run db migrate")
        # on a database the app role cannot use yet.
        db = store.Database.open(app_database_url(settings, conninfo), min_size=0)
        oidc = OidcVerifier.from_settings(settings)
        # One guarded outbound client for the process: connection tests, OAuth and runs share
        # its connection pool (a client per request costs ~18 ms).
        http = build_http_client(settings)
        platform = Platform(db=db, encryptor=store.Encryptor(keyring), http=http, conninfo=conninfo,
                            clock=clock or utc_now, oidc=oidc, config=runtime_config(settings),
                            embedder=build_catalog_embedder(settings, http))
        try:
            if worker:
                async with worker_for(platform, settings):
                    yield platform
            else:
                async with ProcessLease(platform, "api"):
                    yield platform
        finally:
            platform.close()
            await http.aclose()
            db.close()
            if oidc is not None:
                oidc.close()
    finally:
        if embedded is not None:
            await anyio.to_thread.run_sync(embedded.stop)


def worker_for(platform: Platform, settings: Settings, *, executor_id: str | None = None) -> Worker:
    """A durable worker over ``platform``, configured from ``settings``."""
    from runtime import Worker

    return Worker(platform, executor_id=executor_id or settings.worker_id, concurrency=settings.worker_concurrency,
                  polling_seconds=settings.worker_poll_seconds, schedule_seconds=settings.schedule_poll_seconds)


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None,
               worker: bool = False, graph_factory: GraphFactory | None = None,
               graphs: tuple[str, ...] | None = None) -> FastAPI:
    """The API for ``settings`` (default: ``get_settings()``) over :func:`open_platform`; with
    ``worker``, the process also runs a durable worker. ``graph_factory`` and ``graphs`` replace
    the agent graphs threads run (tests run graphs of their own)."""
    settings = settings or get_settings()
    return api.create_app(lambda: open_platform(settings, clock=clock, worker=worker), runtime_config(settings),
                          graph_factory=graph_factory, graphs=graphs)

"""The platform under test: the API served over real HTTP on 127.0.0.1 against the session's
migrated Postgres, and helpers that create tenants through the store."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

import store
from switchboard.app import create_app
from support.servers import serve_app
from switchboard import bootstrap
from switchboard.settings import Settings


@dataclass
class Tenant:
    """An organization with an owner key and two customers."""

    org_id: str
    key: str
    customers: list[str]

    def headers(self, customer: str | None = None, key: str | None = None) -> dict[str, str]:
        headers = {"x-fastn-access-key": key or self.key, "x-fastn-account-id": self.org_id}
        if customer:
            headers["x-fastn-account-tenant-id"] = customer
        return headers


def make_tenant(db: store.Database, name: str = "Acme", customers: int = 2) -> Tenant:
    org = bootstrap.create_organization(db, name)
    _, key = bootstrap.create_api_key(db, org["id"], "owner key")
    ids = [bootstrap.create_customer(db, org["id"], f"{name} customer {i}")["id"] for i in range(customers)]
    return Tenant(org["id"], key, ids)


@contextmanager
def running_platform(
    admin_conninfo: str, *, clock: Callable[[], datetime] | None = None, graph_factory: Any = None,
    graphs: tuple[str, ...] | None = None, **settings: Any
) -> Iterator[tuple[str, Settings]]:
    """Serve the API for ``admin_conninfo`` (already migrated); yields its base URL and settings.
    ``graph_factory`` and ``graphs`` replace the agent graphs threads run."""
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-platform-"))
    try:
        config = Settings(database_url=admin_conninfo, data_dir=data_dir, **settings)
        app = create_app(config, clock=clock, graph_factory=graph_factory, graphs=graphs)
        with serve_app(app, lifespan="on") as url:
            yield url, config
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def app_database(admin_conninfo: str) -> Iterator[store.Database]:
    """A pool as the app role (what the API uses), for setting up tenants in tests."""
    with store.Database.from_conn_string(store.app_conninfo(admin_conninfo)) as db:
        yield db


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30)

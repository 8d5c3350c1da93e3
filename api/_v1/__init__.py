"""The /v1 REST API: one module per resource group, each with a ``router``."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from api import _langgraph
from api._route import PlatformRoute
from api._v1 import (
    alerts,
    audit,
    billing,
    catalog,
    connections,
    connectors,
    events,
    insights,
    keys,
    notifications,
    oauth_apps,
    organization,
    people,
    sandboxes,
    secrets,
    threads,
    traces,
    workflows,
)

# Order is the order of the sections in the OpenAPI document.
MODULES = (organization, people, keys, secrets, oauth_apps, connectors, catalog, sandboxes, connections, workflows, events, traces,
           threads, alerts, notifications, insights, billing, audit, _langgraph)


def install(app: FastAPI) -> None:
    """Mount every /v1 router on ``app``."""
    v1 = APIRouter(prefix="/v1", route_class=PlatformRoute)
    for module in MODULES:
        v1.include_router(module.router)
    app.include_router(v1)
    # The hosted sandboxes' own APIs, outside /v1: their paths are the documents'.
    app.include_router(sandboxes.hosted_router)

"""``GET /health``: liveness of the process and readiness of its database."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

import store
from api._deps import Conninfo

router = APIRouter()

# Short, because a load balancer probing /health should learn of an outage quickly.
HEALTH_CONNECT_TIMEOUT = 3


def _unavailable(reason: str, database: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "database": database, "reason": reason}, status_code=503)


@router.get("/health", tags=["operations"])
def health(conninfo: Conninfo) -> JSONResponse:
    """200 ``{"status": "ok", "database": "ok", "schema_version": N}`` when the database answers and
    is migrated at least to this code's version; 503 with ``reason`` otherwise.

    A database ahead of this code stays healthy: during a rolling upgrade new code migrates first.
    """
    try:
        version = store.current_version(conninfo, connect_timeout=HEALTH_CONNECT_TIMEOUT)
    except store.StoreError as exc:
        return _unavailable(str(exc), "unreachable")
    expected = store.latest_version()
    if version < expected:
        return _unavailable(
            f"database schema is at version {version}, this code needs {expected}: run `switchboard db migrate`",
            "outdated",
        )
    return JSONResponse({"status": "ok", "database": "ok", "schema_version": version})

"""Request dependencies as types: routes declare what they need, never build it themselves.

Everything comes from the one :class:`runtime.Platform` the process built (``app.state.platform``,
set when the app starts).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

import agents
import store
from engine.http import HttpClient
from runtime import Config, Platform, Runs


def get_platform(request: Request) -> Platform:
    """The process's platform (database pool, encryptor, HTTP client, clock, services)."""
    return request.app.state.platform


def get_config(request: Request) -> Config:
    """What the API reads of the process settings."""
    return request.app.state.config


def get_conninfo(request: Request) -> str:
    """The database conninfo resolved at startup (DATABASE_URL or the embedded server)."""
    return get_platform(request).conninfo


def get_database(request: Request) -> store.Database:
    """The app-role connection pool opened at startup."""
    return get_platform(request).db


def get_clock(request: Request) -> Callable[[], datetime]:
    """The wall clock (tests inject a controllable one)."""
    return get_platform(request).clock


def get_encryptor(request: Request) -> store.Encryptor:
    """The envelope encryptor for secrets and credentials."""
    return get_platform(request).encryptor


def get_http(request: Request) -> HttpClient:
    """The process's SSRF-guarded outbound client."""
    return get_platform(request).http


def get_runs(request: Request) -> Runs:
    """The runs service."""
    return get_platform(request).runs


def get_threads(request: Request) -> agents.Threads:
    """The threads service (agent conversations and their runs), built when the app starts."""
    return request.app.state.threads


PlatformDep = Annotated[Platform, Depends(get_platform)]
AppConfig = Annotated[Config, Depends(get_config)]
Conninfo = Annotated[str, Depends(get_conninfo)]
Db = Annotated[store.Database, Depends(get_database)]
Clock = Annotated[Callable[[], datetime], Depends(get_clock)]
Encryptor = Annotated[store.Encryptor, Depends(get_encryptor)]
Http = Annotated[HttpClient, Depends(get_http)]
RunsDep = Annotated[Runs, Depends(get_runs)]
ThreadsDep = Annotated[agents.Threads, Depends(get_threads)]

"""Request dependencies as types: routes declare what they need, never build it themselves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request

import store
from switchboard.settings import Settings


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_conninfo(request: Request) -> str:
    """The database conninfo resolved at startup (DATABASE_URL or the embedded server)."""
    return request.app.state.conninfo


def get_database(request: Request) -> store.Database:
    """The app-role connection pool opened at startup."""
    return request.app.state.db


def get_clock(request: Request) -> Callable[[], datetime]:
    """The wall clock (tests inject a controllable one through ``create_app(clock=...)``)."""
    return request.app.state.clock


def get_encryptor(request: Request) -> Any:
    """The envelope encryptor for secrets and credentials."""
    return request.app.state.encryptor


def get_http(request: Request) -> Any:
    """The process's SSRF-guarded outbound client (``engine.http.HttpClient``)."""
    return request.app.state.http


AppSettings = Annotated[Settings, Depends(get_app_settings)]
Conninfo = Annotated[str, Depends(get_conninfo)]
Db = Annotated[store.Database, Depends(get_database)]
Clock = Annotated[Callable[[], datetime], Depends(get_clock)]
Encryptor = Annotated[Any, Depends(get_encryptor)]
Http = Annotated[Any, Depends(get_http)]

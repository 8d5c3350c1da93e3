"""Request dependencies as types: routes declare what they need, never build it themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from switchboard.settings import Settings


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_conninfo(request: Request) -> str:
    """The database conninfo resolved at startup (DATABASE_URL or the embedded server)."""
    return request.app.state.conninfo


AppSettings = Annotated[Settings, Depends(get_app_settings)]
Conninfo = Annotated[str, Depends(get_conninfo)]

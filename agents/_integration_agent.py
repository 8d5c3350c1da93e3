"""The Integration Agent (being built on branch graphs)."""

from __future__ import annotations

from typing import Any

from agents.errors import GraphUnavailable


def build_integration_agent(ctx: Any, model: Any, registry: Any, checkpointer: Any) -> Any:
    raise GraphUnavailable("integration_agent", ("connector_agent",))

"""Connector actions over HTTP: request building, auth, pagination, traces."""

from ._executor import ActionExecutor, ActionResponse
from ._pagination import Page, paginate
from ._request import PreparedRequest, build_request, effective_base_url, validate_input

__all__ = [
    "ActionExecutor", "ActionResponse", "Page", "PreparedRequest", "build_request", "effective_base_url", "paginate",
    "validate_input",
]

"""Connector actions over HTTP: request building, auth, pagination, traces."""

from ._executor import ActionExecutor, ActionResponse, retry_policy_of
from ._pagination import Page, paginate
from ._request import RAW_REQUEST, RAW_REQUEST_INPUT, InputValidators, PreparedRequest, build_raw_request, build_request, effective_base_url, validate_input

__all__ = [
    "RAW_REQUEST", "RAW_REQUEST_INPUT", "ActionExecutor", "InputValidators", "ActionResponse", "build_raw_request", "Page", "PreparedRequest", "build_request", "effective_base_url", "paginate",
    "retry_policy_of", "validate_input",
]

"""The HTTP API (FastAPI). ``create_app(open_platform)`` builds it over a ``runtime.Platform``; routes
live in private modules. The process shell (``switchboard.app``) builds the platform from settings."""

from api._app import create_app
from api._oidc import OidcVerifier
from api.errors import ApiError, coded_error_response, install_error_handlers, problem_response

__all__ = ["ApiError", "OidcVerifier", "coded_error_response", "create_app", "install_error_handlers", "problem_response"]

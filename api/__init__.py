"""The HTTP API (FastAPI). ``create_app(settings)`` builds it; routes live in private modules."""

from api._app import create_app
from api.errors import ApiError, coded_error_response, install_error_handlers, problem_response

__all__ = ["ApiError", "coded_error_response", "create_app", "install_error_handlers", "problem_response"]

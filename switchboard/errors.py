"""Errors of the composition root (settings, CLI wiring).

Hierarchy::

    SwitchboardError            root; code "switchboard_error", HTTP 500
    └── ConfigurationError      settings that must not be used as given

Every error builds its message from typed fields and carries ``code`` (snake_case)
and ``http_status``, which ``api/`` maps to a problem+json response.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Root of the errors raised by the ``switchboard`` package."""

    code: str = "switchboard_error"
    http_status: int = 500


class ConfigurationError(SwitchboardError):
    """The process settings are unusable, e.g. production mode with a default secret.

    ``problems`` lists one human-readable reason per offending setting, each naming the
    environment variable to set.
    """

    code = "configuration_invalid"
    http_status = 500

    def __init__(self, mode: str, problems: tuple[str, ...]) -> None:
        self.mode = mode
        self.problems = problems
        super().__init__(f"settings refused in {mode} mode: " + "; ".join(problems))

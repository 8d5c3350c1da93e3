"""Errors of the agents package (chat models, the offline planner).

Hierarchy (class, code, HTTP status)::

    AgentError                      agent_error (500)
    ├── CreditsExhausted            credits_exhausted (402)
    ├── ModelSettingInvalid         model_setting_invalid (422)
    ├── ModelUnavailable            model_unavailable (503)
    └── PlanError                   offline_plan_error (500)

Every error builds its message from typed fields and carries ``code`` and ``http_status``, which
``api/`` maps to a problem response. Errors of openai and litellm are translated into these at the
boundary (STYLE.md 6); a secret never appears in a message.
"""

from __future__ import annotations

from datetime import datetime


class AgentError(Exception):
    """Root of the errors raised by agents/."""

    code: str = "agent_error"
    http_status: int = 500


class CreditsExhausted(AgentError):
    """The organization has no agent credits left this period, so no model call is made.

    ``allowance`` is the organization's credits per period, ``used`` what its model calls spent in
    the period ending ``reset_at``. 402: the request is fine, and more credits (a plan or an
    allowance of the organization's own) or the next period let it through.
    """

    code = "credits_exhausted"
    http_status = 402
    # Members of the API's problem response beside the message.
    problem_fields = ("allowance", "used", "reset_at")

    def __init__(self, org_id: str, allowance: float, used: float, reset_at: datetime) -> None:
        self.org_id = org_id
        self.allowance = allowance
        self.used = used
        self.reset_at = reset_at
        super().__init__(
            f"organization {org_id!r} has used {used:g} of its {allowance:g} agent credits this period; no model call "
            f"was made. Add credits (a larger plan or allowance) or wait until {reset_at.isoformat()}"
        )


class ModelSettingInvalid(AgentError, ValueError):
    """The model setting cannot be used: ``setting`` is what was given, ``reason`` why not."""

    code = "model_setting_invalid"
    http_status = 422

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"model setting {setting!r}: {reason}")


class ModelUnavailable(AgentError):
    """The configured model could not be built or reached: ``model`` names it, ``reason`` says why.

    503: the platform is configured for a model it cannot use right now (a missing key, a missing
    package, a server that does not answer); the request itself is fine.
    """

    code = "model_unavailable"
    http_status = 503

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"chat model {model!r} unavailable: {reason}")


class PlanError(AgentError):
    """A plan given to the offline planner is unusable: ``step`` names the tool, ``reason`` why.

    500: a plan is code the graphs supply, not input; a bad one is a bug of the platform.
    """

    code = "offline_plan_error"
    http_status = 500

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"offline plan step {step!r}: {reason}")

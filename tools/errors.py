"""Errors of the agents' tools. Each becomes the error a model reads (``{"error": {...}}``), never
an exception that ends a run.

    ToolError                    root: code, message, pointer, http_status
    ├── ToolRefused              the policy hook said no (role, tenant, quota, credits)
    ├── ToolArgumentsInvalid     arguments that do not fit the tool's model
    ├── ApprovalRequired         publishing before the builder approved
    ├── UnknownTool              a name the registry does not hold
    └── ToolFailed               the call ran and failed (a fetch, an import, a patch)
"""

from __future__ import annotations

from typing import Any


class ToolError(Exception):
    """A tool call that did not succeed, with what the model needs to correct it."""

    code: str = "tool_error"
    http_status: int = 500

    def __init__(self, message: str, *, pointer: str | None = None, code: str | None = None,
                 http_status: int | None = None, problems: list[dict[str, str]] | None = None) -> None:
        self.message = message
        self.pointer = pointer
        self.problems = problems or []
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        super().__init__(f"{self.code}: {message}" + (f" (at {pointer})" if pointer else ""))

    def as_result(self) -> dict[str, Any]:
        """The error as a tool result: ``{"error": {"code", "message", "pointer"[, "problems"]}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "pointer": self.pointer}
        if self.problems:
            error["problems"] = self.problems
        return {"error": error}


class ToolRefused(ToolError):
    """The policy hook refused the call before it ran (and audited the refusal)."""

    code = "tool_refused"
    http_status = 403


class ToolArgumentsInvalid(ToolError):
    """The arguments do not validate against the tool's model; ``pointer`` names the field."""

    code = "tool_arguments_invalid"
    http_status = 422


class ApprovalRequired(ToolError):
    """Publishing needs the builder's approval (a review interrupt) or the organization's auto-approve."""

    code = "approval_required"
    http_status = 403

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} is not approved for publishing: request a review and wait for the "
                         "builder to approve it", pointer=None)


class UnknownTool(ToolError):
    """No tool of that name is registered."""

    code = "unknown_tool"
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"there is no tool {name!r}")


class ToolFailed(ToolError):
    """The call ran and failed for a reason the model can act on."""

    code = "tool_failed"
    http_status = 422

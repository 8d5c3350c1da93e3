"""Prompt templates, one file per agent role, versioned with the code.

Each ``<role>.md`` starts with a YAML front matter naming the role and the ``variables`` it takes
(name -> what it is); the body is a template whose ``{name}`` fields are those variables (``{{``
and ``}}`` are literal braces). :func:`load` reads one; :meth:`Prompt.render` refuses a missing
variable, an unknown one, and a template whose fields and declared variables differ.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

ROLES = ("home", "setup_assistant", "connector_agent", "integration_agent")


class PromptError(ValueError):
    """A prompt that cannot be rendered: ``role``, and what is wrong."""

    code = "prompt_invalid"
    http_status = 500

    def __init__(self, role: str, reason: str) -> None:
        self.role = role
        self.reason = reason
        super().__init__(f"prompt {role!r}: {reason}")


@dataclass(frozen=True)
class Prompt:
    """One role's template and the variables it declares."""

    role: str
    variables: dict[str, str]
    template: str

    def fields(self) -> set[str]:
        """The variable names the template uses."""
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}

    def check(self) -> None:
        """Raise ``PromptError`` when the template uses an undeclared variable or leaves a declared one unused."""
        used, declared = self.fields(), set(self.variables)
        if used - declared:
            raise PromptError(self.role, f"the template uses undeclared variables: {', '.join(sorted(used - declared))}")
        if declared - used:
            raise PromptError(self.role, f"declared variables the template never uses: {', '.join(sorted(declared - used))}")

    def render(self, **values: object) -> str:
        """The prompt with ``values``; ``PromptError`` for a missing or unknown variable."""
        self.check()
        missing = set(self.variables) - set(values)
        if missing:
            raise PromptError(self.role, f"missing variables: {', '.join(sorted(missing))}")
        unknown = set(values) - set(self.variables)
        if unknown:
            raise PromptError(self.role, f"unknown variables: {', '.join(sorted(unknown))}")
        return self.template.format(**{k: str(v) for k, v in values.items()})


@cache
def load(role: str) -> Prompt:
    """The prompt of ``role`` (one of ``ROLES``)."""
    if role not in ROLES:
        raise PromptError(role, f"no such role; roles are {', '.join(ROLES)}")
    text = resources.files("prompts").joinpath(f"{role}.md").read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    if meta.get("role") != role:
        raise PromptError(role, f"the file declares role {meta.get('role')!r}")
    return Prompt(role, dict(meta.get("variables") or {}), body.strip() + "\n")


__all__ = ["ROLES", "Prompt", "PromptError", "load"]

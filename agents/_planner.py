"""The offline planner's choice of the next tool call: a table of steps keyed by tool name.

A graph supplies a :class:`Plan` (its tools, in order, each with how to build its arguments from
the intent and the earlier results, when it is done, when it applies and how often it may fail).
:func:`next_step` walks the table against what the conversation already holds and returns either
the next call or the end of the run, with a reason. It knows nothing of any particular tool, so
the Connector Agent, the Integration Agent and the Setup Assistant each bring their own table.

Typical shape: ``[search, import (when search found nothing), write_draft, patch (when validate
failed after the last patch), validate (3 attempts), dry_run, request_review]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema

from agents._intent import Intent
from agents.errors import PlanError


@dataclass(frozen=True)
class ToolResult:
    """One tool call the conversation holds and what came back: ``content`` is the JSON the tool
    returned (parsed) or its text; ``ok`` is False when the tool reported an error."""

    tool: str
    call_id: str
    arguments: Mapping[str, Any]
    content: Any
    ok: bool


@dataclass(frozen=True)
class PlanState:
    """What the planner knows: the builder's :class:`Intent` and every tool result since the prompt."""

    intent: Intent
    results: tuple[ToolResult, ...] = ()

    def calls(self, tool: str) -> tuple[ToolResult, ...]:
        """Every result of ``tool``, oldest first."""
        return tuple(r for r in self.results if r.tool == tool)

    def last(self, tool: str) -> ToolResult | None:
        """The latest result of ``tool``, or None."""
        calls = self.calls(tool)
        return calls[-1] if calls else None

    def succeeded(self, tool: str) -> bool:
        """Whether the latest call of ``tool`` succeeded."""
        last = self.last(tool)
        return last is not None and last.ok

    def failures_since_success(self, tool: str) -> int:
        """Failed calls of ``tool`` after its last successful one."""
        count = 0
        for result in reversed(self.calls(tool)):
            if result.ok:
                break
            count += 1
        return count

    def after(self, tool: str, other: str) -> bool:
        """Whether the latest call of ``tool`` came after the latest of ``other`` (or ``other`` never ran)."""
        positions = {r.tool: i for i, r in enumerate(self.results)}
        return tool in positions and positions[tool] > positions.get(other, -1)


Arguments = Callable[[PlanState], Mapping[str, Any] | None]
Condition = Callable[[PlanState], bool]


@dataclass(frozen=True)
class PlanStep:
    """One row of a plan.

    ``arguments`` builds the call's arguments from the state (None: nothing to do, skip the step);
    ``done`` says the step needs no further call (default: its latest call succeeded); ``when``
    says the step applies at all (default: always); ``attempts`` is how many failed calls in a row
    end the run; ``purpose`` is said in the final report.
    """

    tool: str
    arguments: Arguments
    done: Condition | None = None
    when: Condition | None = None
    attempts: int = 1
    purpose: str = ""
    blocked: Callable[[PlanState], str | None] | None = None

    def is_done(self, state: PlanState) -> bool:
        """Whether this step needs no further call."""
        return self.done(state) if self.done is not None else state.succeeded(self.tool)


@dataclass(frozen=True)
class Plan:
    """The table a graph gives the offline planner; ``kinds`` are the intent kinds it serves."""

    steps: tuple[PlanStep, ...] = ()
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"sync", "event", "copy"}))


@dataclass(frozen=True)
class Decision:
    """The planner's answer: a tool call (``tool`` and ``arguments``), or the end of the run
    (``outcome`` ``done`` or ``stopped``, with ``reason``)."""

    outcome: Literal["call", "done", "stopped"]
    tool: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    completed: tuple[str, ...] = ()


def next_step(plan: Plan, state: PlanState, tools: Mapping[str, Mapping[str, Any]]) -> Decision:
    """The next call of ``plan`` given ``state``, or why the run ends.

    ``tools`` maps each bound tool's name to its JSON Schema of arguments; a step whose tool is not
    bound ends the run (the planner cannot do it), and arguments that do not fit the schema raise
    :class:`PlanError` (a plan is code, and a bad one is a bug, not a tool error for the model).
    """
    if state.intent.kind not in plan.kinds:
        return Decision("stopped", reason=f"this agent does not build '{state.intent.kind}' integrations",
                        completed=_completed(state))
    pending = [step for step in plan.steps if (step.when is None or step.when(state)) and not step.is_done(state)]
    # A step out of attempts ends the run even when a repair row comes before it in the table.
    for step in pending:
        failures = state.failures_since_success(step.tool)
        if failures >= step.attempts:
            last = state.last(step.tool)
            return Decision("stopped", tool=step.tool, completed=_completed(state),
                            reason=f"{step.tool} failed {failures} time(s); last result: {_brief(last.content if last else None)}")
    for step in pending:
        if step.blocked is not None and (reason := step.blocked(state)):
            return Decision("stopped", tool=step.tool, completed=_completed(state), reason=reason)
        arguments = step.arguments(state)
        if arguments is None:
            continue
        if step.tool not in tools:
            return Decision("stopped", tool=step.tool, completed=_completed(state),
                            reason=f"the tool {step.tool!r} is not available to this agent")
        _check_arguments(step.tool, arguments, tools[step.tool])
        return Decision("call", tool=step.tool, arguments=dict(arguments), completed=_completed(state))
    return Decision("done", completed=_completed(state))


def _check_arguments(tool: str, arguments: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(dict(arguments)), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        pointer = "/" + "/".join(str(p) for p in first.absolute_path)
        raise PlanError(tool, f"arguments do not fit the tool's schema at {pointer}: {first.message}")


def _completed(state: PlanState) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.tool for r in state.results if r.ok))


def _brief(content: Any, limit: int = 300) -> str:
    text = content if isinstance(content, str) else repr(content)
    return text if len(text) <= limit else text[: limit - 3] + "..."

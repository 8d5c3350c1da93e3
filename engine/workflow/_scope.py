"""The pieces of a run's state: numbering, template scopes, recorded clock and random readings, input checks."""

from __future__ import annotations

import random as _random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema
from referencing.exceptions import Unresolvable
from jsonschema.validators import validator_for

from ..errors import Problem, WorkflowInputInvalid
from ..specs import (
    ActionStep,
    CallStep,
    DelayStep,
    WaitStep,
    FilterStep,
    ForeachStep,
    IfStep,
    MapStep,
    SyncStep,
    WorkflowSpec,
)


class Sequencer:
    """Hands out the sequence numbers of one scope: ``prefix + 1``, ``prefix + 2``, ..."""

    __slots__ = ("prefix", "count")

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count}"


@dataclass
class Frame:
    """One template scope: a run's top level, a foreach iteration, or a called workflow's run.

    ``steps`` holds the outputs of the steps run in this scope; reading a
    frame's context also sees its parents' steps and variables (an iteration
    sees the steps before its foreach), while writes stay in the frame.
    Secrets are not part of a frame: the interpreter adds them to the context
    of the fields that are sent to a connector, and only there.
    """

    workflow: WorkflowSpec
    input: Any
    trigger: Any
    run: dict[str, Any]
    sequencer: Sequencer
    depth: int = 0
    parent: "Frame | None" = None
    variables: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)

    def child(self, sequencer: Sequencer, variables: dict[str, Any]) -> "Frame":
        """An inner scope (a foreach iteration) of the same workflow run."""
        return Frame(self.workflow, self.input, self.trigger, self.run, sequencer, self.depth,
                     parent=self, variables=variables)

    def context(self) -> dict[str, Any]:
        """What templates see: ``input``, ``steps``, ``trigger``, ``run`` and loop variables (no ``secrets``)."""
        chain: list[Frame] = []
        frame: Frame | None = self
        while frame is not None:
            chain.append(frame)
            frame = frame.parent
        steps: dict[str, Any] = {}
        variables: dict[str, Any] = {}
        for frame in reversed(chain):
            steps.update(frame.steps)
            variables.update(frame.variables)
        return {
            "input": self.input, "steps": steps, "trigger": self.trigger, "run": self.run, **variables,
        }


class Tape:
    """The clock and random readings of one step (or of the run itself), recorded or played back.

    Live, ``now()`` reads the injected clock and ``random()`` draws from a
    generator seeded by the run's seed and the step's ``seq`` (so concurrent
    iterations draw the same numbers on every run). Replaying, both give back
    the recorded values; asking for more than were recorded sets ``diverged``
    (the interpreter raises it after the step: raising inside an expression
    could be swallowed by it).
    """

    def __init__(self, clock: Any, seed: int, seq: str, recorded_clock: tuple[str, ...] | None = None,
                 recorded_random: tuple[float, ...] | None = None):
        self._clock = clock
        self._seed = f"{seed}:{seq}"
        self._rng: _random.Random | None = None
        self._recorded_clock = recorded_clock
        self._recorded_random = recorded_random
        self.clock: list[str] = []
        self.random: list[float] = []
        self.diverged: tuple[str, str] | None = None

    def now(self) -> datetime:
        if self._recorded_clock is not None:
            if len(self.clock) < len(self._recorded_clock):
                value = datetime.fromisoformat(self._recorded_clock[len(self.clock)])
                self.clock.append(self._recorded_clock[len(self.clock)])
                return value
            self.diverged = self.diverged or (f"clock reading {len(self.clock) + 1}", "no more clock readings")
        value = self._clock.now()
        self.clock.append(value.isoformat())
        return value

    def draw(self) -> float:
        if self._recorded_random is not None:
            if len(self.random) < len(self._recorded_random):
                value = self._recorded_random[len(self.random)]
                self.random.append(value)
                return value
            self.diverged = self.diverged or (f"random draw {len(self.random) + 1}", "no more random draws")
        if self._rng is None:
            self._rng = _random.Random(self._seed)
        value = self._rng.random()
        self.random.append(value)
        return value


# -- secrets referenced by templates -------------------------------------------

_SECRET_REF = re.compile(r"\bsecrets\s*\.\s*(?:`([^`]+)`|([A-Za-z_$][A-Za-z0-9_$]*))")


def secret_names(template: Any) -> set[str]:
    """The secret names a template reads as ``secrets.NAME`` (or ``secrets.`odd-name```)."""
    names: set[str] = set()
    if isinstance(template, str):
        if "secrets" in template:
            names.update(a or b for a, b in _SECRET_REF.findall(template))
    elif isinstance(template, Mapping):
        for value in template.values():
            names |= secret_names(value)
    elif isinstance(template, list):
        for value in template:
            names |= secret_names(value)
    return names


def secret_templates(step: Any) -> list[Any]:
    """The templated fields of a step that are sent to a connector, where ``secrets`` is in scope:
    an action step's input and a sync target's ``list_input``, ``create_input`` and ``update_input``."""
    if isinstance(step, ActionStep):
        return [step.input]
    if isinstance(step, SyncStep):
        t = step.sync.target
        return [t.list_input, t.create_input, t.update_input]
    return []


def own_templates(step: Any) -> list[Any]:
    """The templated fields a step evaluates itself (not those of the steps nested in it)."""
    if isinstance(step, ActionStep):
        return [step.input]
    if isinstance(step, MapStep):
        return [step.map]
    if isinstance(step, FilterStep):
        return [step.filter.items, step.filter.where]
    if isinstance(step, IfStep):
        return [step.if_]
    if isinstance(step, ForeachStep):
        return [step.foreach.items, step.foreach.output]
    if isinstance(step, SyncStep):
        t = step.sync.target
        return [step.sync.source, step.sync.map, t.list_input, t.create_input, t.update_input]
    if isinstance(step, DelayStep):
        return [step.delay.seconds]
    if isinstance(step, CallStep):
        return [step.call.input]
    if isinstance(step, WaitStep):
        return [step.wait.match]
    return []


def step_kind(step: Any) -> str:
    """The kind key of a step model: ``action``, ``map``, ..."""
    return _KINDS[type(step)]


_KINDS = {ActionStep: "action", MapStep: "map", FilterStep: "filter", IfStep: "if", ForeachStep: "foreach",
          SyncStep: "sync", DelayStep: "delay", WaitStep: "wait", CallStep: "call"}


def step_pointers(workflow: WorkflowSpec) -> dict[int, str]:
    """JSON pointers of every step in the workflow document, by ``id()`` of the step model."""
    pointers: dict[int, str] = {}

    def walk(steps: list[Any], base: str) -> None:
        for position, step in enumerate(steps):
            here = f"{base}/{position}"
            pointers[id(step)] = here
            if isinstance(step, IfStep):
                walk(step.then, here + "/then")
                walk(step.else_, here + "/else")
            elif isinstance(step, ForeachStep):
                walk(step.foreach.steps, here + "/foreach/steps")

    walk(workflow.steps, "/steps")
    return pointers


# -- input --------------------------------------------------------------------

_REQUIRED = re.compile(r"^'(.+)' is a required property$")


def _escape(part: Any) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def validate_input(workflow: WorkflowSpec, value: Any, *, run_id: str | None = None,
                   step_id: str | None = None) -> None:
    """Check ``value`` against ``workflow.input`` (JSON Schema, formats checked).

    Raises:
        WorkflowInputInvalid: listing each problem with the JSON pointer into the input.
    """
    schema = workflow.input
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        errors = list(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value))
    except (jsonschema.SchemaError, re.error, TypeError, LookupError, ValueError, Unresolvable) as exc:
        # The spec's own check (check_schema) catches most; an unresolvable $ref shows only here.
        problem = Problem("/input", f"the workflow's input schema is invalid: {getattr(exc, 'message', exc)}")
        raise WorkflowInputInvalid(workflow.id, [problem],
                                   run_id=run_id, step_id=step_id) from None
    if not errors:
        return
    located: list[tuple[list[Any], str]] = []
    for error in errors:
        parts: list[Any] = list(error.absolute_path)
        missing = _REQUIRED.match(error.message) if error.validator == "required" else None
        if missing:
            parts.append(missing.group(1))
        located.append((parts, "is required" if missing else error.message))
    # in document order: array indices numerically, names alphabetically
    located.sort(key=lambda item: [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in item[0]])
    problems = [Problem("/" + "/".join(_escape(p) for p in parts), message) for parts, message in located]
    raise WorkflowInputInvalid(workflow.id, problems, run_id=run_id, step_id=step_id)

"""Checking a workflow against the connectors it calls, before anything is sent.

A run that fails at step 3 on a typo may already have written at steps 1 and 2;
these problems are found up front instead: unknown connectors and actions,
expressions that do not parse, references to steps that do not exist.

Two rules keep a workflow from turning data into code or secrets into data:

- ``$eval`` (which parses a string as an expression) is refused wherever it
  appears, called or passed around.
- ``secrets`` may be read only where the value is sent to a connector: the
  ``input`` of an action step and the ``list_input``, ``create_input`` and
  ``update_input`` of a sync target. Anywhere else (outputs, maps, conditions,
  loop sources, call inputs) ``$uppercase(secrets.key)`` would hand the secret
  back in a form redaction cannot always recognise. References are found in
  the parsed expression (``secrets.x``, ``secrets[...]``, `` `secrets` ``,
  ``$.secrets``, ``$lookup($, "secrets")``); the interpreter also binds
  ``secrets`` nowhere else, so an unchecked workflow reads nothing there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .actions import RAW_REQUEST
from .errors import ExpressionError, Problem
from .expressions import FORBIDDEN_FUNCTIONS, check_template, compile_expression, template_parts
from .specs import ActionStep, ConnectorSpec, SyncStep, WaitStep, WorkflowSpec, iter_steps

_STEP_REF = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)")
# Fields that hold a bare expression rather than a {{ }} template.
_BARE = {"if", "where"}
_BARE_UNDER_MATCH = {"source", "target"}
# Where secrets may be read: fields whose value is sent to a connector.
_SENT_UNDER_TARGET = {"list_input", "create_input", "update_input"}
_STEP_LISTS = {"steps", "then", "else"}
SECRETS_MISPLACED = ("secrets may only be used in action inputs (the input of an action step, or a sync "
                     "target's list_input, create_input or update_input), where they are sent to a connector")


def check_workflow(workflow: WorkflowSpec, connectors: Mapping[str, ConnectorSpec]) -> list[Problem]:
    """Problems that would fail a run of ``workflow`` with ``connectors``, each with its JSON pointer.

    An empty list means every action exists, every ``wait`` step is in a Long workflow, every
    expression parses, every
    ``steps.X`` names a step of the workflow, no expression uses ``$eval``, and
    ``secrets`` is read only in action inputs (see the module docstring).
    """
    problems: list[Problem] = []
    step_ids = {step.id for step in iter_steps(workflow.steps)}
    data = workflow.model_dump(by_alias=True, exclude_none=True)
    pointers = dict(_step_pointers(data.get("steps", []), "/steps"))
    for step in iter_steps(workflow.steps):
        where = pointers.get(step.id, "/steps")
        named: list[tuple[str, str]] = []
        if isinstance(step, ActionStep):
            named.append((step.action, f"{where}/action"))
        elif isinstance(step, SyncStep):
            target = step.sync.target
            named += [(a, f"{where}/sync/target/{k}") for k, a in (("list", target.list), ("create", target.create),
                                                                 ("update", target.update)) if a]
        if isinstance(step, WaitStep) and workflow.tier != "long":
            problems.append(Problem(f"{where}/wait", f"a wait step runs only in a Long workflow, which waits durably "
                                                     f"(set tier: long); this workflow is {workflow.tier}"))
        for qualified, pointer in named:
            connector_id, _, action = qualified.rpartition(".")
            connector = connectors.get(connector_id)
            if connector is None:
                problems.append(Problem(pointer, f"unknown connector {connector_id!r} (loaded: {', '.join(sorted(connectors)) or 'none'})"))
            elif action not in connector.actions and action != RAW_REQUEST:
                problems.append(Problem(pointer, f"connector {connector_id!r} has no action {action!r}"))
    problems += _expressions(data, "", step_ids, parent=None)
    return problems


def _step_pointers(steps: list[Any], base: str):
    for index, step in enumerate(steps):
        pointer = f"{base}/{index}"
        yield step["id"], pointer
        for key, nested in (("then", step.get("then")), ("else", step.get("else"))):
            if isinstance(nested, list):
                yield from _step_pointers(nested, f"{pointer}/{key}")
        body = (step.get("foreach") or {}).get("steps")
        if isinstance(body, list):
            yield from _step_pointers(body, f"{pointer}/foreach/steps")


def _expressions(node: Any, pointer: str, step_ids: set[str], parent: str | None,
                 sent: bool = False) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, dict):
        # a step of the workflow (not a template that happens to have these keys): it sits in a step list
        is_action = parent in _STEP_LISTS and not sent and "action" in node and "id" in node
        for key, value in node.items():
            here = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
            bare = key in _BARE or (parent == "match" and key in _BARE_UNDER_MATCH)
            inner_sent = sent or (is_action and key == "input") or (parent == "target" and key in _SENT_UNDER_TARGET)
            if bare and isinstance(value, str):
                problems += _bare(value, here, step_ids, inner_sent)
            else:
                problems += _expressions(value, here, step_ids, parent=str(key), sent=inner_sent)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            problems += _expressions(value, f"{pointer}/{index}", step_ids, parent=parent, sent=sent)
    elif isinstance(node, str) and "{{" in node:
        failures = check_template(node, pointer)
        problems += [Problem(p, f"expression {reason}") for p, reason in failures]
        if not failures:
            for text in template_parts(node):
                problems += _forbidden(text, pointer or "/", sent)
        problems += _references(node, pointer, step_ids)
    return problems


def _bare(text: str, pointer: str, step_ids: set[str], sent: bool) -> list[Problem]:
    try:
        compile_expression(text)
    except ExpressionError as exc:
        return [Problem(pointer, f"expression {exc.reason}")]
    return _forbidden(text, pointer, sent) + _references(text, pointer, step_ids)


def _forbidden(text: str, pointer: str, sent: bool) -> list[Problem]:
    """``$eval`` anywhere, and ``secrets`` outside the fields sent to a connector."""
    problems: list[Problem] = []
    found = set(compile_expression(text).references())
    for name in sorted(FORBIDDEN_FUNCTIONS):
        if ("variable", name) in found:
            problems.append(Problem(pointer, f"${name} is not allowed: it evaluates data as an expression, "
                                             "and data never becomes code"))
    # a field named secrets, or the string "secrets" ($lookup($, "secrets")): conservative on purpose
    if not sent and (("name", "secrets") in found or ("string", "secrets") in found):
        problems.append(Problem(pointer, SECRETS_MISPLACED))
    return problems


def _references(text: str, pointer: str, step_ids: set[str]) -> list[Problem]:
    return [Problem(pointer, f"refers to step {name!r}, which the workflow does not have")
            for name in dict.fromkeys(_STEP_REF.findall(text)) if name not in step_ids]

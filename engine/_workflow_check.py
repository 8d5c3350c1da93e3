"""Checking a workflow against the connectors it calls, before anything is sent.

A run that fails at step 3 on a typo may already have written at steps 1 and 2;
these problems are found up front instead: unknown connectors and actions,
expressions that do not parse, references to steps that do not exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .actions import RAW_REQUEST
from .errors import ExpressionError, Problem
from .expressions import check_template, compile_expression
from .specs import ActionStep, ConnectorSpec, SyncStep, WorkflowSpec, iter_steps

_STEP_REF = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)")
# Fields that hold a bare expression rather than a {{ }} template.
_BARE = {"if", "where"}
_BARE_UNDER_MATCH = {"source", "target"}


def check_workflow(workflow: WorkflowSpec, connectors: Mapping[str, ConnectorSpec]) -> list[Problem]:
    """Problems that would fail a run of ``workflow`` with ``connectors``, each with its JSON pointer.

    An empty list means every action exists, every expression parses and every
    ``steps.X`` names a step of the workflow.
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


def _expressions(node: Any, pointer: str, step_ids: set[str], parent: str | None) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
            bare = key in _BARE or (parent == "match" and key in _BARE_UNDER_MATCH)
            if bare and isinstance(value, str):
                problems += _bare(value, here, step_ids)
            else:
                problems += _expressions(value, here, step_ids, parent=str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            problems += _expressions(value, f"{pointer}/{index}", step_ids, parent=parent)
    elif isinstance(node, str) and "{{" in node:
        problems += [Problem(p, f"expression {reason}") for p, reason in check_template(node, pointer)]
        problems += _references(node, pointer, step_ids)
    return problems


def _bare(text: str, pointer: str, step_ids: set[str]) -> list[Problem]:
    try:
        compile_expression(text)
    except ExpressionError as exc:
        return [Problem(pointer, f"expression {exc.reason}")]
    return _references(text, pointer, step_ids)


def _references(text: str, pointer: str, step_ids: set[str]) -> list[Problem]:
    return [Problem(pointer, f"refers to step {name!r}, which the workflow does not have")
            for name in dict.fromkeys(_STEP_REF.findall(text)) if name not in step_ids]

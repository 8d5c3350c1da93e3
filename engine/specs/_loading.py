"""Reading specs from YAML or JSON, with errors that name a JSON pointer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import Problem, SpecValidationError
from ._connector import ConnectorSpec
from ._workflow import STEP_KINDS, WorkflowSpec

M = TypeVar("M", bound=BaseModel)

# Pydantic reports a field by its Python name; specs use the alias.
_ALIASES = {"if_": "if", "else_": "else", "as_": "as", "in_": "in"}


def json_pointer(parts: tuple[Any, ...] | list[Any]) -> str:
    """Build an RFC 6901 pointer from path parts."""
    out = []
    for part in parts:
        text = _ALIASES.get(part, str(part)) if isinstance(part, str) else str(part)
        out.append(text.replace("~", "~0").replace("/", "~1"))
    return "/" + "/".join(out) if out else ""


def problems_from_validation(error: ValidationError, document: Any) -> list[Problem]:
    """Turn a pydantic error into problems whose pointers resolve in ``document``."""
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        problems.append(Problem(json_pointer(_document_path(item["loc"], document)), message))
    return problems


def _is_union_tag(part: Any, node: Any, last: bool) -> bool:
    # Discriminated unions put the chosen tag into the location: the step kind
    # (a key of the step), or the value of an auth 'type' / trigger 'kind'.
    if not isinstance(part, str) or not isinstance(node, dict):
        return False
    if part in (node.get("type"), node.get("kind")):
        return True
    return not last and part in STEP_KINDS and part in node


def _document_path(loc: tuple[Any, ...], document: Any) -> list[Any]:
    """Map a pydantic location onto document keys (aliases restored, union tags dropped)."""
    path: list[Any] = []
    node = document
    tag_skipped = False  # at most one tag per level: the next same-named part is the field
    for index, part in enumerate(loc):
        if not tag_skipped and _is_union_tag(part, node, index + 1 == len(loc)):
            tag_skipped = True
            continue
        tag_skipped = False
        key = _ALIASES.get(part, part) if isinstance(part, str) else part
        path.append(key)
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            node = None
    return path


def parse_document(text: str, source: str | None = None) -> Any:
    """Parse YAML or JSON text (JSON is YAML, but JSON errors read better from json)."""
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise SpecValidationError("document", [Problem("", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")],
                                  source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecValidationError("document", [Problem("", f"not valid YAML or JSON: {reason}{where}")], source) from None


def load_model(model: type[M], data: Any, kind: str, source: str | None = None) -> M:
    """Validate ``data`` (already parsed) as ``model``.

    Raises:
        SpecValidationError: with one problem per invalid field, each naming its JSON pointer.
    """
    if not isinstance(data, dict):
        raise SpecValidationError(kind, [Problem("", f"expected a mapping, got {type(data).__name__}")], source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecValidationError(kind, problems_from_validation(exc, data), source) from None


def _read(source: str | Path | dict) -> tuple[Any, str | None]:
    if isinstance(source, dict):
        return source, None
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecValidationError("document", [Problem("", f"cannot read {path}: {exc.strerror}")], str(path)) from None
    except UnicodeDecodeError:
        raise SpecValidationError("document", [Problem("", f"{path} is not UTF-8 text")], str(path)) from None
    return parse_document(text, str(path)), str(path)


def load_connector(source: str | Path | dict) -> ConnectorSpec:
    """Load a connector spec from a YAML/JSON file path or an already-parsed mapping."""
    data, where = _read(source)
    return load_model(ConnectorSpec, data, "connector", where)


def load_workflow(source: str | Path | dict) -> WorkflowSpec:
    """Load a workflow spec from a YAML/JSON file path or an already-parsed mapping."""
    data, where = _read(source)
    return load_model(WorkflowSpec, data, "workflow", where)


def load_connectors_dir(directory: str | Path) -> dict[str, ConnectorSpec]:
    """Load every ``*.yaml``, ``*.yml`` and ``*.json`` connector in a directory, keyed by id."""
    found: dict[str, ConnectorSpec] = {}
    origin: dict[str, Path] = {}
    for path in sorted(Path(directory).iterdir()):
        if path.suffix.lower() in {".yaml", ".yml", ".json"}:
            data, where = _read(path)
            if isinstance(data, dict) and ("openapi" in data or "swagger" in data):
                raise SpecValidationError("connector", [Problem("", "this is an OpenAPI document, not a connector spec; "
                                                                    "turn it into one with `switchboard connector import`")], where)
            spec = load_model(ConnectorSpec, data, "connector", where)
            if spec.id in found:
                raise SpecValidationError(
                    "connector", [Problem("/id", f"connector id {spec.id!r} is also defined in {origin[spec.id]}")], str(path)
                )
            found[spec.id] = spec
            origin[spec.id] = path
    return found

"""Reading connector and workflow specs from request bodies: JSON objects or YAML text, validated
with the engine's models (``runtime._specs``), refused with JSON pointers into the spec."""

from __future__ import annotations

from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import SpecValidationError
from engine.specs import parse_document
from runtime import SpecInvalid, loaded, problems_out, stored, validated

MAX_SPEC_TEXT = 2_000_000
# YAML aliases are shared when loaded but expanded by everything that walks the result
# ("billion laughs"); a spec has no business being larger than this many nodes.
MAX_YAML_NODES = 200_000


class SpecBody(BaseModel):
    """A spec as a JSON object (``spec``) or as YAML or JSON text (``spec_yaml``): exactly one."""

    model_config = ConfigDict(extra="forbid")
    # Routes taking a spec accept bodies up to max_spec_request_bytes (api/_limits.py).
    body_limit: ClassVar[str] = "spec"
    spec: dict[str, Any] | None = Field(None, description="The spec as a JSON object.")
    spec_yaml: str | None = Field(None, max_length=MAX_SPEC_TEXT, description="The spec as YAML (or JSON) text.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SpecBody":
        if (self.spec is None) == (self.spec_yaml is None):
            raise ValueError("send exactly one of spec (an object) and spec_yaml (text)")
        return self


def _yaml_nodes(text: str) -> int:
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        sizes[id(node)] = min(total, MAX_YAML_NODES + 1)
        return sizes[id(node)]

    root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return size(root) if root is not None else 0


def spec_data(body: SpecBody, kind: str) -> dict[str, Any]:
    """The spec document of ``body`` as a mapping; ``SpecInvalid`` when the text does not parse."""
    if body.spec is not None:
        return body.spec
    text = body.spec_yaml or ""
    try:
        if "&" in text and _yaml_nodes(text) > MAX_YAML_NODES:
            raise SpecInvalid(kind, [{"pointer": "", "reason": f"the YAML expands to more than {MAX_YAML_NODES} nodes"}])
        data = parse_document(text, None)
    except SpecValidationError as exc:
        raise SpecInvalid(kind, problems_out(exc.problems)) from None
    except yaml.YAMLError as exc:
        raise SpecInvalid(kind, [{"pointer": "", "reason": f"not valid YAML: {str(exc).splitlines()[0]}"}]) from None
    except RecursionError:
        raise SpecInvalid(kind, [{"pointer": "", "reason": "the document is nested too deeply"}]) from None
    if not isinstance(data, dict):
        raise SpecInvalid(kind, [{"pointer": "", "reason": f"expected a mapping, got {type(data).__name__}"}])
    return data


__all__ = ["MAX_SPEC_TEXT", "SpecBody", "loaded", "problems_out", "spec_data", "stored", "validated"]

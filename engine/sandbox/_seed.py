"""Reading seed files: which records a sandbox starts with.

A seed is a mapping from a collection to a list of records, in YAML or JSON::

    /customer:                 # the collection path, as in the document
      - {Name: Acme, Currency: USD}
    contacts:                  # or the resource's name (last literal path segment)
      - {properties: {email: a@example.com}}
    /tasks/v1/lists/L1/tasks:  # a concrete path fills one scope of a nested collection
      - {title: Buy milk}

The document's base path may be included (``/ExternalApi/v2/customer``). A
singleton (``/webhooks/v3/{appId}/settings``) takes one record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import SandboxSetupError
from ._model import Resource, norm
from ._routes import Route
from ._store import Scope


def read_seed(source: str | Path | dict | None) -> dict[str, Any]:
    """Parse a seed file (YAML or JSON) or pass a mapping through; None is an empty seed.

    Raises:
        SandboxSetupError: the file cannot be read or parsed, or is not a mapping of lists.
    """
    if source is None:
        return {}
    if isinstance(source, dict):
        data: Any = source
        name = "seed"
    else:
        path = Path(source)
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SandboxSetupError(f"seed {name}", "", f"cannot read: {exc.strerror or exc}") from None
        try:
            data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            reason = str(exc).replace("\n", " ")
            raise SandboxSetupError(f"seed {name}", "", f"not valid YAML or JSON: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SandboxSetupError(f"seed {name}", "", "expected a mapping of collection -> list of records")
    for key, records in data.items():
        if isinstance(records, dict):
            continue
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SandboxSetupError(f"seed {name}", "/" + _escape(str(key)), "expected a list of records (objects)")
    return data


def resolve_seed_key(key: str, resources: list[Resource], base_path: str) -> tuple[Resource, Scope]:
    """Find the resource (and scope) a seed key names.

    Raises:
        SandboxSetupError: no resource, or more than one, matches.
    """
    text = str(key).strip()
    if base_path and (text == base_path or text.startswith(base_path + "/")):
        text = text[len(base_path):] or "/"
    if text.startswith("/"):
        trimmed = text.rstrip("/") or "/"
        for resource in resources:
            if resource.key == trimmed:
                return resource, ()
        for resource in resources:
            params = Route(template=resource.key, served=resource.key).match(trimmed)
            if params is not None:
                return resource, tuple((p, params[p]) for p in resource.scope_params)
    else:
        matches = [r for r in resources if norm(r.name) == norm(text)]
        if len(matches) == 1:
            return matches[0], ()
        if len(matches) > 1:
            raise SandboxSetupError("seed", "/" + _escape(text), "the name is ambiguous; use one of the paths: "
                                    + ", ".join(r.key for r in matches))
    known = ", ".join(r.key for r in resources) or "none"
    raise SandboxSetupError("seed", "/" + _escape(text), f"no collection of the document matches; collections: {known}")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")

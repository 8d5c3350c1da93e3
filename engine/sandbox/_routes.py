"""Matching request paths to the document's path templates.

Every operation is served at the path part of its first server URL joined
with its path template (Cin7's ``https://inventory.dearsystems.com/ExternalApi/v2``
and ``/customer`` give ``/ExternalApi/v2/customer``). A path can match several
templates (``/emails/batch`` and ``/emails/{email_id}``); the one with literal
segments earliest wins, so documented sub-paths beat parameters. A path that
matches some template but none with the request's method is a 405.

Box documents variants of one operation under fragments
(``PUT /folders/{folder_id}#remove_shared_link``): a client sends them to the
path without the fragment, so they are served there as alternatives, tried
in order after the plain operation (see :meth:`Route.candidates`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import SandboxMethodNotAllowed, SandboxNotFound
from ..openapi import Operation

_PARAM = re.compile(r"\{([^{}]+)\}")


def server_path(servers: list[str]) -> str:
    """The path part of the first server URL, without a trailing slash ("" for none or "/")."""
    if not servers:
        return ""
    path = urlsplit(servers[0]).path if "://" in servers[0] else servers[0].split("?")[0]
    path = path.rstrip("/")
    return path if path.startswith("/") or not path else "/" + path


def template_params(template: str) -> list[str]:
    """The parameter names of a path template, in order."""
    return _PARAM.findall(template)


def split_template(template: str) -> list[str]:
    """A template's segments (``/a/{b}/c`` -> ``["a", "{b}", "c"]``)."""
    return [s for s in template.strip("/").split("/") if s]


@dataclass
class Route:
    """One served path template (base path included) and its operations by upper-case method."""

    template: str
    served: str
    operations: dict[str, Operation] = field(default_factory=dict)
    variants: dict[str, list[Operation]] = field(default_factory=dict)  # by method: fragment variants

    def candidates(self, method: str) -> list[Operation]:
        """The operation for ``method`` and then its fragment variants (``#remove_shared_link``)."""
        first = self.operations.get(method.upper())
        return ([first] if first is not None else []) + self.variants.get(method.upper(), [])

    def __post_init__(self) -> None:
        parts = []
        self.rank: list[int] = []
        for segment in split_template(self.served):
            pieces = _PARAM.split(segment)
            # pieces alternate literal, name, literal ...; names become groups
            regex = "".join(
                re.escape(piece) if index % 2 == 0 else f"(?P<p{len(parts)}_{index}>[^/]+)"
                for index, piece in enumerate(pieces)
            )
            parts.append(regex)
            self.rank.append(0 if len(pieces) == 1 else 1)
        self._names = {f"p{seg}_{index}": name for seg, segment in enumerate(split_template(self.served))
                       for index, name in enumerate(_PARAM.split(segment)) if index % 2 == 1}
        self._regex = re.compile("^/" + "/".join(parts) + "$") if parts else re.compile("^/?$")

    def match(self, path: str) -> dict[str, str] | None:
        found = self._regex.match(path)
        if not found:
            return None
        return {self._names[group]: value for group, value in found.groupdict().items()}


class RouteTable:
    """Every operation of a document, findable by method and request path."""

    def __init__(self, operations: list[Operation], default_servers: list[str]):
        self._routes: dict[str, Route] = {}
        for operation in operations:
            base = server_path(operation.servers or default_servers)
            path, fragment = operation.path.split("#", 1) if "#" in operation.path else (operation.path, "")
            served = (base + "/" + path.strip("/")).rstrip("/") or "/"
            route = self._routes.setdefault(served, Route(template=path, served=served))
            method = operation.method.upper()
            if fragment or method in route.operations:
                route.variants.setdefault(method, []).append(operation)
            else:
                route.operations[method] = operation
        self.routes = sorted(self._routes.values(), key=lambda r: (r.rank, r.served))

    def match(self, method: str, path: str) -> tuple[Route, Operation, dict[str, str]]:
        """Return the route, operation and raw path parameters for a request.

        Raises:
            SandboxNotFound: no template matches the path.
            SandboxMethodNotAllowed: templates match, none with this method.
        """
        normalised = path.rstrip("/") or "/"
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(normalised)
            if params is None:
                continue
            candidates = route.candidates(method)
            if candidates:
                return route, candidates[0], params
            allowed.extend(m for m in route.operations if m not in allowed)
        if allowed:
            raise SandboxMethodNotAllowed(method.upper(), path, sorted(allowed))
        raise SandboxNotFound(method.upper(), path, "no operation of the document matches this path")

    def alternatives(self, method: str, path: str) -> list[tuple[Operation, dict[str, str]]]:
        """Every operation for ``method`` a path may mean, best first, each with its raw path parameters.

        Templates of the same shape that differ only in parameter names (Xero's
        ``/Contacts/{ContactID}`` and ``/Contacts/{ContactNumber}``) all match a
        path: the request's values decide (a number is not a uuid), so each is a
        candidate, after the first template's own operation and variants.
        """
        normalised = path.rstrip("/") or "/"
        found: list[tuple[Operation, dict[str, str]]] = []
        rank = None
        for route in self.routes:
            if rank is not None and route.rank != rank:
                break
            params = route.match(normalised)
            candidates = route.candidates(method) if params is not None else []
            if not candidates:
                continue
            rank = route.rank
            found.extend((operation, params) for operation in candidates)
        return found

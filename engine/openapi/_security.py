"""OpenAPI security schemes -> the connector's one auth scheme.

A connector has one auth scheme; a document may offer several, as
alternatives (the entries of a ``security`` list) or combined (the keys of one
entry, as Cin7 Core's two API-key headers). The choice is deterministic:

1. candidate requirements in order: the document's ``security``, then each
   operation's (first appearance first), then every defined scheme on its own;
2. the first candidate that can be expressed wins: API keys (one or several
   together), http bearer, http basic, OAuth 2.0 authorization code or client
   credentials. An implicit-only OAuth 2.0 scheme has no token URL, so it only
   wins when nothing else can (then with a warning); openIdConnect, password
   flow and other http schemes cannot be expressed and are warned about;
3. with no security at all, required header parameters that carry a
   credential (Postmark's ``X-Postmark-Account-Token``) become API-key auth,
   so credentials never travel as plain action inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from ..errors import Problem
from ._document import OpenAPIDocument, Operation
from ._refs import join

# "password" is left out on purpose: in bodies it is mostly user data (swagger-petstore's User).
_CREDENTIAL_HEADER = re.compile(
    r"(^|[-_])(token|api[-_]?key|apikey|api[-_]?secret|secret|authorization|access[-_]?key)($|[-_])", re.IGNORECASE
)


def looks_like_credential(name: str) -> bool:
    """True for parameter names that usually carry a secret (``X-Postmark-Account-Token``, ``api_key``)."""
    return bool(_CREDENTIAL_HEADER.search(name))


def credential_name(name: str) -> str:
    """A credential field name from a scheme or header name.

    ``X-Postmark-Account-Token`` -> ``postmark_account_token``; ``accountId`` -> ``account_id``.
    """
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    snake = re.sub(r"[^A-Za-z0-9]+", "_", snake).strip("_").lower()
    if snake.startswith("x_"):
        snake = snake[2:]
    return snake or "api_key"


@dataclass
class AuthChoice:
    """The chosen auth (a dict ready for the AuthSpec union) and which scheme names it came from."""

    auth: dict[str, Any]
    schemes: list[str]
    header_names: frozenset[str] = frozenset()  # headers the auth sets; parameters of that name are not inputs


def choose_auth(doc: OpenAPIDocument, base_url: str, warnings: list[Problem]) -> AuthChoice:
    """Pick the connector's auth from ``doc`` (see the module docstring); append warnings as found."""
    schemes = doc.security_schemes
    scheme_base = "/securityDefinitions" if doc.openapi_version.startswith("2") else "/components/securitySchemes"
    for name, scheme in schemes.items():
        problem = _unsupported(scheme)
        if problem:
            warnings.append(Problem(join(scheme_base, name), problem))
    candidates: list[dict[str, list[str]]] = []
    for requirement in doc.security + [r for op in doc.operations for r in op.security]:
        if requirement and requirement not in candidates:
            candidates.append(requirement)
    candidates += [{name: []} for name in schemes]
    scopes = _scopes_by_scheme(doc)
    for requirement in candidates:
        auth = _express(requirement, schemes, scopes, base_url, strict=True)
        if auth is not None:
            return auth
    for requirement in candidates:
        auth = _express(requirement, schemes, scopes, base_url, strict=False)
        if auth is not None:
            name = auth.schemes[0]
            warnings.append(Problem(
                join(scheme_base, name),
                f"OAuth 2.0 scheme {name!r} only offers the implicit flow, which has no token URL; the connector uses "
                "the authorization code flow with token_url set to the authorization URL: replace token_url with "
                "the provider's token endpoint",
            ))
            return auth
    if schemes:
        warnings.append(Problem(scheme_base, "none of the document's security schemes can be expressed; the connector "
                                             "has no auth (set it by hand)"))
    return AuthChoice({"type": "none"}, [])


def action_auth(op: Operation, chosen: AuthChoice, doc: OpenAPIDocument, base_url: str,
                warnings: list[Problem]) -> AuthChoice | None:
    """The auth one operation needs when the connector's auth does not satisfy it, else None.

    An API may secure operations with different schemes (swagger-petstore: an
    API key for the store, OAuth for pets). The first requirement of the
    operation that can be expressed becomes the action's own auth; an
    implicit-flow-only OAuth scheme is expressed as a bearer token (the token
    the implicit flow hands out), with a warning.
    """
    requirements = [r for r in op.security if r]
    if not requirements or not chosen.schemes:
        return None
    if any(set(r) == set(chosen.schemes) for r in requirements):
        return None
    schemes, scopes = doc.security_schemes, _scopes_by_scheme(doc)
    for requirement in requirements:
        choice = _express(requirement, schemes, scopes, base_url, strict=True)
        if choice is not None:
            # Google lists alternative schemes in one requirement; the connector's may be one of them.
            return None if choice.auth == chosen.auth else choice
    for requirement in requirements:
        names = [n for n in requirement if n in schemes and schemes[n].get("type") == "oauth2"]
        if len(names) == 1 and len(requirement) == 1:
            name = names[0]
            warnings.append(Problem(op.pointer, (
                f"the operation needs OAuth 2.0 scheme {name!r}, which only offers the implicit flow; the action "
                f"sends the token it hands out as a bearer token (credential {credential_name(name)!r})")))
            return AuthChoice({"type": "bearer", "credential": credential_name(name)}, [name], frozenset({"authorization"}))
    return None


def credential_headers(doc: OpenAPIDocument) -> list[tuple[str, str]]:
    """``(header name, pointer of its first use)`` for required header parameters that look like credentials."""
    found: dict[str, str] = {}
    for op in doc.operations:
        for index, param in enumerate(op.parameters):
            if param.in_ == "header" and param.required and looks_like_credential(param.name):
                found.setdefault(param.name, join(op.pointer, "parameters", index))
    return list(found.items())


def header_auth(headers: list[tuple[str, str]]) -> AuthChoice:
    """API-key auth that sends each credential header (used when the document declares no security)."""
    keys = [{"credential": credential_name(h), "in": "header", "name": h} for h, _ in headers]
    return AuthChoice({"type": "api_key", "keys": keys}, [], frozenset(h.lower() for h, _ in headers))


def _unsupported(scheme: dict) -> str | None:
    kind = scheme.get("type")
    if kind == "openIdConnect":
        return "openIdConnect discovery is not supported; use an oauth2 scheme with explicit URLs instead"
    if kind == "http" and str(scheme.get("scheme", "")).lower() not in ("bearer", "basic"):
        return f"http scheme {scheme.get('scheme')!r} is not supported (bearer and basic are)"
    if kind == "oauth2":
        flows = scheme.get("flows") or {}
        if "password" in flows and not ({"authorizationCode", "clientCredentials", "implicit"} & set(flows)):
            return "the OAuth 2.0 password flow is not supported"
    if kind not in ("apiKey", "http", "oauth2", "openIdConnect", "mutualTLS"):
        return f"unknown security scheme type {kind!r}"
    if kind == "mutualTLS":
        return "mutual TLS is not supported"
    return None


def _scopes_by_scheme(doc: OpenAPIDocument) -> dict[str, list[str]]:
    """Scopes the operations ask of each scheme, in first-seen order (not every scope the provider defines)."""
    found: dict[str, dict[str, None]] = {}
    for requirement in doc.security + [r for op in doc.operations for r in op.security]:
        for name, scopes in requirement.items():
            found.setdefault(name, {}).update(dict.fromkeys(scopes))
    return {name: list(scopes) for name, scopes in found.items()}


def _express(requirement: dict[str, list[str]], schemes: dict[str, dict], scopes: dict[str, list[str]],
             base_url: str, *, strict: bool) -> AuthChoice | None:
    if not requirement or any(name not in schemes for name in requirement):
        return None
    names = list(requirement)
    kinds = {schemes[name].get("type") for name in names}
    if kinds == {"apiKey"}:
        keys = []
        for name in names:
            scheme = schemes[name]
            if scheme.get("in") not in ("header", "query", "cookie") or not scheme.get("name"):
                return None
            keys.append({"credential": credential_name(name), "in": scheme["in"], "name": str(scheme["name"])})
        headers = frozenset(k["name"].lower() for k in keys if k["in"] == "header")
        return AuthChoice({"type": "api_key", "keys": keys}, names, headers)
    if len(names) > 1 and kinds == {"oauth2"}:
        # Google lists its implicit and code-flow schemes in one requirement; they are alternatives in practice.
        for name in sorted(names, key=lambda n: "authorizationCode" not in (schemes[n].get("flows") or {})):
            choice = _express({name: requirement[name]}, schemes, scopes, base_url, strict=strict)
            if choice is not None:
                return choice
        return None
    if len(names) != 1:
        return None
    name = names[0]
    scheme = schemes[name]
    if scheme.get("type") == "http":
        kind = str(scheme.get("scheme", "")).lower()
        if kind == "bearer":
            return AuthChoice({"type": "bearer"}, names, frozenset({"authorization"}))
        if kind == "basic":
            return AuthChoice({"type": "basic"}, names, frozenset({"authorization"}))
        return None
    if scheme.get("type") == "oauth2":
        return _oauth2(name, scheme, scopes.get(name, []), base_url, strict)
    return None


def _oauth2(name: str, scheme: dict, scopes: list[str], base_url: str, strict: bool) -> AuthChoice | None:
    flows = scheme.get("flows") or {}
    code = flows.get("authorizationCode")
    if isinstance(code, dict) and code.get("authorizationUrl") and code.get("tokenUrl"):
        auth = {"type": "oauth2", "flow": "authorization_code",
                "authorize_url": _absolute(code["authorizationUrl"], base_url),
                "token_url": _absolute(code["tokenUrl"], base_url), "scopes": scopes}
        if code.get("refreshUrl"):
            auth["refresh_url"] = _absolute(code["refreshUrl"], base_url)
        return AuthChoice(auth, [name], frozenset({"authorization"}))
    client = flows.get("clientCredentials")
    if isinstance(client, dict) and client.get("tokenUrl"):
        auth = {"type": "oauth2", "flow": "client_credentials", "token_url": _absolute(client["tokenUrl"], base_url),
                "scopes": scopes}
        return AuthChoice(auth, [name], frozenset({"authorization"}))
    implicit = flows.get("implicit")
    if not strict and isinstance(implicit, dict) and implicit.get("authorizationUrl"):
        url = _absolute(implicit["authorizationUrl"], base_url)
        auth = {"type": "oauth2", "flow": "authorization_code", "authorize_url": url, "token_url": url,
                "scopes": scopes}
        return AuthChoice(auth, [name], frozenset({"authorization"}))
    return None


def _absolute(url: str, base_url: str) -> str:
    return urljoin(base_url + "/", str(url)) if not re.match(r"^https?://", str(url), re.IGNORECASE) else str(url)

"""Errors raised by the engine.

Every error carries typed fields, a stable ``code`` and the ``http_status``
that ``api/`` maps it to; the message is built from the fields.

EngineError                         root
 +-- SpecError                      a spec or document is invalid (422)
 |    +-- SpecValidationError       pydantic/JSON Schema problems, each with a JSON pointer
 |    +-- ExpressionError           an expression does not parse or fails to evaluate
 |    +-- OpenAPIImportError        an OpenAPI/Swagger document cannot be imported (engine/openapi)
 +-- (each block below adds its part of the tree)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class EngineError(Exception):
    """Root of every engine error."""

    code = "engine_error"
    http_status = 500


# --- specs ---
@dataclass(frozen=True)
class Problem:
    """One problem in a document: where (a JSON pointer) and why."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


class SpecError(EngineError):
    """A spec or document cannot be used."""

    code = "spec_invalid"
    http_status = 422


class SpecValidationError(SpecError, ValueError):
    """A spec failed validation; ``problems`` name each JSON pointer and reason."""

    code = "spec_validation_failed"

    def __init__(self, kind: str, problems: list[Problem], source: str | None = None):
        self.kind = kind
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "; ".join(str(p) for p in self.problems[:20])
        more = f" (+{len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(f"invalid {kind}{where}: {lines}{more}")


class ExpressionError(SpecError):
    """An expression failed to parse or evaluate."""

    code = "expression_error"

    def __init__(self, expression: str, reason: str, pointer: str | None = None):
        self.expression = expression
        self.reason = reason
        self.pointer = pointer
        at = f" at {pointer}" if pointer else ""
        super().__init__(f"expression {expression!r}{at}: {reason}")


# --- end specs ---


# --- openapi ---
class OpenAPIImportError(SpecError):
    """An OpenAPI or Swagger document cannot be imported.

    ``source`` names the document (a path, a URL or ``<text>``), ``pointer`` the
    JSON pointer of the offending part ("" for the whole document) and
    ``reason`` what is wrong with it.
    """

    code = "openapi_import_failed"
    http_status = 422

    def __init__(self, source: str | None, pointer: str, reason: str):
        self.source = source
        self.pointer = pointer
        self.reason = reason
        where = f" {source}" if source else ""
        at = f" at {pointer}" if pointer else ""
        super().__init__(f"cannot import OpenAPI document{where}{at}: {reason}")


# --- end openapi ---


# --- http ---
# OutboundHttpError                 an outbound HTTP call failed (engine/http)
#  +-- EgressDenied                 the SSRF guard refused a destination (403)
#  +-- OutboundRequestInvalid       the request itself cannot be sent: bad URL, scheme, header (400)
#  +-- TooManyRedirects             more redirects than allowed (502)
#  +-- UpstreamUnavailable          transport failure after every attempt (502)
#       +-- UpstreamTimeout         ... and the last failure was a timeout (504; also a TimeoutError)
class OutboundHttpError(EngineError):
    """Root of the errors raised by engine.http."""

    code = "outbound_http_error"
    http_status = 502


class EgressDenied(OutboundHttpError):
    """The egress guard refused a destination (an SSRF attempt or a misconfiguration).

    ``url`` is the (redacted) URL asked for, ``host`` the host as written in it,
    ``address`` the IP address that was refused (None when the name itself was
    refused before resolution) and ``reason`` why.
    """

    code = "egress_denied"
    http_status = 403

    def __init__(self, url: str | None, host: str, address: str | None, reason: str):
        self.url = url
        self.host = host
        self.address = address
        self.reason = reason
        resolved = f" (resolved to {address})" if address and address != host else ""
        target = f" in {url}" if url else ""
        super().__init__(
            f"egress to host {host!r}{resolved}{target} refused: {reason}; "
            "add it to the egress allow-list if this destination is intended"
        )


class OutboundRequestInvalid(OutboundHttpError, ValueError):
    """The request cannot be sent as given (malformed URL, unsupported scheme, bad header)."""

    code = "outbound_request_invalid"
    http_status = 400

    def __init__(self, method: str, url: str, reason: str):
        self.method = method
        self.url = url
        self.reason = reason
        super().__init__(f"cannot send {method} {url}: {reason}")


class TooManyRedirects(OutboundHttpError):
    """A request was redirected more than ``max_redirects`` times."""

    code = "too_many_redirects"
    http_status = 502

    def __init__(self, method: str, url: str, max_redirects: int):
        self.method = method
        self.url = url
        self.max_redirects = max_redirects
        super().__init__(f"{method} {url}: more than {max_redirects} redirects")


class UpstreamUnavailable(OutboundHttpError):
    """No response could be obtained from the upstream after ``attempts`` attempts."""

    code = "upstream_unavailable"
    http_status = 502

    def __init__(self, method: str, url: str, attempts: int, reason: str):
        self.method = method
        self.url = url
        self.attempts = attempts
        self.reason = reason
        plural = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"{method} {url} failed after {attempts} {plural}: {reason}")


class UpstreamTimeout(UpstreamUnavailable, TimeoutError):
    """Like UpstreamUnavailable, where the last attempt timed out."""

    code = "upstream_timeout"
    http_status = 504


# --- end http ---


# --- auth ---
# AuthError                         credentials could not be applied to a request (engine/auth)
#  +-- CredentialsInvalid           a credential the scheme needs is missing or malformed (409)
#  +-- ReauthorizationRequired      the grant is revoked or expired: the connection needs a reconnect (409)
#  +-- OAuthError                   the authorization server refused a token request (502)
#  +-- TokenEndpointUnavailable     the token endpoint failed transiently; retry later (503)
# 409, not 401: a 401 from our API would tell its caller that *their* key is wrong, while
# the problem is the state of a customer's connection. Messages never hold credential values.
class AuthError(EngineError):
    """Root of the errors raised by engine.auth."""

    code = "auth_error"
    http_status = 409


class CredentialsInvalid(AuthError):
    """The credential ``field`` of ``connector_id``'s connection is missing or malformed."""

    code = "credentials_invalid"
    http_status = 409

    def __init__(self, connector_id: str, field: str, reason: str):
        self.connector_id = connector_id
        self.field = field
        self.reason = reason
        super().__init__(f"connection {connector_id!r}: credential {field!r} {reason}")


class ReauthorizationRequired(AuthError):
    """The OAuth grant of ``connector_id``'s connection is gone (revoked, expired, never made).

    Not transient: the end customer must connect the app again.
    """

    code = "reauthorization_required"
    http_status = 409

    def __init__(self, connector_id: str | None, reason: str):
        self.connector_id = connector_id
        self.reason = reason
        which = f"connection {connector_id!r}" if connector_id else "the connection"
        super().__init__(f"{which} must be authorized again: {reason}")


class OAuthError(AuthError):
    """The authorization server at ``endpoint`` refused a token request with OAuth ``error``.

    ``description`` is the server's ``error_description`` (shortened, credentials removed),
    ``status`` its HTTP status. Not transient: the client id, secret or scopes need fixing.
    """

    code = "oauth_error"
    http_status = 502

    def __init__(self, error: str, description: str | None = None, *, status: int | None = None, endpoint: str | None = None):
        self.error = error
        self.description = description
        self.status = status
        self.endpoint = endpoint
        where = f" at {endpoint}" if endpoint else ""
        answered = f" (HTTP {status})" if status is not None else ""
        detail = f": {description}" if description else ""
        super().__init__(f"authorization server{where} refused the token request{answered}: {error}{detail}")


class TokenEndpointUnavailable(AuthError):
    """The token endpoint gave no usable answer for a transient reason (5xx, 429, timeout,
    connection failure, after the HTTP client's retries). The grant may well be intact."""

    code = "token_endpoint_unavailable"
    http_status = 503

    def __init__(self, endpoint: str, reason: str):
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"token endpoint {endpoint} unavailable: {reason}")


# --- end auth ---

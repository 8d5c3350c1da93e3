"""Errors raised by the engine.

Every error carries typed fields, a stable ``code`` and the ``http_status``
that ``api/`` maps it to; the message is built from the fields.

Hierarchy (class, code, HTTP status)::

    EngineError                                  engine_error (500)
    ├── SpecError                                spec_invalid (422)
    │   ├── SpecValidationError                  spec_validation_failed (422)
    │   ├── ExpressionError                      expression_error (422)
    │   │   ├── ExpressionLimitExceeded          expression_limit_exceeded (422)
    │   │   └── ExpressionFunctionForbidden      expression_function_forbidden (422)
    │   └── OpenAPIImportError                   openapi_import_failed (422)
    ├── OutboundHttpError                        outbound_http_error (502)
    │   ├── EgressDenied                         egress_denied (403)
    │   ├── OutboundRequestInvalid               outbound_request_invalid (400)
    │   ├── TooManyRedirects                     too_many_redirects (502)
    │   └── UpstreamUnavailable                  upstream_unavailable (502)
    │       └── UpstreamTimeout                  upstream_timeout (504)
    ├── ActionError                              action_error (502)
    │   ├── UnknownAction                        unknown_action (404)
    │   ├── ActionInputInvalid                   action_input_invalid (422)
    │   ├── ActionFailed                         action_failed (502)
    │   │   └── ActionRetryLater                 action_retry_later (503)
    │   └── ResponseInvalid                      action_response_invalid (502)
    ├── AuthError                                auth_error (409)
    │   ├── CredentialsInvalid                   credentials_invalid (409)
    │   ├── ReauthorizationRequired              reauthorization_required (409)
    │   ├── OAuthError                           oauth_error (502)
    │   └── TokenEndpointUnavailable             token_endpoint_unavailable (503)
    ├── SandboxError                             sandbox_error (500)
    │   ├── SandboxSetupError                    sandbox_setup_failed (422)
    │   ├── SandboxStartError                    sandbox_start_failed (500)
    │   └── SandboxRequestError                  sandbox_request_rejected (400)
    │       ├── SandboxBadRequest                malformed_request (400)
    │       ├── SandboxUnauthorized              unauthorized (401)
    │       ├── SandboxNotFound                  not_found (404)
    │       ├── SandboxMethodNotAllowed          method_not_allowed (405)
    │       ├── SandboxRequestInvalid            request_invalid (422)
    │       └── SandboxConflict                  conflict (409)
    ├── WorkflowError                            workflow_error (500)
    │   ├── WorkflowInputInvalid                 workflow_input_invalid (422)
    │   ├── WorkflowNotFound                     workflow_not_found (422)
    │   ├── StepFailed                           step_failed (502)
    │   ├── StepExpressionError                  step_expression_error (422)
    │   │   └── ExpressionBudgetExceeded         expression_budget_exceeded (422)
    │   ├── StepValueError                       step_value_invalid (422)
    │   ├── SyncConfigError                      sync_config_invalid (422)
    │   ├── CallDepthExceeded                    call_depth_exceeded (422)
    │   ├── WaitUnavailable                      wait_unavailable (409)
    │   ├── WaitTimedOut                         wait_timed_out (504), also TimeoutError
    │   └── ReplayDivergence                     replay_divergence (409)
    ├── SecretNotFound                           secret_not_found (422)
    └── RecordedCallError                        recorded_call_error (502)

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

    def at(self, pointer: str) -> "ExpressionError":
        """The same error (same class and fields) located at ``pointer``."""
        # not copy.copy: exceptions copy through their args, which are not the constructor's
        located = type(self).__new__(type(self))
        located.__dict__.update(self.__dict__)
        located.pointer = pointer
        located.args = (f"expression {self.expression!r} at {pointer}: {self.reason}",)
        return located


class ExpressionLimitExceeded(ExpressionError):
    """An evaluation went over its budget (``engine.expressions.ExpressionBudget``).

    ``limit`` names the bound (``seconds``: the CPU time of a run's evaluations
    together; ``depth``: nesting of evaluation, recursion included; ``items``:
    the length of one array; ``total_items``: the array lengths one evaluation
    builds, summed; ``string``: the length of one string; ``cancelled``: the
    run was cancelled) and ``allowed`` its value.
    """

    code = "expression_limit_exceeded"

    def __init__(self, expression: str, limit: str, allowed: float, detail: str = "",
                 pointer: str | None = None):
        self.limit = limit
        self.allowed = allowed
        self.detail = detail
        reason = f"exceeded the expression budget: {limit} (allowed {allowed:g})"
        super().__init__(expression, f"{reason}; {detail}" if detail else reason, pointer)


class ExpressionFunctionForbidden(ExpressionError):
    """An expression used a function that would evaluate data as an expression (``$eval``).

    Data never becomes code: a string that arrives in a request or a record is
    never parsed as an expression, so workflows cannot be made to run what
    their input says.
    """

    code = "expression_function_forbidden"

    def __init__(self, expression: str, function: str, pointer: str | None = None):
        self.function = function
        super().__init__(expression, f"${function} is not allowed: it evaluates data as an expression", pointer)


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

    def __init__(self, url: str | None, host: str, address: str | None, reason: str, *, allowable: bool = True):
        self.url = url
        self.host = host
        self.address = address
        self.reason = reason
        self.allowable = allowable
        at = f" (address {address})" if address and address != host else ""
        target = f" in {url}" if url else ""
        hint = "; add it to the egress allow-list if this destination is intended" if allowable else ""
        super().__init__(f"egress to host {host!r}{at}{target} refused: {reason}{hint}")


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


# --- actions ---
class ActionError(EngineError):
    """Calling a connector action failed."""

    code = "action_error"
    http_status = 502


class UnknownAction(ActionError, LookupError):
    """A step or call names a connector or action that is not loaded."""

    code = "unknown_action"
    http_status = 404

    def __init__(self, connector: str, action: str | None, known: list[str]):
        self.connector = connector
        self.action = action
        self.known = known
        what = f"action {connector}.{action}" if action else f"connector {connector!r}"
        super().__init__(f"unknown {what} (known: {', '.join(known) or 'none'})")


class ActionInputInvalid(ActionError, ValueError):
    """An action's input does not match its input schema."""

    code = "action_input_invalid"
    http_status = 422

    def __init__(self, connector: str, action: str, problems: list[Problem]):
        self.connector = connector
        self.action = action
        self.problems = problems
        detail = "; ".join(str(p) for p in problems)
        super().__init__(f"invalid input for {connector}.{action}: {detail}")


class ActionFailed(ActionError):
    """The app answered an action with a status that is not a success."""

    code = "action_failed"
    http_status = 502

    def __init__(self, connector: str, action: str, method: str, url: str, status: int, detail: str):
        self.connector = connector
        self.action = action
        self.method = method
        self.url = url
        self.status = status
        self.detail = detail
        super().__init__(f"{connector}.{action}: {method} {url} answered {status}: {detail}")


class ActionRetryLater(ActionFailed):
    """The app asked to be called again later (``Retry-After``) than the step's retry policy waits
    inline (its ``max_delay``). ``retry_after`` is the seconds it asked for; ``attempts`` the
    attempts made of the request so far. A durable run sleeps durably and calls again (within the
    step's ``max_attempts``); an inline run fails with this error. 503: the app is unavailable to
    this connection for now, and ``retry_after`` says for how long."""

    code = "action_retry_later"
    http_status = 503

    def __init__(self, connector: str, action: str, method: str, url: str, status: int, detail: str, *,
                 retry_after: float, max_delay: float, attempts: int):
        self.retry_after = retry_after
        self.max_delay = max_delay
        self.attempts = attempts
        super().__init__(connector, action, method, url, status, detail)
        self.args = (f"{connector}.{action}: {method} {url} answered {status} asking to retry after "
                     f"{retry_after:g} s, longer than the step waits inline ({max_delay:g} s): {detail}",)


class ResponseInvalid(ActionError):
    """A response could not be read as the action says (not JSON, no items list)."""

    code = "action_response_invalid"
    http_status = 502

    def __init__(self, connector: str, action: str, reason: str):
        self.connector = connector
        self.action = action
        self.reason = reason
        super().__init__(f"{connector}.{action}: {reason}")


# --- end actions ---


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


# --- sandbox ---
# SandboxError                      a sandbox app cannot serve, or turns a request away (engine/sandbox)
#  +-- SandboxSetupError            the document or the seed cannot be served (422)
#  +-- SandboxStartError            the sandbox server did not come up (500)
#  +-- SandboxRequestError          a request the fake API rejects; rendered as its HTTP response
#       +-- SandboxBadRequest       the body cannot be parsed (400)
#       +-- SandboxUnauthorized     the operation needs credentials and none were sent (401)
#       +-- SandboxNotFound         no such route, or no such record (404)
#       +-- SandboxMethodNotAllowed the path exists, the method does not (405)
#       +-- SandboxRequestInvalid   parameters or body violate the document (422)
#       +-- SandboxConflict         a create names a key that is taken (409)
@dataclass(frozen=True)
class RequestProblem:
    """One thing wrong with a request: where (``location`` body/query/path/header/cookie, a parameter ``name`` or a
    JSON ``pointer`` into the body) and why."""

    location: str
    reason: str
    name: str | None = None
    pointer: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"in": self.location, "reason": self.reason}
        if self.name is not None:
            out["name"] = self.name
        if self.pointer is not None:
            out["pointer"] = self.pointer
        return out

    def __str__(self) -> str:
        where = self.name if self.name is not None else (self.pointer or "/")
        return f"{self.location} {where}: {self.reason}"


class SandboxError(EngineError):
    """Root of the errors raised by engine.sandbox."""

    code = "sandbox_error"
    http_status = 500


class SandboxSetupError(SandboxError, ValueError):
    """The sandbox cannot be built: ``what`` (document, seed) at ``pointer`` is unusable for ``reason``."""

    code = "sandbox_setup_failed"
    http_status = 422

    def __init__(self, what: str, pointer: str, reason: str):
        self.what = what
        self.pointer = pointer
        self.reason = reason
        super().__init__(f"cannot serve a sandbox: {what} at {pointer or '/'}: {reason}")


class SandboxStartError(SandboxError):
    """The sandbox server did not start listening on ``host``:``port``."""

    code = "sandbox_start_failed"
    http_status = 500

    def __init__(self, host: str, port: int, reason: str):
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"sandbox server on {host}:{port} did not start: {reason}")


class SandboxRequestError(SandboxError):
    """A request the sandbox turns away; ``problems`` say what and where. Rendered as the HTTP response."""

    code = "sandbox_request_rejected"
    http_status = 400

    def __init__(self, method: str, path: str, reason: str, problems: list[RequestProblem] | None = None):
        self.method = method
        self.path = path
        self.reason = reason
        self.problems = list(problems or [])
        details = "; ".join(str(p) for p in self.problems[:10])
        super().__init__(f"{method} {path}: {reason}" + (f": {details}" if details else ""))


class SandboxBadRequest(SandboxRequestError):
    """The request body cannot be parsed as its content type says."""

    code = "malformed_request"
    http_status = 400


class SandboxUnauthorized(SandboxRequestError):
    """The operation requires credentials and the request carries none of the accepted kinds."""

    code = "unauthorized"
    http_status = 401


class SandboxNotFound(SandboxRequestError):
    """No operation matches the path, or the record it names does not exist."""

    code = "not_found"
    http_status = 404


class SandboxMethodNotAllowed(SandboxRequestError):
    """The path exists but not with this method; ``allowed`` lists the methods it has."""

    code = "method_not_allowed"
    http_status = 405

    def __init__(self, method: str, path: str, allowed: list[str]):
        self.allowed = list(allowed)
        super().__init__(method, path, f"method not allowed; allowed: {', '.join(self.allowed)}")


class SandboxRequestInvalid(SandboxRequestError):
    """Parameters or body violate the document's schemas."""

    code = "request_invalid"
    http_status = 422


class SandboxConflict(SandboxRequestError):
    """A create names a key that another record already has."""

    code = "conflict"
    http_status = 409


# --- end sandbox ---


# --- workflow ---
# WorkflowError                     a workflow run failed (engine/workflow); carries run_id and step_id
#  +-- WorkflowInputInvalid         the input does not match the workflow's input schema (422)
#  +-- WorkflowNotFound             a call step names a workflow (version) the lookup does not know (422)
#  +-- StepFailed                   a step failed on an action or another engine error; wraps ``cause`` (cause's status)
#  +-- StepExpressionError          an expression in a step failed; names step, JSON pointer, expression (422)
#  |    +-- ExpressionBudgetExceeded  ... because the run's expressions went over their budget (422)
#  +-- StepValueError               a template gave a value the step cannot use (422)
#  +-- SyncConfigError              a sync step lacks what it needs (an action, a list result) (422)
#  +-- CallDepthExceeded            call steps nested deeper than the limit (422)
#  +-- ReplayDivergence             a replay departed from its record (409: the record conflicts with the
#                                   workflow or input given; not a server fault, and retrying cannot help)
# SecretNotFound                    a secret provider has no secret of that name (422)
# RecordedCallError                 replay: a call that failed when recorded fails again from the record
class WorkflowError(EngineError):
    """Root of the errors of a workflow run; ``run_id`` and ``step_id`` say where (None when not in one)."""

    code = "workflow_error"
    http_status = 500

    def __init__(self, message: str, *, run_id: str | None = None, step_id: str | None = None):
        self.run_id = run_id
        self.step_id = step_id
        super().__init__(message)


def _where(run_id: str | None, step_id: str | None) -> str:
    parts = [f"run {run_id!r}" if run_id else "", f"step {step_id!r}" if step_id else ""]
    text = ", ".join(p for p in parts if p)
    return f"{text}: " if text else ""


class WorkflowInputInvalid(WorkflowError, ValueError):
    """The input of a run (or of a call step's child run) does not match the workflow's input schema."""

    code = "workflow_input_invalid"
    http_status = 422
    problem_fields = ("errors",)

    def __init__(self, workflow_id: str, problems: list[Problem], *, run_id: str | None = None,
                 step_id: str | None = None):
        self.workflow_id = workflow_id
        self.problems = list(problems)
        # What an API caller is shown: each problem's JSON pointer into the input and its reason.
        self.errors = [{"pointer": p.pointer, "reason": p.message} for p in self.problems]
        detail = "; ".join(str(p) for p in self.problems[:20])
        super().__init__(f"{_where(run_id, step_id)}invalid input for workflow {workflow_id!r}: {detail}",
                         run_id=run_id, step_id=step_id)


class WorkflowNotFound(WorkflowError, LookupError):
    """A call step names a workflow, or a version of one, that the workflow lookup does not know."""

    code = "workflow_not_found"
    http_status = 422

    def __init__(self, workflow_id: str, version: int | None, *, run_id: str | None = None,
                 step_id: str | None = None):
        self.workflow_id = workflow_id
        self.version = version
        which = f"{workflow_id!r} version {version}" if version is not None else repr(workflow_id)
        super().__init__(f"{_where(run_id, step_id)}unknown workflow {which}", run_id=run_id, step_id=step_id)


class StepFailed(WorkflowError):
    """A step failed because an action call (or another engine part) raised ``cause``.

    ``action`` is ``connector.action`` when an action call failed, else None;
    ``http_status`` is the cause's.
    """

    code = "step_failed"
    http_status = 502

    def __init__(self, run_id: str, step_id: str, step_path: str, action: str | None, cause: EngineError):
        self.step_path = step_path
        self.action = action
        self.cause = cause
        self.http_status = getattr(cause, "http_status", StepFailed.http_status)
        what = f" (action {action})" if action else ""
        path = f" at {step_path!r}" if step_path != step_id else ""
        super().__init__(f"run {run_id!r}: step {step_id!r}{path}{what} failed: {cause}",
                         run_id=run_id, step_id=step_id)


class StepExpressionError(WorkflowError):
    """An expression or template in a step failed to parse or evaluate.

    ``pointer`` is the JSON pointer of the failing template in the workflow document.
    """

    code = "step_expression_error"
    http_status = 422

    def __init__(self, run_id: str, step_id: str, workflow_id: str, pointer: str, expression: str, reason: str,
                 cause: ExpressionError | None = None):
        self.workflow_id = workflow_id
        self.pointer = pointer
        self.expression = expression
        self.reason = reason
        # the expression-level error (its code says why: a forbidden function, a limit...)
        self.cause = cause
        super().__init__(f"run {run_id!r}: step {step_id!r}: expression {expression!r} at {pointer} "
                         f"in workflow {workflow_id!r}: {reason}", run_id=run_id, step_id=step_id)


class ExpressionBudgetExceeded(StepExpressionError):
    """A run's expressions went over the run's budget (``Dependencies.budget``), failing the run.

    ``limit`` and ``allowed`` say which bound (see :class:`ExpressionLimitExceeded`);
    ``pointer`` and ``expression`` name the evaluation that crossed it, which is
    not always the one that used most of a shared bound (``seconds``).
    """

    code = "expression_budget_exceeded"
    http_status = 422

    def __init__(self, run_id: str, step_id: str, workflow_id: str, pointer: str, cause: ExpressionLimitExceeded):
        self.limit = cause.limit
        self.allowed = cause.allowed
        super().__init__(run_id, step_id, workflow_id, pointer, cause.expression, cause.reason, cause)


class StepValueError(WorkflowError, ValueError):
    """A template gave a value the step cannot use (items that are not a list, a negative delay)."""

    code = "step_value_invalid"
    http_status = 422

    def __init__(self, run_id: str, step_id: str, pointer: str, reason: str):
        self.pointer = pointer
        self.reason = reason
        super().__init__(f"run {run_id!r}: step {step_id!r}: value at {pointer}: {reason}",
                         run_id=run_id, step_id=step_id)


class WaitUnavailable(WorkflowError):
    """A ``wait`` step ran where nothing can wait for an event (inline, a dry run): only a durable
    Long execution waits."""

    code = "wait_unavailable"
    http_status = 409

    def __init__(self, run_id: str, step_id: str, reason: str):
        self.reason = reason
        super().__init__(f"run {run_id!r}: wait step {step_id!r}: {reason}", run_id=run_id, step_id=step_id)


class WaitTimedOut(WorkflowError, TimeoutError):
    """No matching event arrived within a ``wait`` step's timeout (``on_timeout: fail``)."""

    code = "wait_timed_out"
    http_status = 504

    def __init__(self, run_id: str, step_id: str, seconds: float):
        self.seconds = seconds
        super().__init__(f"run {run_id!r}: wait step {step_id!r}: no matching event within {seconds:g} seconds",
                         run_id=run_id, step_id=step_id)


class SyncConfigError(WorkflowError):
    """A sync step lacks what it needs: a create or update action, or a usable list result."""

    code = "sync_config_invalid"
    http_status = 422

    def __init__(self, run_id: str, step_id: str, reason: str):
        self.reason = reason
        super().__init__(f"run {run_id!r}: sync step {step_id!r}: {reason}", run_id=run_id, step_id=step_id)


class CallDepthExceeded(WorkflowError):
    """Call steps nested deeper than ``limit`` (usually a workflow calling itself)."""

    code = "call_depth_exceeded"
    http_status = 422

    def __init__(self, run_id: str, step_id: str, workflow_id: str, limit: int):
        self.workflow_id = workflow_id
        self.limit = limit
        super().__init__(f"run {run_id!r}: step {step_id!r}: calling workflow {workflow_id!r} would nest "
                         f"call steps deeper than {limit}", run_id=run_id, step_id=step_id)


def _short(value: Any, limit: int = 200) -> str:
    import json

    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ReplayDivergence(WorkflowError):
    """A replay departed from its record: a different step, call, input or result at ``seq``.

    ``step`` names where (a step path, or ``(input)``/``(trigger)``/``(workflow)``
    for the run's own fields); ``expected`` is what the replay did or asked
    for there, ``recorded`` what the record holds (None when it holds nothing).
    """

    code = "replay_divergence"
    http_status = 409

    def __init__(self, run_id: str, step: str, expected: Any, recorded: Any, seq: str | None = None):
        self.step = step
        self.seq = seq
        self.expected = expected
        self.recorded = recorded
        at = f" (seq {seq})" if seq else ""
        super().__init__(f"run {run_id!r} diverged from its record at step {step!r}{at}: "
                         f"expected {_short(expected)}, recorded {_short(recorded)}",
                         run_id=run_id, step_id=step)


class SecretNotFound(EngineError, LookupError):
    """A secret provider has no secret named ``name``."""

    code = "secret_not_found"
    http_status = 422

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no secret named {name!r}")


class RecordedCallError(EngineError):
    """During a replay: the recorded failure of a call, raised again with its recorded code and message."""

    code = "recorded_call_error"
    http_status = 502
    # The class name of the error recorded, and (a durable call the app asked to retry later) its
    # ``{"retry_after", "attempts"}``.
    recorded_type: str | None = None
    retry_later: dict[str, float] | None = None

    def __init__(self, code: str, message: str, http_status: int):
        self.code = code
        self.http_status = http_status
        self.message = message
        super().__init__(message)


# --- end workflow ---

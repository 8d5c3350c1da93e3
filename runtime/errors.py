"""Errors of the use cases every caller shares (access, runs, connections).

Hierarchy::

    ServiceError            root of errors raised by runtime/ itself; code "runtime_error", HTTP 500
     +-- Unauthenticated    no usable credentials (401); ``reason`` says what was missing or wrong
     +-- Forbidden          the role lacks ``permission`` or the resource is outside the caller's scope (403)
     +-- BadHeader          a header is malformed or contradicts the credentials (400); ``header``
     +-- SpecInvalid        a connector or workflow spec is refused (422); ``errors`` lists each JSON pointer
     +-- RunRefused         a run cannot start: no usable version, connector or connection (409)
     +-- SandboxUnavailable a connector has no hosted sandbox: it was not imported from a document (409)
     +-- SandboxSeedInvalid a sandbox seed does not fit the document (422); ``pointer`` into the seed
     +-- SandboxTargetRefused a connection may target the sandbox only outside production (422); ``pointer``
 +-- SignatureInvalid   a webhook delivery's signature does not verify (401); ``reason``
 +-- PayloadInvalid     a webhook delivery's body is not a JSON payload it can take (400, 422); ``pointer``
 +-- PayloadTooLarge    a webhook delivery's body is over the event limit (413); ``limit``
 +-- EventRefused       an event was stored as refused: a quota (429, ``Retry-After``), a disabled trigger (409)
     +-- PollFailed         a polling app event could not read its records (502): ``event``, ``reason``
     +-- EmbeddingFailed    the embedder (``embedder``) could not embed text (502): its server failed or refused

Each class has ``code`` and ``http_status``; ``api/`` maps any exception carrying both to a problem
response, so callers other than routes (tools, MCP, workers) get the same codes. Errors of the
engine (``WorkflowInputInvalid``, ``StepFailed``...) and of the store pass through unchanged: they
carry their own codes and are not re-declared here.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Root of the errors raised by runtime/."""

    code: str = "runtime_error"
    http_status: int = 500


class Unauthenticated(ServiceError):
    """The request carries no usable credentials; ``reason`` says what was missing or wrong."""

    code = "unauthenticated"
    http_status = 401

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

    def problem_headers(self) -> dict[str, str]:
        # A 401 must name how to authenticate (RFC 9110 section 15.5.2): the API key headers,
        # or a console user's bearer token.
        return {"WWW-Authenticate": 'Bearer realm="switchboard"'}


class Forbidden(ServiceError, PermissionError):
    """The caller's role lacks ``permission`` (``area:action``), or the resource is outside its scope."""

    code = "forbidden"
    http_status = 403
    problem_fields = ("permission",)

    def __init__(self, permission: str | None, reason: str) -> None:
        self.permission = permission
        self.reason = reason
        super().__init__(reason)


class BadHeader(ServiceError, ValueError):
    """Header ``header`` is malformed or contradicts the credentials."""

    code = "bad_header"
    http_status = 400
    problem_fields = ("header",)

    def __init__(self, header: str, reason: str) -> None:
        self.header = header
        self.reason = reason
        super().__init__(f"header {header}: {reason}")


class SpecInvalid(ServiceError, ValueError):
    """A ``kind`` spec (connector, workflow) is refused. ``errors`` are ``{"pointer", "reason"}``
    with RFC 6901 pointers into the spec document; ``pointer`` is the first of them."""

    code = "spec_invalid"
    http_status = 422
    problem_fields = ("kind", "pointer", "errors")

    def __init__(self, kind: str, errors: list[dict[str, str]]) -> None:
        self.kind = kind
        self.errors = errors
        self.pointer = errors[0]["pointer"] if errors else ""
        shown = "; ".join(f"{e['pointer'] or '/'}: {e['reason']}" for e in errors[:20])
        more = f" (+{len(errors) - 20} more)" if len(errors) > 20 else ""
        super().__init__(f"invalid {kind} spec: {shown}{more}")


class RunRefused(ServiceError):
    """A workflow run cannot start for ``reason``; ``field`` names what is missing (``version``,
    ``connector``, ``connection``, ``customer``, ``workflow``) and ``connector`` the connector
    concerned, when one is."""

    code = "run_refused"
    http_status = 409
    problem_fields = ("field", "connector")

    def __init__(self, field: str, reason: str, connector: str | None = None) -> None:
        self.field = field
        self.reason = reason
        self.connector = connector
        super().__init__(reason)


class SandboxUnavailable(ServiceError):
    """Connector ``connector`` has no hosted sandbox: it was not imported from an OpenAPI document
    (a sandbox is built from the document, which a hand-written spec does not carry)."""

    code = "sandbox_unavailable"
    http_status = 409
    problem_fields = ("connector",)

    def __init__(self, connector: str) -> None:
        self.connector = connector
        super().__init__(f"connector {connector!r} has no hosted sandbox: it was not imported from an OpenAPI document;"
                         " import it with POST /v1/connectors/import to get one")


class SandboxSeedInvalid(ServiceError, ValueError):
    """A seed for connector ``connector``'s sandbox does not fit its document: ``reason`` at
    ``pointer`` (a JSON pointer into the seed sent). The sandbox keeps its earlier seed."""

    code = "sandbox_seed_invalid"
    http_status = 422
    problem_fields = ("connector", "pointer", "reason")

    def __init__(self, connector: str, pointer: str, reason: str) -> None:
        self.connector = connector
        self.pointer = pointer
        self.reason = reason
        super().__init__(f"the seed for {connector!r}'s sandbox does not fit at {pointer or '/'}: {reason}")


class SandboxTargetRefused(ServiceError, ValueError):
    """A connection of a customer in environment ``environment`` cannot target the hosted sandbox
    (only non-production environments can); ``pointer`` names the field of the request."""

    code = "sandbox_target_refused"
    http_status = 422
    problem_fields = ("environment", "pointer")

    def __init__(self, environment: str, pointer: str = "/target") -> None:
        self.environment = environment
        self.pointer = pointer
        super().__init__(f"{pointer}: a connection in the {environment!r} environment cannot target a sandbox;"
                         " sandboxes serve non-production environments only (dev, staging...)")


class SignatureInvalid(ServiceError):
    """A webhook delivery is not signed as its trigger requires (``scheme``): a header is missing or
    malformed, its timestamp is outside the tolerance, or no signature matches the body as received.
    Nothing is stored or run."""

    code = "signature_invalid"
    http_status = 401
    problem_fields = ("scheme", "reason")

    def __init__(self, scheme: str, reason: str) -> None:
        self.scheme = scheme
        self.reason = reason
        super().__init__(f"the delivery's {scheme} signature does not verify: {reason}")

    def problem_headers(self) -> dict[str, str]:
        # A 401 names how to authenticate (RFC 9110 section 15.5.2): here, the signature scheme.
        return {"WWW-Authenticate": f'Signature realm="webhooks", scheme="{self.scheme}"'}


class PayloadInvalid(ServiceError, ValueError):
    """A webhook delivery's body cannot be taken: not JSON, not storable (400), or not what the
    trigger's payload schema expects (422); ``pointer`` is a JSON pointer into the body."""

    code = "payload_invalid"
    http_status = 400
    problem_fields = ("pointer", "reason")

    def __init__(self, pointer: str, reason: str, *, status: int = 400) -> None:
        self.pointer = pointer
        self.reason = reason
        self.http_status = status
        super().__init__(f"payload {pointer or '/'}: {reason}")


class PayloadTooLarge(ServiceError):
    """A webhook delivery's body of ``size`` bytes is over the event payload limit ``limit``
    (setting ``max_event_bytes``). Nothing is stored."""

    code = "payload_too_large"
    http_status = 413
    problem_fields = ("limit", "setting")
    setting = "max_event_bytes"

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"the payload of {size} bytes is over the event limit of {limit} bytes "
                         f"(setting max_event_bytes, env SWITCHBOARD_MAX_EVENT_BYTES)")


class EventRefused(ServiceError):
    """Event ``event_id`` was stored as refused, so nothing runs: ``reason_code`` ``quota_exceeded``
    (429, ``Retry-After``; ``dimension`` names the quota) or ``trigger_disabled`` (409)."""

    code = "event_refused"
    http_status = 409
    problem_fields = ("event_id", "reason_code", "dimension", "retry_after")

    def __init__(self, event_id: str, reason_code: str, message: str, *, status: int = 409,
                 dimension: str | None = None, retry_after: int | None = None) -> None:
        self.event_id = event_id
        self.reason_code = reason_code
        self.dimension = dimension
        self.retry_after = retry_after
        self.http_status = status
        super().__init__(f"event {event_id} refused: {message}")

    def problem_headers(self) -> dict[str, str]:
        """``Retry-After`` (seconds) when waiting helps (a quota window)."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}



class PollFailed(ServiceError):
    """Polling ``event`` (``connector.event``) found an answer it cannot read records from, for
    ``reason`` (no record list, a record without an id). 502: the app's answer is at fault."""

    code = "poll_failed"
    http_status = 502
    problem_fields = ("event",)

    def __init__(self, event: str, reason: str) -> None:
        self.event = event
        self.reason = reason
        super().__init__(f"polling {event} failed: {reason}")


class EmbeddingFailed(ServiceError):
    """The embedder ``embedder`` could not embed text, for ``reason``. 502: the cause is the
    embedding server (or the bundled model's files), not the request."""

    code = "embedding_failed"
    http_status = 502
    problem_fields = ("embedder",)

    def __init__(self, embedder: str, reason: str) -> None:
        self.embedder = embedder
        self.reason = reason
        super().__init__(f"embedder {embedder!r} failed: {reason}")


__all__ = ["BadHeader", "EmbeddingFailed", "EventRefused", "Forbidden", "PayloadInvalid", "PayloadTooLarge", "PollFailed",
           "RunRefused",
           "ServiceError", "SignatureInvalid", "SpecInvalid", "Unauthenticated"]

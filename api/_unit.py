"""The unit of work of one mutating /v1 request: the change it makes, its audit entry and its
idempotency record commit in one transaction, or none of them does.

``PlatformRoute`` (api/_route.py, whose docstring explains the construction) opens a
``RequestUnit`` for each mutating request and makes it current (a context variable, so it
follows the request into the worker threads that run handlers). ``tenant_tx``
(api/_v1/_common.py) asks the current unit for its transactions; ``in_thread`` tells it when
a step of an async handler has returned. Without a current unit (reads, code outside routes)
``tenant_tx`` is a plain tenant transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fastapi import Request

import store
from api._auth import Principal

_logger = logging.getLogger("switchboard.api.audit")

_current: ContextVar[RequestUnit | None] = ContextVar("switchboard_request_unit", default=None)


def current_unit() -> RequestUnit | None:
    """The unit of work of the mutating request being handled, if any."""
    return _current.get()


@dataclass
class _Open:
    """A transaction that wrote and has not committed yet: it commits with the audit entry."""

    stack: ExitStack
    tx: store.Tx


@dataclass(frozen=True)
class Idempotency:
    """The Idempotency-Key of a request and what identifies the request it names."""

    org_id: str
    key: str
    actor_id: str
    method: str
    path: str
    digest: str
    # True: claimed up front in its own transaction (async handlers); False: recorded in the
    # transaction of the change (``IdempotencyKeys.record``).
    claimed: bool


class Replay(Exception):
    """A request with the same Idempotency-Key committed first: answer with its stored response."""

    def __init__(self, stored: dict[str, Any]) -> None:
        super().__init__("replay")
        self.stored = stored


class RequestUnit:
    """Holds a mutating request's open transaction until its audit entry (and idempotency record)
    can be written into it. Not thread-safe: a request runs one step at a time."""

    def __init__(self, request: Request, action: str, resource_type: str, resource_id: str | None) -> None:
        self.request = request
        self.action = action
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.idempotency: Idempotency | None = None
        self._open: _Open | None = None
        self._audited = False
        self._principal: Principal | None = None

    # -- entering and leaving the request --------------------------------------------------

    @contextmanager
    def current(self) -> Iterator[RequestUnit]:
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    @property
    def principal(self) -> Principal | None:
        return getattr(self.request.state, "principal", None) or self._principal

    @property
    def db(self) -> store.Database:
        return self.request.app.state.db

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(self, db: store.Database, principal: Principal, customer_id: str | None) -> Iterator[store.Tx]:
        """A tenant transaction of this request. One that wrote stays open when the block ends:
        it commits with the audit entry when the next one begins, when the async step that
        opened it returns (``step_returned``) or when the response exists (``finish``)."""
        self._principal = self._principal or principal
        self.flush(None)
        with ExitStack() as stack:
            tx = stack.enter_context(db.tenant(principal.org_id, customer_id))
            yield tx
            if store.has_changes(tx):
                self._open = _Open(stack.pop_all(), tx)

    def flush(self, result: Any) -> None:
        """Commit the open transaction, with the request's audit entry unless an earlier commit
        carried it. ``result`` is what the step returned (its ``id`` names the resource when no
        path parameter does)."""
        opened, self._open = self._open, None
        if opened is None:
            return
        with opened.stack:
            if not self._audited:
                # The response does not exist yet: no status; the outcome is that of this change.
                # As for the final entry, a path parameter names the resource first, then the result.
                self._record(opened.tx, self.resource_id or _id_of(result), "success", None, None,
                             committed="before the response")
        self._audited = True

    def step_returned(self, result: Any) -> None:
        """An async handler's step (``in_thread``) returned: its change commits now, since the
        handler may wait on other work before it responds."""
        self.flush(result)

    def discard(self) -> None:
        """Roll back the open transaction (the request failed after its block ended)."""
        opened, self._open = self._open, None
        if opened is None:
            return
        try:
            opened.tx.rollback()
        finally:
            opened.stack.close()

    # -- the end of the request -------------------------------------------------------------

    def finish(self, status: int, body: Any, error_code: str | None, resource_id: str | None) -> None:
        """The handler answered ``status`` with ``body``: commit the open transaction with the
        audit entry and, for a 2xx answer to an idempotent request, its stored response.

        Raises ``Replay`` (after rolling back this request's change) when a concurrent request
        with the same key committed first, ``Conflict`` when that one was a different request,
        and what committing raises (the change is then rolled back).
        """
        ok = status < 400
        outcome = "success" if ok else "error"
        key = self.idempotency
        opened, self._open = self._open, None
        if opened is not None:
            with opened.stack:
                if not self._audited:
                    self._record(opened.tx, resource_id, outcome, error_code, status)
                if ok and key is not None:
                    self._store_response(opened.tx, key, status, body)
            self._audited = True
            return
        # Nothing open: the change committed in an earlier step (with the entry), or the handler
        # changed nothing through tenant_tx. Either way these writes stand alone.
        principal = self.principal
        if not self._audited and principal is not None:
            self._own_tx(principal.org_id, lambda tx: self._record(tx, resource_id, outcome, error_code, status))
            self._audited = True
        if key is not None and ok:
            self._own_tx(key.org_id, lambda tx: self._store_response(tx, key, status, body, standalone=True))
        elif key is not None and key.claimed:
            self.release()

    def completed_by_another(self) -> dict[str, Any] | None:
        """After this request failed: the stored response of a concurrent request with the same
        Idempotency-Key that completed meanwhile (this one then failed on what that one created,
        a name now taken, say), to answer with instead of the failure; else None."""
        key = self.idempotency
        if key is None or key.claimed:
            return None
        self.discard()
        found: list[dict[str, Any] | None] = []
        try:
            self._own_tx(key.org_id, lambda tx: found.append(store.IdempotencyKeys(tx).lookup(
                key.org_id, key.key, key.actor_id, key.method, key.path, key.digest
            )))
        except store.Conflict:
            return None
        return found[0] if found else None

    def fail(self, error_code: str, status: int) -> None:
        """The request failed: roll back what is open, release a claimed key and audit the
        failure in a transaction of its own (a failed request changed nothing, unless an earlier
        step committed, which that step's entry records)."""
        try:
            self.discard()
        except store.StoreError:
            _logger.warning("could not roll back a failed request's transaction", exc_info=True)
        if self.idempotency is not None and self.idempotency.claimed:
            self.release()
        principal = self.principal
        if principal is not None:
            self._own_tx(principal.org_id, lambda tx: self._record(tx, self.resource_id, "error", error_code, status))

    def release(self) -> None:
        key = self.idempotency
        if key is None:
            return
        try:
            self._own_tx(key.org_id, lambda tx: store.IdempotencyKeys(tx).release(key.org_id, key.key))
        except store.StoreError:
            _logger.warning("could not release an idempotency key", exc_info=True)

    # -- writing ----------------------------------------------------------------------------

    def _own_tx(self, org_id: str, write: Callable[[store.Tx], Any]) -> None:
        with self.db.tenant(org_id) as tx:
            write(tx)

    def _store_response(self, tx: store.Tx, key: Idempotency, status: int, body: Any, *, standalone: bool = False) -> None:
        keys = store.IdempotencyKeys(tx)
        if key.claimed:
            keys.complete(key.org_id, key.key, status, body)
            return
        stored = keys.record(key.org_id, key.key, key.actor_id, key.method, key.path, key.digest, status, body)
        if stored is not None and not standalone:
            raise Replay(stored)

    def _record(
        self, tx: store.Tx, resource_id: str | None, outcome: str, error_code: str | None, status: int | None,
        **detail: str,
    ) -> None:
        principal = self.principal
        if principal is None:
            return
        store.AuditLog(tx).record(
            principal.org_id,
            actor_type=principal.actor_type,
            actor_id=principal.actor_id,
            action=self.action,
            resource_type=self.resource_type,
            resource_id=resource_id or self.resource_id,
            customer_id=principal.customer_id,
            outcome=outcome,
            error_code=error_code,
            status=status,
            detail={"method": self.request.method, "path": self.request.url.path, **detail},
        )


def _id_of(result: Any) -> str | None:
    if isinstance(result, dict) and isinstance(result.get("id"), str):
        return result["id"]
    return None

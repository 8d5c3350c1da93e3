"""Webhook triggers receiving deliveries: verify, store the event, acknowledge, then dispatch.

:meth:`Webhooks.deliver` is the use case behind ``POST /v1/hooks/{org_id}/{trigger_id}``:

1. The body is refused over ``Config.max_event_bytes`` (413) before anything is read from the store.
2. The trigger is looked up in a transaction bound to the organization the URL names, so another
   organization's trigger id is a 404, as is a trigger of another kind.
3. The signature is verified with the trigger's secret by its scheme (``runtime/_signatures.py``);
   a bad or missing signature, a timestamp outside 5 minutes, or a body changed on the way is a
   401, and nothing is stored or run.
4. The body must be JSON that Postgres can store (400), and match the trigger's ``payload`` schema
   when it has one (422).
5. The trigger's ``filter`` (a JSONata expression over ``{"payload": ...}``; the event runs when
   it yields ``true``) decides between ``received`` and ``filtered``; a filter that fails to
   evaluate stores the event ``failed`` with the error.
6. The event is inserted and, when it will run, one event is charged to the customer's quota, in
   one transaction: a duplicate ``webhook-id`` inserts nothing and charges nothing (the unique
   index decides); a quota refusal rolls the insert back to a savepoint and stores the event
   ``refused`` instead, then answers 429 with ``Retry-After``. A disabled trigger stores
   ``refused`` and answers 409.
   An accepted event (received or filtered) also resumes the Long executions waiting for one
   like it (``runtime._waits.offer_event``), in the same transaction.
7. Once that transaction has committed the delivery is acknowledged, and a ``received`` event is
   handed to the platform's :class:`~runtime.Dispatcher`.

Which customer a webhook trigger runs for is its ``customer`` setting, required when the trigger
is created (a URL belongs to one customer's integration); the workflow runs the version deployed
to that customer's environment, else the latest published one.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

import store
from engine.errors import EngineError
from engine.expressions import compile_expression
from runtime._signatures import STANDARD_WEBHOOKS, Delivery, verify
from runtime._waits import offer_event
from runtime.errors import EventRefused, PayloadInvalid, PayloadTooLarge

if TYPE_CHECKING:
    from runtime._platform import Platform

# What jsonb cannot hold (JSON escapes allow both): NUL and unpaired surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def secret_purpose(trigger_id: str) -> str:
    """The encryption purpose of trigger ``trigger_id``'s signing secret."""
    return f"trigger:{trigger_id}"


def filter_problem(text: str) -> str | None:
    """Why ``text`` is not a usable filter expression, or None."""
    try:
        compile_expression(text)
    except EngineError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Receipt:
    """What a delivery left: the stored event (without payload), whether it was a duplicate of an
    accepted one (then ``event`` is that one), and the warn-mode quota dimensions it went past."""

    event: dict[str, Any]
    duplicate: bool = False
    warnings: tuple[str, ...] = field(default=())


def _unstorable(value: Any, pointer: str = "") -> str | None:
    if isinstance(value, str):
        return pointer if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            if _UNSTORABLE.search(str(key)):
                return f"{pointer}/{escaped}"
            found = _unstorable(item, f"{pointer}/{escaped}")
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _unstorable(item, f"{pointer}/{index}")
            if found is not None:
                return found
    return None


def parse_payload(body: bytes, schema: dict[str, Any] | None) -> Any:
    """The JSON value of ``body``; ``PayloadInvalid`` (400) when it is not UTF-8 JSON or holds text
    Postgres cannot store, (422) when it does not match ``schema``."""
    if not body.strip():
        raise PayloadInvalid("", "the body is empty; send a JSON document")
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PayloadInvalid("", f"the body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PayloadInvalid("", f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PayloadInvalid("", "the body is nested too deeply") from None
    where = _unstorable(payload)
    if where is not None:
        raise PayloadInvalid(where, "holds U+0000 or an unpaired surrogate, which cannot be stored")
    if schema:
        error = best_match(Draft202012Validator(schema).iter_errors(payload))
        if error is not None:
            pointer = "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in error.absolute_path)
            raise PayloadInvalid(pointer, error.message, status=422)
    return payload


def matches(filter_text: str | None, payload: Any) -> tuple[bool, dict[str, Any] | None]:
    """Whether ``payload`` passes the filter (no filter: it does), or the error that stopped it."""
    if not filter_text:
        return True, None
    try:
        return compile_expression(filter_text).evaluate({"payload": payload}, "/filter") is True, None
    except EngineError as exc:
        return False, {"code": getattr(exc, "code", "expression_error"), "message": str(exc)}


class Webhooks:
    """Webhook deliveries to triggers, over one :class:`~runtime.Platform`."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def deliver(self, org_id: str, trigger_id: str, delivery: Delivery) -> Receipt:
        """Receive ``delivery`` for trigger ``trigger_id`` of ``org_id`` (see the module docstring) and
        dispatch its run. Returns once the event is committed and handed to the dispatcher.

        Raises ``PayloadTooLarge`` (413), ``store.NotFound`` (404: no such webhook trigger in this
        organization), ``SignatureInvalid`` (401), ``PayloadInvalid`` (400, 422) and ``EventRefused``
        (429 quota, 409 disabled; the event is stored ``refused``).
        """
        receipt = await anyio.to_thread.run_sync(self.receive, org_id, trigger_id, delivery)
        if not receipt.duplicate and receipt.event["status"] == "received":
            await self.platform.dispatcher.dispatch(receipt.event)
        return receipt

    def receive(self, org_id: str, trigger_id: str, delivery: Delivery) -> Receipt:
        """Steps 1 to 6 of the module docstring, without dispatching. Blocking (SQL)."""
        limit = self.platform.config.max_event_bytes
        if len(delivery.body) > limit:
            raise PayloadTooLarge(len(delivery.body), limit)
        now = self.platform.clock()
        refusal: EventRefused | None = None
        with self.platform.db.tenant(org_id) as tx:
            trigger = store.Triggers(tx).get(org_id, trigger_id)
            config = trigger["config"]
            if trigger["kind"] != "webhook" or "signing_secret" not in config:
                raise store.NotFound("trigger", trigger_id)
            sealed = base64.b64decode(config["signing_secret"])
            secret = self.platform.encryptor.decrypt(tx, org_id, sealed, secret_purpose(trigger_id)).decode()
            webhook_id = verify(config.get("signature", STANDARD_WEBHOOKS), secret, delivery, now)
            payload = parse_payload(delivery.body, config.get("payload"))
            customer_id = config.get("customer")
            if not customer_id:
                # Triggers made before webhooks were delivered have no customer; they cannot run.
                raise store.Conflict("trigger", "customer", f"trigger {trigger_id!r} names no customer to run for; "
                                                            "set one with PATCH /v1/triggers/{id}")
            customer = store.Customers(tx).get(org_id, customer_id)
            event = {
                "customer_id": customer_id, "environment_id": customer["environment_id"], "source": "webhook",
                "trigger_id": trigger_id, "workflow_id": trigger["workflow_id"], "webhook_id": webhook_id,
                "payload": payload, "payload_bytes": len(delivery.body),
            }
            events = store.Events(tx)
            if not trigger["enabled"]:
                row = events.add(org_id, status="refused", error={"code": "trigger_disabled", "message": "the trigger is disabled"}, **event)
                refusal = EventRefused(row["id"], "trigger_disabled", "the trigger is disabled")
            else:
                passed, error = matches(config.get("filter"), payload)
                status = "received" if passed else ("failed" if error else "filtered")
                warnings: tuple[str, ...] = ()
                try:
                    # One savepoint for the insert and the charge: a refused charge leaves no accepted row.
                    with tx.transaction():
                        row = events.add(org_id, status=status, error=error, **event)
                        if row is not None and status == "received":
                            warnings = store.Quotas(tx).charge(org_id, customer_id, "events", now).warnings
                except store.QuotaExceeded as exc:
                    detail = {"code": "quota_exceeded", "dimension": exc.dimension, "limit": exc.limit,
                              "message": str(exc)}
                    row = events.add(org_id, status="refused", error=detail, **event)
                    refusal = EventRefused(row["id"], "quota_exceeded", str(exc), status=429, dimension=exc.dimension,
                                           retry_after=exc.retry_after)
                else:
                    if row is not None:
                        if row["status"] in ("received", "filtered"):
                            # Long executions waiting for such an event resume (runtime._waits);
                            # claimed in this transaction, so the event and the claims commit together.
                            offer_event(self.platform, tx, row)
                        return Receipt(row, warnings=tuple(warnings))
                    existing = events.accepted(org_id, trigger_id, webhook_id)
                    if existing is None:
                        # The accepted event with this id was deleted between the insert and the read.
                        raise store.Conflict("event", "webhook-id", "a delivery with this id was just removed; retry")
                    return Receipt(existing, duplicate=True)
        # Raised after the refused event committed: it is recorded, not lost.
        assert refusal is not None
        raise refusal


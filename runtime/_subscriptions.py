"""Webhook-style app events: registering them with the provider, unregistering them, and receiving
what the provider delivers.

A connector's webhook event may say how to subscribe (``engine.specs.EventSpec.subscribe``: an
action, its input template, and where the provider's subscription id is in its answer) and how to
unsubscribe. Every worker runs a :class:`Subscriber` that, each pass, makes the registrations match
the deployments (``store.subscription_candidates``): for each deployed workflow triggered by such
an event, each active customer of the environment with a connection to the connector gets one
subscription. A new one is stored ``pending`` with a secret token, then registered by calling the
subscribe action with the customer's connection; its input sees ``webhook_url`` (``public_url``
``/v1/app-events/{org}/{subscription}/{token}``), ``event`` and ``customer``. It becomes
``active`` with the provider's id, or ``failed`` with the reason (registered again, with a new
token, at the next pass). One no longer wanted (the workflow undeployed or archived, the trigger
removed, the customer suspended) is unregistered with the unsubscribe action (its input also sees
``subscription.id``) and then forgotten; if unregistering fails the row stays and it is tried
again. Deploying and undeploying therefore take effect at the next pass (``SUBSCRIBE_SECONDS``),
as polls do, not inside the deploy's transaction (which must not wait on a provider). One process
at a time reconciles an organization (an advisory lock held for the pass), so two workers never
register one subscription twice.

Deliveries (:meth:`Subscriptions.deliver`, ``POST /v1/app-events/...``) are authenticated by the
token in the URL (only its SHA-256 is stored; compared in constant time), stored as an
``app_event`` event of the subscription's customer and workflow (the event quota charged in the
same transaction; a refusal is stored ``refused`` and answered 429), offered to waiting Long
executions, and dispatched like webhook events. Not yet: verifying a connector-declared signature
on this route, and de-duplicating by the provider's delivery id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread

import store
from engine.errors import EngineError
from engine.expressions import as_text, evaluate, render
from engine.specs import ConnectorSpec, EventSpec
from runtime._credentials import ConnectionCredentials, connection_for_run, credentials_for_connection
from runtime._engine import build_engine
from runtime._periodic import Periodic
from runtime._waits import offer_event
from runtime._webhooks import parse_payload
from runtime.errors import EventRefused, RunRefused, ServiceError

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)

APP_EVENTS_PREFIX = "/v1/app-events"
# How often each worker reconciles the subscriptions with the deployments.
SUBSCRIBE_SECONDS = 10.0


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _error(exc: BaseException) -> dict[str, Any]:
    code = getattr(type(exc), "code", None)
    return {"code": code if isinstance(code, str) else "internal_error", "message": str(exc) if code else
            "registering failed"}


class Subscriber(Periodic):
    """Registers and unregisters webhook-style app events with providers (see the module docstring)."""

    name = "subscriber"

    def __init__(self, platform: Platform, *, poll_seconds: float = SUBSCRIBE_SECONDS) -> None:
        super().__init__(platform, poll_seconds=poll_seconds, batch=0)

    async def tick(self) -> list[dict[str, Any]]:
        """One pass over every organization; returns what changed (``org_id``, ``subscription_id``,
        ``action`` subscribed/unsubscribed/failed, ``error``)."""
        wanted = await anyio.to_thread.run_sync(store.subscription_candidates, self.platform.conninfo)
        done: list[dict[str, Any]] = []
        for org_id, rows in wanted.items():
            # One process at a time per organization (two workers would register twice): the lock
            # is held by a transaction open for the whole pass over the organization.
            opened = self.platform.db.tenant(org_id)
            tx = await anyio.to_thread.run_sync(opened.__enter__)
            try:
                if await anyio.to_thread.run_sync(store.AppSubscriptions(tx).try_lock, org_id):
                    done += await self.reconcile(org_id, rows)
            except Exception as exc:
                log.warning("subscriber: organization %s: %s", org_id, exc)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(opened.__exit__, None, None, None)
        return done

    def _read(self, org_id: str, candidates: list[dict[str, Any]]
              ) -> tuple[dict[tuple[str, ...], dict[str, Any]], list[dict[str, Any]], dict[str, ConnectorSpec]]:
        with self.platform.db.tenant(org_id) as tx:
            keys = {row["connector"] for row in candidates}
            held = store.AppSubscriptions(tx).list(org_id)
            keys |= {row["connector"] for row in held}
            connectors = self.platform.runs.specs.connectors(tx, org_id, keys, published_only=True)
            wanted = {}
            for row in candidates:
                event = self._event(connectors, row["connector"], row["event"])
                if event is not None and event.subscribe is not None and connection_for_run(
                        tx, org_id, row["customer_id"], row["connector"]) is not None:
                    wanted[store.AppSubscriptions.key(row)] = row
        return wanted, held, connectors

    @staticmethod
    def _event(connectors: Mapping[str, ConnectorSpec], key: str, name: str) -> EventSpec | None:
        connector = connectors.get(key)
        event = connector.events.get(name) if connector is not None else None
        return event if event is not None and event.kind == "webhook" else None

    async def reconcile(self, org_id: str, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Make ``org_id``'s subscriptions match ``candidates`` (see the module docstring)."""
        wanted, held, connectors = await anyio.to_thread.run_sync(self._read, org_id, candidates)
        done: list[dict[str, Any]] = []
        by_key = {store.AppSubscriptions.key(row): row for row in held}
        for row in held:
            if store.AppSubscriptions.key(row) not in wanted:
                done.append(await self._unsubscribe(org_id, row, connectors))
        for key, row in wanted.items():
            current = by_key.get(key)
            if current is None or current["status"] != "active":
                done.append(await self._subscribe(org_id, row, connectors))
        return done

    async def _call(self, org_id: str, customer_id: str, connector: ConnectorSpec, action: str, input: Any) -> Any:
        platform, key = self.platform, connector.id

        def connection() -> str | None:
            with platform.db.tenant(org_id) as tx:
                return connection_for_run(tx, org_id, customer_id, key)

        connection_id = await anyio.to_thread.run_sync(connection)
        if connection_id is None:
            raise RunRefused("connection", f"customer {customer_id!r} has no connection to {key!r}", connector=key)
        values = await credentials_for_connection(platform.db, org_id, connection_id, customer_id=customer_id,
                                                  encryptor=platform.encryptor, http=platform.http, clock=platform.clock)
        provider = ConnectionCredentials(platform.db, org_id, customer_id, platform.encryptor, {key: values},
                                         {key: connection_id})
        engine = build_engine({key: connector}, platform.http, credentials=provider, clock=platform.clock,
                              connection_scope=f"{org_id}/{customer_id}")
        return (await engine.executor.call(key, action, input)).result

    def _url(self, org_id: str, subscription_id: str, token: str) -> str:
        public = self.platform.config.public_url
        if not public:
            raise RunRefused("public_url", "registering an app event needs the platform's public URL, where the "
                                           "provider delivers (set SWITCHBOARD_PUBLIC_URL)")
        return f"{public.rstrip('/')}{APP_EVENTS_PREFIX}/{org_id}/{subscription_id}/{token}"

    def _write(self, org_id: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.platform.db.tenant(org_id) as tx:
            return fn(store.AppSubscriptions(tx), *args, **kwargs)

    async def _subscribe(self, org_id: str, wanted: dict[str, Any], connectors: Mapping[str, ConnectorSpec]
                         ) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        row = await anyio.to_thread.run_sync(
            lambda: self._write(org_id, store.AppSubscriptions.add, org_id, wanted, _hash(token)))
        connector = connectors[wanted["connector"]]
        event = self._event(connectors, wanted["connector"], wanted["event"])
        assert event is not None and event.subscribe is not None
        where = f"/events/{wanted['event']}/subscribe"
        try:
            context = {"webhook_url": self._url(org_id, row["id"], token), "event": wanted["event"],
                       "customer": wanted["customer_id"]}
            input = render(event.subscribe.input, context, f"{where}/input")
            result = await self._call(org_id, wanted["customer_id"], connector, event.subscribe.action, input)
            remote = None
            if event.subscribe.id:
                found = evaluate(event.subscribe.id, result if isinstance(result, dict) else {"result": result},
                                 f"{where}/id")
                remote = as_text(found) if found not in (None, "") else None
        except (ServiceError, EngineError, store.StoreError) as exc:
            error = _error(exc)
            await anyio.to_thread.run_sync(lambda: self._write(org_id, store.AppSubscriptions.settle, org_id, row["id"],
                                                               error=error))
            return {"org_id": org_id, "subscription_id": row["id"], "action": "failed", "error": error}
        await anyio.to_thread.run_sync(lambda: self._write(org_id, store.AppSubscriptions.settle, org_id, row["id"],
                                                           remote_id=remote))
        return {"org_id": org_id, "subscription_id": row["id"], "action": "subscribed", "remote_id": remote,
                "error": None}

    async def _unsubscribe(self, org_id: str, row: dict[str, Any], connectors: Mapping[str, ConnectorSpec]
                           ) -> dict[str, Any]:
        event = self._event(connectors, row["connector"], row["event"])
        # Registered and undoable: call the provider; otherwise (never registered, or the connector
        # says no way to undo) there is nothing to tell it.
        if row["status"] == "active" and event is not None and event.unsubscribe is not None:
            where = f"/events/{row['event']}/unsubscribe"
            try:
                context = {"event": row["event"], "customer": row["customer_id"],
                           "subscription": {"id": row["remote_id"]}}
                input = render(event.unsubscribe.input, context, f"{where}/input")
                await self._call(org_id, row["customer_id"], connectors[row["connector"]], event.unsubscribe.action,
                                 input)
            except (ServiceError, EngineError, store.StoreError) as exc:
                error = _error(exc)
                log.warning("subscriber: unsubscribing %s failed (tried again next pass): %s", row["id"], error)
                return {"org_id": org_id, "subscription_id": row["id"], "action": "failed", "error": error}
        await anyio.to_thread.run_sync(lambda: self._write(org_id, store.AppSubscriptions.remove, org_id, row["id"]))
        return {"org_id": org_id, "subscription_id": row["id"], "action": "unsubscribed", "error": None}


class Subscriptions:
    """Receiving app event deliveries, over one :class:`~runtime.Platform`."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def deliver(self, org_id: str, subscription_id: str, token: str, body: bytes) -> dict[str, Any]:
        """Store a delivery to subscription ``subscription_id`` as an event and dispatch its run
        (see the module docstring); returns the event. Raises ``store.NotFound`` (404: no such
        subscription, or the wrong token: the two are not told apart), ``PayloadTooLarge``,
        ``PayloadInvalid`` and ``EventRefused`` (429, stored refused)."""
        event = await anyio.to_thread.run_sync(self.receive, org_id, subscription_id, token, body)
        if event["status"] == "received":
            await self.platform.dispatcher.dispatch(event)
        return event

    def receive(self, org_id: str, subscription_id: str, token: str, body: bytes) -> dict[str, Any]:
        """Verify and store a delivery, without dispatching. Blocking (SQL)."""
        from runtime.errors import PayloadTooLarge

        limit = self.platform.config.max_event_bytes
        if len(body) > limit:
            raise PayloadTooLarge(len(body), limit)
        now = self.platform.clock()
        refusal: EventRefused | None = None
        with self.platform.db.tenant(org_id) as tx:
            try:
                row = store.AppSubscriptions(tx).get(org_id, subscription_id)
            except store.NotFound:
                row = None
            if row is None or not hmac.compare_digest(row["token_hash"], _hash(token)):
                raise store.NotFound("subscription", subscription_id)
            payload = parse_payload(body, None)
            event = {"customer_id": row["customer_id"], "environment_id": row["environment_id"], "source": "app_event",
                     "workflow_id": row["workflow_id"], "payload": payload, "payload_bytes": len(body)}
            events = store.Events(tx)
            try:
                with tx.transaction():
                    stored = events.add(org_id, status="received", **event)
                    store.Quotas(tx).charge(org_id, row["customer_id"], "events", now)
            except store.QuotaExceeded as exc:
                detail = {"code": "quota_exceeded", "dimension": exc.dimension, "limit": exc.limit, "message": str(exc)}
                stored = events.add(org_id, status="refused", error=detail, **event)
                refusal = EventRefused(stored["id"], "quota_exceeded", str(exc), status=429, dimension=exc.dimension,
                                       retry_after=exc.retry_after)
            else:
                offer_event(self.platform, tx, stored)
        if refusal is not None:
            raise refusal
        return stored

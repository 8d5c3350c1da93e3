"""App events by polling: the poller loop every worker runs, and what exactly once means here.

A connector declares a polling event (``engine.specs.EventSpec``, ``kind: polling``): the action
to call, a record's ``key`` and ``version``, and the ``cursor`` watermark sent back as the input
``cursor_param`` (Cin7: ``list_sales`` with ``UpdatedSince``, key ``SaleID``, version and cursor
``Updated``). A workflow whose trigger (in its spec, or attached) is that ``app_event`` gets a
``polls`` row per customer of each environment it is deployed to (``store.sync_polls``, before
each pass).

Each worker process runs a :class:`Poller`. Every ``poll_seconds`` it syncs the rows, lists the
due ones and, for each, in **one transaction** of the row's organization:

1. locks the row if it is still due (``FOR UPDATE SKIP LOCKED``, the condition read after the
   lock), and holds it while it polls: another worker skips it, and finds it no longer due once
   this one commits;
2. calls the action with the customer's connection (its credentials, as a run reads them; OAuth
   tokens refreshed), walking every page, with the stored cursor as ``cursor_param``;
3. for each record, compares its version with the one seen (``poll_records``): a record never seen
   is ``new``, one seen with another version ``changed``, one seen with the same version
   ``unchanged`` (nothing happens; an inclusive "since" returns the last record again). For each
   new or changed record it starts one run (:meth:`Runs.start <runtime.Runs.start>`,
   ``triggered_by="app_event"``, queued for a durable worker whatever the tier) in a savepoint and
   stores one event (source ``app_event``: ``dispatched`` with the execution, ``refused`` when the
   event quota refuses, ``failed`` when the run cannot start);
4. records every record's version as seen, moves the cursor to the highest cursor value seen (it
   never goes back) and the next due time one ``interval`` on; then commits.

So with any number of workers each record version starts exactly one run: the executions, the
events, the versions seen and the cursor commit together or not at all (a process that dies first
leaves the row due, and the next poll sees the same records as new again). The hand-over to the
durable queue happens before the commit, with the same edges as schedules (``runtime._schedules``).

The first successful poll of a row (``baseline_at`` NULL) takes a **baseline**: it records what exists as seen and
starts nothing, so deploying a workflow does not run it for every record the customer already has.

A poll that fails (the app answers an error, the connection needs reconnecting or is missing,
records without an id) starts nothing, stores one ``failed`` event saying why, keeps the cursor and
what was seen, counts the failure on the row (``failures``, ``last_error``) and is tried again at
the next interval, from the stored cursor.

The run sees as ``trigger``: ``{"kind": "app_event", "connector", "event", "poll_id", "record_id",
"version", "change": "new" | "changed", "record"}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

import store
from engine.errors import EngineError
from engine.expressions import as_text, evaluate
from engine.specs import ConnectorSpec, EventSpec
from runtime._access import Principal, system_principal
from runtime._credentials import ConnectionCredentials, connection_for_run, credentials_for_connection
from runtime._engine import build_engine
from runtime._rate_limits import SharedRateLimits
from runtime._periodic import Periodic
from runtime._runs import Transactions
from runtime._waits import offer_event
from runtime.errors import PollFailed, RunRefused, ServiceError

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)

# How often a poller looks for due polls (each poll has its own interval, from its event).
POLL_LOOP_SECONDS = 5.0
# Polls one pass takes at most (the rest wait for the next pass).
POLL_BATCH = 50
# A poll whose event cannot be read (no published connector, no such event) is tried again this much later.
UNREADABLE_RETRY = timedelta(minutes=5)
# Pages a page-token poll follows at most in one pass (it goes on from the last token at the next).
MAX_TOKEN_PAGES = 100


def _error(exc: BaseException) -> dict[str, Any]:
    code = getattr(type(exc), "code", None)
    if isinstance(code, str):
        return {"code": code, "message": str(exc)}
    return {"code": "internal_error", "message": "the poll failed"}


@contextmanager
def _savepoint(tx: store.Tx) -> Iterator[store.Tx]:
    with tx.transaction():
        yield tx


def _later(value: str, than: str | None) -> bool:
    """Whether cursor ``value`` is past ``than``: as instants when both read as ISO 8601 times, else as text."""
    if than is None:
        return True
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) > datetime.fromisoformat(than.replace("Z", "+00:00"))
    except (ValueError, TypeError):
        return value > than


class Poller(Periodic):
    """Polls the due app events from this process, for the life of an ``async with`` block (see
    the module docstring). :meth:`tick` is one pass, :meth:`poll` one poll; both callable alone."""

    name = "polling"

    def __init__(self, platform: Platform, *, poll_seconds: float = POLL_LOOP_SECONDS, batch: int = POLL_BATCH) -> None:
        super().__init__(platform, poll_seconds=poll_seconds, batch=batch)

    async def tick(self) -> list[dict[str, Any]]:
        """One pass: sync the poll rows, then poll the due ones; returns what each poll did."""
        conninfo, now = self.platform.conninfo, self.platform.clock()
        await anyio.to_thread.run_sync(store.sync_polls, conninfo)
        due = await anyio.to_thread.run_sync(store.polls_due, conninfo, now, self.batch)
        done = []
        for org_id, poll_id in due:
            try:
                outcome = await self.poll(org_id, poll_id)
            except Exception as exc:
                log.warning("polling: poll %s of %s failed: %s", poll_id, org_id, exc)
                continue
            if outcome is not None:
                done.append(outcome)
        return done

    async def poll(self, org_id: str, poll_id: str, now: datetime | None = None) -> dict[str, Any] | None:
        """Poll ``poll_id`` if it is due at ``now`` (default: the platform's clock) and no other
        transaction holds it. Returns what was done (``org_id``, ``poll_id``, ``status`` ``polled``,
        ``baseline`` or ``failed``, ``started`` executions, ``unchanged`` count, ``cursor``,
        ``error``), or None."""
        now = now or self.platform.clock()
        opened = self.platform.db.tenant(org_id)
        tx = await anyio.to_thread.run_sync(opened.__enter__)
        try:
            outcome = await self._poll(tx, org_id, poll_id, now)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                if not await anyio.to_thread.run_sync(opened.__exit__, type(exc), exc, exc.__traceback__):
                    raise
            return None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(opened.__exit__, None, None, None)  # commits
        return outcome

    async def _poll(self, tx: store.Tx, org_id: str, poll_id: str, now: datetime) -> dict[str, Any] | None:
        run = anyio.to_thread.run_sync
        polls = store.Polls(tx)
        row = await run(polls.lock_due, org_id, poll_id, now)
        if row is None:
            return None
        interval = UNREADABLE_RETRY
        qualified = f"{row['connector']}.{row['event']}"
        try:
            connector, event = await run(self._event, tx, row)
            interval = timedelta(seconds=event.poll_seconds)
            records, token = await self._fetch(tx, row, connector, event)
        except Exception as exc:  # every failure is recorded on the poll and tried again later
            if not isinstance(getattr(type(exc), "code", None), str):
                log.exception("polling: poll %s (%s) failed", poll_id, qualified)
            error = _error(exc)
            payload = {"kind": "app_event", "connector": row["connector"], "event": row["event"], "poll_id": poll_id,
                       "cursor": row["cursor"]}

            def failed() -> None:
                self._event_row(tx, org_id, row, payload, "failed", None, error)
                polls.polled(org_id, poll_id, cursor=row["cursor"], next_due_at=now + interval, polled_at=now,
                             error=error)

            await run(failed)
            return {"org_id": org_id, "poll_id": poll_id, "status": "failed", "started": [], "unchanged": 0, "cursor": row["cursor"],
                    "error": error}
        seen = await run(polls.seen, org_id, poll_id, list(records))
        baseline = row["baseline_at"] is None
        started: list[dict[str, Any]] = []
        unchanged = 0
        cursor = row["cursor"]
        for record_id, (version, mark, record) in records.items():
            if mark is not None and _later(mark, cursor):
                cursor = mark
            previous = seen.get(record_id)
            if baseline or previous == version:
                unchanged += 0 if baseline else 1
                continue
            trigger = {"kind": "app_event", "connector": row["connector"], "event": row["event"], "poll_id": poll_id,
                       "record_id": record_id, "version": version, "change": "new" if previous is None else "changed",
                       "record": record}
            principal = system_principal(org_id, row["customer_id"], f"poll:{poll_id}")
            execution_id, status, error = await self._start(tx, principal, row, trigger)
            await run(self._event_row, tx, org_id, row, trigger, status, execution_id, error)
            started.append({"record_id": record_id, "change": trigger["change"], "execution_id": execution_id,
                            "status": status, "error": error})

        if event.page_token and token is not None:
            cursor = token  # page tokens are the app's own; the last one answered is where to go on

        def finish() -> None:
            polls.see(org_id, row, [(record_id, value[0]) for record_id, value in records.items()], now)
            # No record, no cursor: the cursor is always the app's own time, never this clock's.
            polls.polled(org_id, poll_id, cursor=cursor, next_due_at=now + interval, polled_at=now)

        await run(finish)
        return {"org_id": org_id, "poll_id": poll_id, "status": "baseline" if baseline else "polled", "started": started,
                "unchanged": unchanged, "cursor": cursor, "error": None}

    def _event(self, tx: store.Tx, row: dict[str, Any]) -> tuple[ConnectorSpec, EventSpec]:
        key = row["connector"]
        specs = self.platform.runs.specs.connectors(tx, row["org_id"], {key}, published_only=True)
        connector = specs.get(key)
        if connector is None:
            raise RunRefused("connector", f"connector {key!r} has no published version", connector=key)
        event = connector.events.get(row["event"])
        if event is None or event.kind != "polling" or event.action is None:
            raise RunRefused("connector", f"connector {key!r} has no polling event {row['event']!r}", connector=key)
        return connector, event

    async def _fetch(self, tx: store.Tx, row: dict[str, Any], connector: ConnectorSpec, event: EventSpec
                     ) -> tuple[dict[str, tuple[str, str | None, Any]], str | None]:
        """The records the event's action answers, by id: ``(version, cursor value, record)``, in
        the order the app sent them (a record listed twice: its last listing); and, for a page-token
        event, the last page token answered (None: none)."""
        platform, org_id, customer_id, key = self.platform, row["org_id"], row["customer_id"], row["connector"]
        connection_id = await anyio.to_thread.run_sync(connection_for_run, tx, org_id, customer_id, key)
        if connection_id is None:
            raise RunRefused("connection", f"customer {customer_id!r} has no connection to {key!r}", connector=key)
        values = await credentials_for_connection(
            platform.db, org_id, connection_id, customer_id=customer_id, encryptor=platform.encryptor,
            http=platform.http, clock=platform.clock,
        )
        provider = ConnectionCredentials(platform.db, org_id, customer_id, platform.encryptor, {key: values},
                                         {key: connection_id})
        engine = build_engine({key: connector}, platform.http, credentials=provider, clock=platform.clock,
                              connection_scope=f"{org_id}/{customer_id}",
                              rate_store=SharedRateLimits.of(platform, org_id))
        assert event.action is not None
        where = f"/events/{row['event']}"
        qualified = f"{key}.{row['event']}"
        token: str | None = None
        if event.page_token:
            listed, token = await self._token_pages(engine, connector, key, event, row["cursor"], where, qualified)
        else:
            action_input = dict(event.action_input)
            if event.cursor_param and row["cursor"] is not None:
                action_input[event.cursor_param] = row["cursor"]
            response = await engine.executor.call(key, event.action, action_input)
            listed = self._listed(connector, event, response.result, where, qualified)
        found: dict[str, tuple[str, str | None, Any]] = {}
        for index, record in enumerate(listed):
            if not isinstance(record, dict):
                raise PollFailed(qualified, f"record {index} is not an object")
            assert event.key is not None
            record_id = evaluate(event.key, record, f"{where}/key")
            if record_id in (None, ""):
                raise PollFailed(qualified, f"record {index} has no id ({event.key})")
            mark = evaluate(event.cursor, record, f"{where}/cursor") if event.cursor else None
            version = evaluate(event.version, record, f"{where}/version") if event.version else mark
            if version is None:
                # No version: any change of the record's content is a new version.
                version = json.dumps(record, sort_keys=True, default=str)
            found.pop(as_text(record_id), None)
            found[as_text(record_id)] = (as_text(version), as_text(mark) if mark is not None else None, record)
        return found, token

    @staticmethod
    def _listed(connector: ConnectorSpec, event: EventSpec, result: Any, where: str, qualified: str) -> list[Any]:
        """The records in one answer of the event's action."""
        assert event.action is not None
        if event.items is not None:
            listed = evaluate(event.items, result if isinstance(result, dict) else {"result": result}, f"{where}/items")
        elif isinstance(result, dict) and connector.actions[event.action].pagination is not None:
            listed = result.get("items")
        else:
            listed = result
        if not isinstance(listed, list):
            raise PollFailed(qualified, f"action {event.action!r} answered no list of records")
        return listed

    async def _token_pages(self, engine: Any, connector: ConnectorSpec, key: str, event: EventSpec,
                           token: str | None, where: str, qualified: str) -> tuple[list[Any], str | None]:
        """Follow a page-token event's pages from ``token`` (the stored cursor; None: the start):
        each answer's ``page_token`` is sent as ``cursor_param`` for the next page, until an
        answer has no token, repeats the one sent, or lists no record (the end of what changed),
        or ``MAX_TOKEN_PAGES`` pages. Returns the records and the last token answered (the cursor
        to go on from; the stored one when none was)."""
        assert event.action is not None and event.page_token is not None and event.cursor_param is not None
        records: list[Any] = []
        for _ in range(MAX_TOKEN_PAGES):
            action_input = dict(event.action_input)
            if token is not None:
                action_input[event.cursor_param] = token
            response = await engine.executor.call(key, event.action, action_input, paginate_pages=False)
            result = response.result
            page = self._listed(connector, event, result, where, qualified)
            records += page
            answered = evaluate(event.page_token, result if isinstance(result, dict) else {"result": result},
                                f"{where}/page_token")
            if answered in (None, ""):
                break
            answered = as_text(answered)
            repeated, token = answered == token, answered
            if repeated or not page:
                break
        else:
            log.info("polling: %s followed %d pages in one poll; it goes on from there at the next", qualified,
                     MAX_TOKEN_PAGES)
        return records, token

    async def _start(self, tx: store.Tx, principal: Principal, row: dict[str, Any],
                     trigger: dict[str, Any]) -> tuple[str | None, str, dict[str, Any] | None]:
        transactions = Transactions(open=lambda _principal: _savepoint(tx), step=anyio.to_thread.run_sync)
        try:
            started = await self.platform.runs.start(
                principal, row["workflow_id"], customer_id=row["customer_id"], triggered_by="app_event",
                trigger=trigger, transactions=transactions, inline=False,
            )
        except store.QuotaExceeded as exc:
            return None, "refused", _error(exc)
        except (ServiceError, EngineError, store.ResourceError) as exc:
            return None, "failed", _error(exc)
        return started.execution["id"], "dispatched", None

    def _event_row(self, tx: store.Tx, org_id: str, row: dict[str, Any], payload: dict[str, Any], status: str,
                   execution_id: str | None, error: dict[str, Any] | None) -> None:
        events = store.Events(tx)
        event = events.add(
            org_id, customer_id=row["customer_id"], environment_id=row["environment_id"], source="app_event",
            status=status, payload=payload, payload_bytes=len(json.dumps(payload, default=str)),
            trigger_id=row["trigger_id"], workflow_id=row["workflow_id"], error=error,
        )
        if event is not None and execution_id is not None:
            events.started(org_id, event["id"], execution_id)
        if event is not None and status == "dispatched":
            # Long executions waiting for such an app event resume (runtime._waits).
            offer_event(self.platform, tx, event)

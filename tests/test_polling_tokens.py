"""App events by polling with a page token (the connector's event declares ``page_token``), against
real parts: a change-feed app over HTTP on 127.0.0.1 that pages through its changes with
``?page_token=`` (two changes a page, answering the token of the next page, also at the end),
real Postgres, and the poller driven tick by tick with an injected clock.

The first poll follows every page from the start and takes a baseline; later polls send the
stored token and see only what changed since: each new or changed record starts one execution,
a record seen again with its version starts none; the cursor is the last token the app answered.
Bad event declarations are refused naming the field.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from psycopg.rows import dict_row
from support.platform import app_database, make_tenant
from support.servers import serve_app

import store
from engine.errors import SpecValidationError
from engine.specs import load_connector
from runtime import Poller
from runtime._credentials import create_connection
from switchboard.app import open_platform
from switchboard.settings import Settings

PAGE = 2
ENVIRONMENT = "dev"
WORKFLOW = {
    "id": "on-change", "tier": "standard",
    "trigger": {"kind": "app_event", "connector": "feed", "event": "item_changed"},
    "steps": [{"id": "echo", "map": {"item": "{{ trigger.record.id }}"}}],
}


class Feed:
    """An append-only log of changes; page tokens are offsets into it, as text."""

    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []
        self.tokens_seen: list[str | None] = []
        self.lock = threading.Lock()

    def change(self, item: str, version: int) -> None:
        with self.lock:
            self.changes.append({"id": item, "version": version})


def feed_app(feed: Feed) -> FastAPI:
    app = FastAPI()

    @app.get("/changes")
    def changes(page_token: str | None = None) -> dict[str, Any]:
        with feed.lock:
            feed.tokens_seen.append(page_token)
            start = int(page_token.removeprefix("t")) if page_token else 0
            page = feed.changes[start:start + PAGE]
            return {"changes": page, "next_page_token": f"t{start + len(page)}"}

    return app


def _connector(url: str) -> dict[str, Any]:
    return {
        "id": "feed", "base_url": url,
        "auth": {"type": "api_key", "keys": [{"credential": "key", "in": "header", "name": "X-Key"}]},
        "actions": {"list_changes": {"method": "GET", "path": "/changes", "query": {"page_token": "{{ input.page_token }}"},
                                     "input": {"type": "object", "properties": {"page_token": {"type": "string"}}}}},
        "events": {"item_changed": {"kind": "polling", "action": "list_changes", "items": "changes", "key": "id",
                                    "version": "$string(version)", "cursor_param": "page_token",
                                    "page_token": "next_page_token", "interval": "1m"}},
    }


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="switchboard-tokens-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _tick(poller: Poller, org_id: str) -> list[dict[str, Any]]:
    return [outcome for outcome in await poller.tick() if outcome["org_id"] == org_id]


def _runs(admin: str, org_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(admin, row_factory=dict_row) as conn:
        return conn.execute("SELECT trigger FROM executions WHERE org_id = %s ORDER BY started_at, id",
                            (org_id,)).fetchall()


async def test_page_token_polls_follow_the_tokens_and_start_one_run_per_new_or_changed_record(
        migrated_database_url: str, data_dir: Path) -> None:
    feed = Feed()
    for index in range(5):  # what exists before the workflow is deployed: three pages
        feed.change(f"i{index}", 1)
    clock = Clock(datetime(2031, 1, 1, tzinfo=UTC))
    settings = Settings(database_url=migrated_database_url, data_dir=data_dir, egress_allow=["127.0.0.1"])
    with serve_app(feed_app(feed)) as url:
        async with open_platform(settings, clock=clock) as platform:
            with app_database(migrated_database_url) as db:
                tenant = make_tenant(db, "Tokens", customers=1)
                org, customer = tenant.org_id, tenant.customers[0]
                with db.tenant(org) as tx:
                    connectors = store.Connectors(tx)
                    connectors.create(org, _connector(url))
                    connectors.publish(org, "feed", 1)
                    create_connection(tx, org, customer, "feed", name="feed", encryptor=platform.encryptor,
                                      auth={"type": "api_key", "values": {"key": "k"}})
                    workflows = store.Workflows(tx)
                    workflows.create(org, WORKFLOW)
                    workflows.deploy(org, WORKFLOW["id"], ENVIRONMENT, workflows.publish(org, WORKFLOW["id"])["version"])
            poller = Poller(platform)

            # Baseline: every page from the start (no token), until a page lists nothing.
            (first,) = await _tick(poller, org)
            assert first["status"] == "baseline" and first["started"] == []
            assert feed.tokens_seen == [None, "t2", "t4", "t5"] and first["cursor"] == "t5"
            assert _runs(migrated_database_url, org) == []

            # A new record, a changed one and one listed again unchanged (the app logs it twice).
            feed.change("i9", 1)
            feed.change("i1", 2)
            feed.change("i9", 1)
            feed.tokens_seen.clear()
            clock.now += timedelta(minutes=1)
            (second,) = await _tick(poller, org)
            assert feed.tokens_seen == ["t5", "t7", "t8"]  # from the stored token only
            assert sorted((s["record_id"], s["change"]) for s in second["started"]) == [("i1", "changed"), ("i9", "new")]
            assert second["cursor"] == "t8"

            # Nothing new: one request with the stored token, nothing started, the cursor stays.
            feed.tokens_seen.clear()
            clock.now += timedelta(minutes=1)
            (third,) = await _tick(poller, org)
            assert feed.tokens_seen == ["t8"] and third["started"] == [] and third["cursor"] == "t8"

            runs = _runs(migrated_database_url, org)
            assert sorted(r["trigger"]["record_id"] for r in runs) == ["i1", "i9"]
            with app_database(migrated_database_url) as db, db.tenant(org) as tx:
                (row,) = store.Polls(tx).list(org)
            assert row["cursor"] == "t8"


@pytest.mark.parametrize(("event", "reason"), [
    ({"cursor": "updated"}, "not both"),
    ({"cursor_param": None}, "needs 'cursor_param'"),
])
def test_bad_page_token_events_are_refused_naming_the_event(event: dict[str, Any], reason: str) -> None:
    spec = _connector("http://127.0.0.1:1")
    spec["events"]["item_changed"] = {k: v for k, v in (spec["events"]["item_changed"] | event).items() if v is not None}
    with pytest.raises(SpecValidationError) as refused:
        load_connector(spec)
    assert any(p.pointer == "/events/item_changed" and reason in p.message for p in refused.value.problems), \
        refused.value.problems

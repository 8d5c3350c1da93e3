"""Webhook-style app events registered with the provider, against real parts: a provider app over
HTTP on 127.0.0.1 (subscriptions API: create with a delivery URL, delete by id; it then delivers to
the URL), the platform API over HTTP receiving the deliveries, real Postgres, and the subscriber
driven pass by pass.

* Deploying a workflow triggered by the connector's webhook event registers one subscription per
  customer with a connection (with that customer's credentials, pointing at the subscription's
  delivery URL); a second pass changes nothing.
* A delivery to that URL is stored as an app event and runs the workflow for the customer; a
  wrong token is a 404 and stores nothing.
* Undeploying unregisters it with the provider (by the provider's id) and forgets it; the old URL
  then answers 404.
* A subscribe action the connector does not have is refused naming the field.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI, Request, Response
from psycopg.rows import dict_row
from support.platform import app_database, make_tenant, running_platform
from support.servers import serve_app

import store
from engine.errors import SpecValidationError
from engine.specs import load_connector
from runtime import Subscriber
from runtime._credentials import create_connection
from switchboard.app import open_platform
from switchboard.settings import Settings

ENVIRONMENT = "dev"
WORKFLOW = {
    "id": "on-order", "tier": "instant",
    "trigger": {"kind": "app_event", "connector": "provider", "event": "order_created"},
    "steps": [{"id": "seen", "map": {"order": "{{ trigger.order_id }}"}}],
}


class Provider:
    def __init__(self) -> None:
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()


def provider_app(state: Provider) -> FastAPI:
    app = FastAPI()

    @app.post("/subscriptions")
    async def create(request: Request) -> dict[str, Any]:
        body = await request.json()
        with state.lock:
            state.requests.append(("POST", "/subscriptions", request.headers.get("x-key")))
            sub_id = f"sub-{len(state.subscriptions) + 1}"
            state.subscriptions[sub_id] = {"url": body["url"], "event": body["event"]}
        return {"id": sub_id, "url": body["url"]}

    @app.delete("/subscriptions/{sub_id}")
    def delete(sub_id: str, request: Request) -> Response:
        with state.lock:
            state.requests.append(("DELETE", f"/subscriptions/{sub_id}", request.headers.get("x-key")))
            gone = state.subscriptions.pop(sub_id, None)
        return Response(status_code=204 if gone else 404)

    return app


def _connector(url: str) -> dict[str, Any]:
    return {
        "id": "provider", "base_url": url,
        "auth": {"type": "api_key", "keys": [{"credential": "key", "in": "header", "name": "X-Key"}]},
        "actions": {
            "create_subscription": {
                "method": "POST", "path": "/subscriptions", "body": {"url": "{{ input.url }}", "event": "{{ input.event }}"},
                "input": {"type": "object", "properties": {"url": {"type": "string"}, "event": {"type": "string"}}}},
            "delete_subscription": {
                "method": "DELETE", "path": "/subscriptions/{id}", "path_params": {"id": "{{ input.id }}"},
                "input": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}},
        },
        "events": {"order_created": {
            "kind": "webhook",
            "subscribe": {"action": "create_subscription", "input": {"url": "{{ webhook_url }}", "event": "{{ event }}"},
                          "id": "id"},
            "unsubscribe": {"action": "delete_subscription", "input": {"id": "{{ subscription.id }}"}},
        }},
    }


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[Provider, str]]:
    state = Provider()
    with serve_app(provider_app(state)) as url:
        yield state, url


def _rows(admin: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(admin, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


async def test_deploy_registers_delivers_and_undeploy_unregisters(migrated_database_url: str, provider) -> None:
    state, provider_url = provider
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as (base, served):
        settings = Settings(database_url=migrated_database_url, data_dir=served.data_dir, egress_allow=["127.0.0.1"],
                            public_url=base)
        async with open_platform(settings) as platform:
            with app_database(migrated_database_url) as db:
                tenant = make_tenant(db, "Subscriptions")
                org, customer = tenant.org_id, tenant.customers[0]
                with db.tenant(org) as tx:
                    connectors = store.Connectors(tx)
                    connectors.create(org, _connector(provider_url))
                    connectors.publish(org, "provider", 1)
                    # Only the first customer connects the app: only it is subscribed.
                    create_connection(tx, org, customer, "provider", name="provider", encryptor=platform.encryptor,
                                      auth={"type": "api_key", "values": {"key": "customer-key-1"}})
                    workflows = store.Workflows(tx)
                    workflows.create(org, WORKFLOW)
                    workflows.deploy(org, WORKFLOW["id"], ENVIRONMENT, workflows.publish(org, WORKFLOW["id"])["version"])
            subscriber = Subscriber(platform)

            done = [d for d in await subscriber.tick() if d["org_id"] == org]
            assert [(d["action"], d["remote_id"], d["error"]) for d in done] == [("subscribed", "sub-1", None)]
            assert state.requests == [("POST", "/subscriptions", "customer-key-1")]
            registered = state.subscriptions["sub-1"]
            assert registered["event"] == "order_created"
            assert registered["url"].startswith(f"{base}/v1/app-events/{org}/{done[0]['subscription_id']}/")
            (row,) = _rows(migrated_database_url, "SELECT * FROM app_subscriptions WHERE org_id = %s", org)
            assert (row["status"], row["remote_id"], row["customer_id"]) == ("active", "sub-1", customer)
            token = registered["url"].rsplit("/", 1)[1]
            assert token not in str(row)  # only its hash is stored
            assert [d for d in await subscriber.tick() if d["org_id"] == org] == []  # nothing more to do

            # The provider delivers: stored as an app event, the workflow runs for the customer.
            delivered = httpx.post(registered["url"], json={"order_id": 7})
            assert delivered.status_code == 202, delivered.text
            event_id = delivered.json()["event_id"]
            deadline = time.monotonic() + 30
            while True:
                (event,) = _rows(migrated_database_url, "SELECT * FROM events WHERE id = %s", event_id)
                if event["execution_ids"] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert (event["source"], event["customer_id"], event["payload"]) == ("app_event", customer, {"order_id": 7})
            (execution,) = _rows(migrated_database_url, "SELECT * FROM executions WHERE id = %s", event["execution_ids"][0])
            assert (execution["status"], execution["triggered_by"], execution["output"]) == (
                "completed", "app_event", {"order": 7})

            wrong = httpx.post(registered["url"][:-4] + "xxxx", json={"order_id": 8})
            assert wrong.status_code == 404
            assert len(_rows(migrated_database_url, "SELECT id FROM events WHERE org_id = %s", org)) == 1

            with app_database(migrated_database_url) as db, db.tenant(org) as tx:
                store.Workflows(tx).undeploy(org, WORKFLOW["id"], ENVIRONMENT)
            done = [d for d in await subscriber.tick() if d["org_id"] == org]
            assert [(d["action"], d["error"]) for d in done] == [("unsubscribed", None)]
            assert state.requests[-1] == ("DELETE", "/subscriptions/sub-1", "customer-key-1")
            assert state.subscriptions == {}
            assert _rows(migrated_database_url, "SELECT * FROM app_subscriptions WHERE org_id = %s", org) == []
            assert httpx.post(registered["url"], json={"order_id": 9}).status_code == 404


def test_a_subscribe_action_the_connector_lacks_is_refused_naming_the_field() -> None:
    spec = _connector("http://127.0.0.1:1")
    spec["events"]["order_created"]["subscribe"]["action"] = "create_webhook"
    with pytest.raises(SpecValidationError) as refused:
        load_connector(spec)
    assert [(p.pointer, "unknown action 'create_webhook'" in p.message) for p in refused.value.problems] == [
        ("/events/order_created/subscribe/action", True)]

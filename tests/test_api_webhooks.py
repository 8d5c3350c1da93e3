"""Webhook triggers over real HTTP: verified deliveries (Standard Webhooks, HubSpot v3) store one
event per webhook id and run the trigger's workflow once for its customer (inline for an Instant
workflow; queued for a `switchboard worker` process, with the delivery as its trigger, for a
Standard one); bad signatures, stale timestamps and re-serialized bodies start nothing; quotas
refuse with 429 and a stored event; the Events API lists and scopes what arrived."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

import store
from runtime import sign_hubspot_v3
from support.platform import Tenant, client, make_tenant, running_platform
from support.seed import UNLIMITED
from support.serve_process import worker_process
from switchboard import bootstrap
from switchboard.settings import Settings

WORKFLOW = {
    "id": "on-hook",
    "tier": "instant",
    "steps": [{"id": "seen", "map": {"kind": "{{ trigger.type }}", "who": "{{ trigger.data.email }}"}}],
    "output": {"kind": "{{ steps.seen.kind }}", "who": "{{ steps.seen.who }}"},
}
# The same workflow at the Standard tier: a durable worker runs it.
QUEUED_WORKFLOW = WORKFLOW | {"id": "on-hook-queued", "tier": "standard"}
PAYLOAD = {"type": "contact.created", "data": {"email": "ada@example.com", "name": "Ada"}}
HUBSPOT_SECRET = "hubspot-client-secret-7f3a9c"


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[tuple[str, Settings]]:
    with running_platform(migrated_database_url) as served:
        yield served


@pytest.fixture(scope="module")
def http(platform: tuple[str, Settings]) -> Iterator[httpx.Client]:
    with client(platform[0]) as c:
        yield c


@pytest.fixture(scope="module")
def two(db: store.Database, http: httpx.Client) -> tuple[Tenant, Tenant]:
    """Acme and Globex, each with ``on-hook`` (and Acme with ``on-hook-queued``) published."""
    tenants = make_tenant(db, "Acme"), make_tenant(db, "Globex")
    for tenant, spec in ((tenants[0], WORKFLOW), (tenants[0], QUEUED_WORKFLOW), (tenants[1], WORKFLOW)):
        assert http.post("/v1/workflows", headers=tenant.headers(), json={"spec": spec}).status_code == 201
        assert http.post(f"/v1/workflows/{spec['id']}/publish", headers=tenant.headers()).status_code == 201
    return tenants


def customer(db: store.Database, http: httpx.Client, tenant: Tenant, **overrides: Any) -> str:
    """A fresh customer of ``tenant`` (so counts are its own), unlimited unless ``overrides`` say otherwise."""
    created = bootstrap.create_customer(db, tenant.org_id, f"customer {store.new_id('c')}")
    put = http.put(f"/v1/billing/customers/{created['id']}/overrides", headers=tenant.headers(),
                   json=UNLIMITED | overrides)
    assert put.status_code == 200, put.text
    return created["id"]


def trigger(http: httpx.Client, tenant: Tenant, customer_id: str, workflow: str = "on-hook",
            **settings: Any) -> dict[str, Any]:
    created = http.post(f"/v1/workflows/{workflow}/triggers", headers=tenant.headers(),
                        json={"kind": "webhook", "customer": customer_id, **settings})
    assert created.status_code == 201, created.text
    return created.json()


def signed(secret: str, body: bytes, webhook_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    webhook_id = webhook_id or store.new_id("msg")
    at = at or datetime.now(UTC)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, at, body), "content-type": "application/json"}


def deliver(http: httpx.Client, hook: dict[str, Any], body: bytes, headers: dict[str, str]) -> httpx.Response:
    return http.post(hook["config"]["path"], content=body, headers=headers)


def send(http: httpx.Client, hook: dict[str, Any], payload: Any = PAYLOAD, **options: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    return deliver(http, hook, body, signed(hook["signing_secret"], body, **options))


def event(http: httpx.Client, tenant: Tenant, event_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/events/{event_id}", headers=tenant.headers())
    assert response.status_code == 200, response.text
    return response.json()


def dispatched(http: httpx.Client, tenant: Tenant, event_id: str) -> dict[str, Any]:
    """The event once its run has started (an Instant run: finished) and been recorded (waits for
    the background dispatch)."""
    deadline = time.monotonic() + 30
    while True:
        found = event(http, tenant, event_id)
        if found["execution_ids"] or found["status"] == "failed" or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def events_of(http: httpx.Client, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = http.get("/v1/events", headers=tenant.headers(), params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def executions_of(http: httpx.Client, tenant: Tenant, customer_id: str) -> list[dict[str, Any]]:
    response = http.get("/v1/executions", headers=tenant.headers(), params={"customer": customer_id, "limit": 200})
    assert response.status_code == 200, response.text
    return response.json()["items"]


# -- deliveries ---------------------------------------------------------------------------------------------


def test_a_valid_delivery_is_acknowledged_then_runs_the_workflow_once(http: httpx.Client, db, two) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    hook = trigger(http, acme, who)
    response = send(http, hook, webhook_id="msg_first")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "received" and body["duplicate"] is False
    stored = dispatched(http, acme, body["event_id"])
    assert (stored["status"], stored["source"], stored["customer_id"], stored["trigger_id"], stored["webhook_id"]) == (
        "dispatched", "webhook", who, hook["id"], "msg_first")
    assert stored["payload"] == PAYLOAD and len(stored["execution_ids"]) == 1
    execution = http.get(f"/v1/executions/{stored['execution_ids'][0]}", headers=acme.headers()).json()
    assert (execution["status"], execution["tier"], execution["triggered_by"]) == ("completed", "instant", "webhook")
    assert execution["customer_id"] == who
    assert execution["output"] == {"kind": "contact.created", "who": "ada@example.com"}
    assert [e["id"] for e in executions_of(http, acme, who)] == stored["execution_ids"]


def test_a_standard_workflows_delivery_is_queued_and_a_worker_runs_it_with_the_payload(
    migrated_database_url: str, platform: tuple[str, Settings], http: httpx.Client, db, two
) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    hook = trigger(http, acme, who, workflow="on-hook-queued")
    response = send(http, hook, webhook_id="msg_queued")
    assert response.status_code == 202, response.text
    stored = dispatched(http, acme, response.json()["event_id"])
    assert stored["status"] == "dispatched" and len(stored["execution_ids"]) == 1, stored
    execution_id = stored["execution_ids"][0]
    # No worker runs yet: the dispatch only queued it.
    queued = http.get(f"/v1/executions/{execution_id}", headers=acme.headers()).json()
    assert (queued["status"], queued["tier"], queued["triggered_by"]) == ("queued", "standard", "webhook")
    with worker_process(migrated_database_url, platform[1].data_dir, "worker-webhooks"):
        deadline = time.monotonic() + 60
        while True:
            with db.tenant(acme.org_id) as tx:
                status = store.Executions(tx).get(acme.org_id, execution_id)["status"]
            if status not in ("queued", "running") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    done = http.get(f"/v1/executions/{execution_id}", headers=acme.headers()).json()
    assert done["status"] == "completed", done
    # The worker gave the run the delivery's payload as its trigger.
    assert done["output"] == {"kind": "contact.created", "who": "ada@example.com"}
    assert [e["id"] for e in executions_of(http, acme, who)] == [execution_id]


def test_the_same_webhook_id_sent_50_times_at_once_stores_one_event_and_runs_once(http: httpx.Client, db, two) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    hook = trigger(http, acme, who)
    body = json.dumps(PAYLOAD).encode()
    headers = signed(hook["signing_secret"], body, webhook_id="msg_storm")
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda _: deliver(http, hook, body, headers), range(50)))
    assert sorted(r.status_code for r in responses) == [200] * 49 + [202], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert sum(r.json()["duplicate"] for r in responses) == 49
    stored = events_of(http, acme, trigger=hook["id"])
    assert len(stored) == 1
    assert len(dispatched(http, acme, stored[0]["id"])["execution_ids"]) == 1
    assert len(executions_of(http, acme, who)) == 1
    # Charged once: the duplicates neither counted nor ran.
    usage = http.get(f"/v1/billing/customers/{who}/usage", headers=acme.headers()).json()["quotas"]
    assert usage["events_per_minute"]["count"] == 1


def test_a_bad_signature_a_stale_timestamp_and_a_reserialized_body_get_401_and_start_nothing(
    http: httpx.Client, db, two
) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    hook = trigger(http, acme, who)
    body = json.dumps(PAYLOAD).encode()
    other_secret = trigger(http, acme, who)["signing_secret"]
    cases = {
        "wrong secret": (body, signed(other_secret, body)),
        "six minutes old": (body, signed(hook["signing_secret"], body, at=datetime.now(UTC) - timedelta(minutes=6))),
        "re-serialized": (json.dumps(PAYLOAD, indent=2).encode(), signed(hook["signing_secret"], body)),
        "unsigned": (body, {"content-type": "application/json"}),
    }
    for name, (sent, headers) in cases.items():
        response = deliver(http, hook, sent, headers)
        assert response.status_code == 401, (name, response.text)
        assert response.json()["code"] == "signature_invalid" and "www-authenticate" in response.headers, name
    assert "older than 5 minutes" in deliver(http, hook, *cases["six minutes old"]).json()["reason"]
    assert events_of(http, acme, trigger=hook["id"]) == []
    assert executions_of(http, acme, who) == []


def test_secret_rotation_one_valid_signature_of_several_passes(http: httpx.Client, db, two) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    # A sender's own secret (Standard Webhooks senders generate theirs), rotating to a new one.
    old_secret, new_secret = "whsec_" + "A" * 43 + "=", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    hook = trigger(http, acme, who, signing_secret=new_secret)
    assert hook["signing_secret"] is None  # not generated here, so not shown back
    body = json.dumps(PAYLOAD).encode()
    at = datetime.now(UTC)
    old_sig = signed(old_secret, body, "msg_rotating", at)["webhook-signature"]
    headers = signed(new_secret, body, "msg_rotating", at)
    headers["webhook-signature"] = f"{old_sig} {headers['webhook-signature']}"
    response = deliver(http, hook, body, headers)
    assert response.status_code == 202, response.text
    only_old = headers | {"webhook-signature": old_sig}
    assert deliver(http, hook, body, only_old).status_code == 401
    bad = http.post("/v1/workflows/on-hook/triggers", headers=acme.headers(),
                    json={"kind": "webhook", "customer": who, "signing_secret": "whsec_short"})
    assert bad.status_code == 422 and bad.json()["pointer"] == "/signing_secret"


def test_hubspot_v3_signatures(http: httpx.Client, platform: tuple[str, Settings], db, two) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    hook = trigger(http, acme, who, signature="hubspot_v3", signing_secret=HUBSPOT_SECRET)
    assert hook["signing_secret"] is None and hook["config"]["signature"] == "hubspot_v3"
    body = json.dumps([{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 51}]).encode()
    url = platform[0] + hook["config"]["path"]

    def headers(secret: str, at: datetime) -> dict[str, str]:
        stamp = int(at.timestamp() * 1000)
        return {"X-HubSpot-Signature-v3": sign_hubspot_v3(secret, "POST", url, body, stamp),
                "X-HubSpot-Request-Timestamp": str(stamp), "content-type": "application/json"}

    now = datetime.now(UTC)
    valid = deliver(http, hook, body, headers(HUBSPOT_SECRET, now))
    assert valid.status_code == 202, valid.text
    assert len(dispatched(http, acme, valid.json()["event_id"])["execution_ids"]) == 1
    assert deliver(http, hook, body, headers(HUBSPOT_SECRET, now)).json()["duplicate"] is True
    for name, sent in {
        "wrong secret": headers("another-app-secret", now),
        "stale": headers(HUBSPOT_SECRET, now - timedelta(minutes=6)),
        "missing": {"content-type": "application/json"},
    }.items():
        response = deliver(http, hook, body, sent)
        assert response.status_code == 401 and response.json()["scheme"] == "hubspot_v3", name
    tampered = deliver(http, hook, body.replace(b"51", b"52"), headers(HUBSPOT_SECRET, now))
    assert tampered.status_code == 401
    assert len(events_of(http, acme, trigger=hook["id"])) == 1


def test_oversized_and_malformed_bodies_get_clear_4xx(http: httpx.Client, db, two) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    hook = trigger(http, acme, who, payload={"type": "object", "required": ["type"],
                                             "properties": {"type": {"type": "string"}}})
    secret = hook["signing_secret"]
    large = json.dumps({"type": "x", "blob": "a" * 300_000}).encode()
    too_large = deliver(http, hook, large, signed(secret, large))
    assert too_large.status_code == 413 and too_large.json()["setting"] == "max_event_bytes", too_large.text
    huge = b'{"a": "' + b"a" * (2 << 20) + b'"}'
    assert deliver(http, hook, huge, signed(secret, huge)).status_code == 413
    for raw, pointer in ((b"{not json", ""), (b"", ""), (b'{"type": "\\u0000"}', "/type")):
        response = deliver(http, hook, raw, signed(secret, raw))
        assert response.status_code == 400, (raw, response.text)
        assert (response.json()["code"], response.json()["pointer"]) == ("payload_invalid", pointer)
    wrong_shape = json.dumps({"type": 7}).encode()
    response = deliver(http, hook, wrong_shape, signed(secret, wrong_shape))
    assert response.status_code == 422 and response.json()["pointer"] == "/type"
    assert events_of(http, acme, trigger=hook["id"]) == []


def test_another_tenants_trigger_is_404_whatever_is_signed(http: httpx.Client, db, two) -> None:
    acme, globex = two
    hook = trigger(http, acme, customer(db, http, acme))
    body = json.dumps(PAYLOAD).encode()
    headers = signed(hook["signing_secret"], body)
    for path in (f"/v1/hooks/{globex.org_id}/{hook['id']}", f"/v1/hooks/{acme.org_id}/trg_unknown",
                 f"/v1/hooks/org_unknown/{hook['id']}"):
        response = http.post(path, content=body, headers=headers)
        assert response.status_code == 404, (path, response.text)
    schedule = http.post("/v1/workflows/on-hook/triggers", headers=acme.headers(), json={"kind": "schedule", "cron": "0 * * * *"})
    response = http.post(f"/v1/hooks/{acme.org_id}/{schedule.json()['id']}", content=body, headers=headers)
    assert response.status_code == 404
    assert events_of(http, globex) == []


def test_the_event_quota_refuses_with_429_and_stores_the_event_as_refused(http: httpx.Client, db, two) -> None:
    acme, _ = two
    who = customer(db, http, acme, events_per_minute={"limit": 2, "mode": "hard"})
    hook = trigger(http, acme, who)
    responses = [send(http, hook, webhook_id=f"msg_q{i}") for i in range(3)]
    assert [r.status_code for r in responses] == [202, 202, 429]
    refused = responses[2]
    assert int(refused.headers["retry-after"]) >= 1
    assert (refused.json()["reason_code"], refused.json()["dimension"]) == ("quota_exceeded", "events_per_minute")
    stored = event(http, acme, refused.json()["event_id"])
    assert stored["status"] == "refused" and stored["error"]["code"] == "quota_exceeded" and stored["execution_ids"] == []
    # A refused delivery does not hold its id: the sender's retry is taken once the quota allows it.
    http.put(f"/v1/billing/customers/{who}/overrides", headers=acme.headers(), json=UNLIMITED)
    retried = send(http, hook, webhook_id="msg_q2")
    assert retried.status_code == 202 and retried.json()["duplicate"] is False
    statuses = [e["status"] for e in events_of(http, acme, trigger=hook["id"], sort="received_at")]
    assert len(statuses) == 4 and statuses[2] == "refused" and "refused" not in statuses[:2] + statuses[3:]
    for response in (*responses[:2], retried):
        dispatched(http, acme, response.json()["event_id"])
    assert len(executions_of(http, acme, who)) == 3


def test_filters_and_disabled_triggers(http: httpx.Client, db, two) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    hook = trigger(http, acme, who, filter='payload.type = "contact.created"')
    other = send(http, hook, {"type": "contact.deleted"})
    assert other.status_code == 202 and other.json()["status"] == "filtered"
    matching = send(http, hook)
    assert matching.json()["status"] == "received"
    assert len(dispatched(http, acme, matching.json()["event_id"])["execution_ids"]) == 1
    assert event(http, acme, other.json()["event_id"])["execution_ids"] == []
    assert http.patch(f"/v1/triggers/{hook['id']}", headers=acme.headers(), json={"enabled": False}).status_code == 200
    paused = send(http, hook)
    assert paused.status_code == 409 and paused.json()["reason_code"] == "trigger_disabled"
    assert event(http, acme, paused.json()["event_id"])["status"] == "refused"
    assert len(executions_of(http, acme, who)) == 1


# -- the Events API -----------------------------------------------------------------------------------------


def test_events_list_pages_newest_first_filters_and_keeps_tenants_apart(http: httpx.Client, db, two) -> None:
    acme, globex = two
    first, second = customer(db, http, acme), customer(db, http, acme)
    hook_a, hook_b = trigger(http, acme, first), trigger(http, acme, second)
    sent = [send(http, hook_a).json()["event_id"] for _ in range(3)] + [send(http, hook_b).json()["event_id"]]
    for event_id in sent:
        dispatched(http, acme, event_id)
    page = http.get("/v1/events", headers=acme.headers(), params={"limit": 2, "source": "webhook"}).json()
    seen = [e["id"] for e in page["items"]]
    while page["next_cursor"] and len(seen) < 4:
        page = http.get("/v1/events", headers=acme.headers(),
                        params={"limit": 2, "source": "webhook", "cursor": page["next_cursor"]}).json()
        seen += [e["id"] for e in page["items"]]
    assert seen[:4] == sent[::-1]
    assert "payload" not in page["items"][0]
    assert {e["id"] for e in events_of(http, acme, trigger=hook_a["id"])} == set(sent[:3])
    assert [e["id"] for e in events_of(http, acme, customer=second)] == [sent[3]]
    assert all(e["status"] == "dispatched" for e in events_of(http, acme, status="dispatched", customer=first))
    assert events_of(http, acme, status="refused", customer=first) == []
    assert events_of(http, acme, source="schedule", customer=first) == []
    # A request naming a customer sees only that customer's events.
    scoped = http.get("/v1/events", headers=acme.headers(second), params={"limit": 200}).json()["items"]
    assert {e["customer_id"] for e in scoped} == {second}
    assert http.get(f"/v1/events/{sent[0]}", headers=acme.headers(second)).status_code == 404
    # Another organization sees none of them.
    assert all(e["id"] not in sent for e in events_of(http, globex))
    assert http.get(f"/v1/events/{sent[0]}", headers=globex.headers()).status_code == 404
    assert http.get("/v1/events", headers=acme.headers(), params={"status": "lost"}).status_code == 422


def test_events_are_polled_for_new_ones_after_the_newest_seen(http: httpx.Client, db, two) -> None:
    acme, globex = two
    first = customer(db, http, acme)
    hook = trigger(http, acme, first)
    earlier = [send(http, hook).json()["event_id"] for _ in range(2)]
    newest_seen = events_of(http, acme, customer=first)[0]["id"]
    assert newest_seen == earlier[-1]
    assert events_of(http, acme, customer=first, after=newest_seen) == []
    later = [send(http, hook).json()["event_id"] for _ in range(3)]
    # Only the new ones, newest first, paged by the cursor within the bound.
    assert [e["id"] for e in events_of(http, acme, customer=first, after=newest_seen)] == later[::-1]
    page = http.get("/v1/events", headers=acme.headers(), params={"after": newest_seen, "limit": 2}).json()
    rest = http.get("/v1/events", headers=acme.headers(),
                    params={"after": newest_seen, "limit": 2, "cursor": page["next_cursor"]}).json()
    assert [e["id"] for e in page["items"] + rest["items"]] == later[::-1] and rest["next_cursor"] is None
    assert [e["id"] for e in events_of(http, acme, after=earlier[0])] == (earlier[1:] + later)[::-1]
    # An id the caller cannot see is refused, naming the parameter: another organization's event too.
    for unknown in ("evt_nothing", later[0]):
        refused = http.get("/v1/events", headers=(acme if unknown == "evt_nothing" else globex).headers(),
                           params={"after": unknown})
        assert refused.status_code == 422 and refused.json()["field"] == "after", refused.text


def test_events_a_crash_left_received_are_dispatched_at_the_next_start(
    migrated_database_url: str, http: httpx.Client, db, two
) -> None:
    acme, _ = two
    who = customer(db, http, acme)
    hook = trigger(http, acme, who)
    # What a crash between the acknowledgement and the dispatch leaves: an event stored as received.
    with db.tenant(acme.org_id) as tx:
        environment = store.Customers(tx).get(acme.org_id, who)["environment_id"]
        left = store.Events(tx).add(acme.org_id, customer_id=who, environment_id=environment, source="webhook",
                                    status="received", payload=PAYLOAD, payload_bytes=1, trigger_id=hook["id"],
                                    workflow_id=hook["workflow_id"], webhook_id="msg_left")
    with running_platform(migrated_database_url) as (url, _settings):
        with client(url) as restarted:
            recovered = dispatched(restarted, acme, left["id"])
    assert recovered["status"] == "dispatched" and len(recovered["execution_ids"]) == 1
    assert len(executions_of(http, acme, who)) == 1


def test_under_50_concurrent_senders_accepted_events_never_exceed_the_quota(http: httpx.Client, db, two) -> None:
    acme, _ = two
    # The day's limit: a minute's could reset in the middle of the burst.
    who = customer(db, http, acme, events_per_day={"limit": 5, "mode": "hard"})
    hook = trigger(http, acme, who)
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda i: send(http, hook, webhook_id=f"msg_burst{i}"), range(50)))
    assert sorted(r.status_code for r in responses) == [202] * 5 + [429] * 45
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)
    stored = events_of(http, acme, trigger=hook["id"])
    assert len(stored) == 50 and sum(e["status"] == "refused" for e in stored) == 45
    for response in responses:
        if response.status_code == 202:
            dispatched(http, acme, response.json()["event_id"])
    assert len(executions_of(http, acme, who)) == 5


def test_a_webhook_triggers_customer_can_be_changed_never_removed(http: httpx.Client, db, two) -> None:
    acme, globex = two
    first, second = customer(db, http, acme), customer(db, http, acme)
    hook = trigger(http, acme, first)
    path = f"/v1/triggers/{hook['id']}"
    moved = http.patch(path, headers=acme.headers(), json={"customer": second})
    assert moved.status_code == 200 and moved.json()["config"]["customer"] == second
    assert moved.json()["config"]["path"] == hook["config"]["path"] and "signing_secret" not in moved.json()["config"]
    removed = http.patch(path, headers=acme.headers(), json={"customer": None})
    assert removed.status_code == 422 and removed.json()["pointer"] == "/customer"
    foreign = http.patch(path, headers=acme.headers(), json={"customer": globex.customers[0]})
    assert foreign.status_code == 422 and foreign.json()["pointer"] == "/customer"
    delivered = send(http, hook)
    assert delivered.status_code == 202
    assert dispatched(http, acme, delivered.json()["event_id"])["customer_id"] == second
    assert executions_of(http, acme, first) == [] and len(executions_of(http, acme, second)) == 1

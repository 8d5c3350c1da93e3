"""One of every resource for a tenant, created through the API, for tests that walk every route.

    with client(url) as http:
        seeded = seed_tenant(http, make_tenant(db, "acmeco"), "acmeco", cin7_url=cin7.base_url)
    seeded.ids["workflow_id"]   # -> ["wf_..."]: this tenant's values for a path parameter

Every name, key and slug the seed makes contains ``label`` (lowercase letters and digits), so a
test can look for one tenant's label in another's responses. Each customer of the ``Tenant`` gets
unlimited quota overrides (the seed's "customer overrides"), a connection and a dry-run execution;
a test may call as many routes as it likes for them without meeting a 429.

Create requests carry an ``Idempotency-Key`` (recorded in ``idempotent``), as a careful client
sends one; API keys and a webhook trigger's signing secret are shown once, and the responses that
show them are kept in ``shown_once``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook
import yaml
from support.platform import Tenant

ROOT = Path(__file__).resolve().parents[2]
UNLIMITED = {
    dimension: {"limit": None, "mode": "hard"}
    for dimension in ("events_per_day", "events_per_minute", "api_calls_per_day", "api_calls_per_minute")
}


@dataclass(frozen=True)
class SeedValues:
    """The values the seed stores write-only; distinctive so a test can grep for them."""

    secret_value: str
    account_id: str
    application_key: str
    client_secret: str

    @classmethod
    def for_label(cls, label: str) -> SeedValues:
        return cls(
            secret_value=f"{label}-secret-value-5c1e9a",
            account_id=f"{label}-cin7-account-7d3f20",
            application_key=f"{label}-cin7-appkey-91b4e8",
            client_secret=f"{label}-oauth-client-secret-3a6c",
        )


@dataclass
class SeededTenant:
    """What ``seed_tenant`` made.

    ``ids`` maps a path parameter name (as the OpenAPI document spells it) to this tenant's values
    for it; ``aliases`` to other identifiers the same routes accept (keys, slugs). ``by_customer``
    maps each of the tenant's customers to the ids of its own rows (``connection_id``,
    ``execution_id``, ``key_id`` of a key bound to it). ``keys`` holds the issued API keys by role in
    the seed (``org``, ``bound_admin`` for the first customer, ``bound_end_user`` for the second).
    """

    tenant: Tenant
    label: str
    values: SeedValues
    ids: dict[str, list[Any]] = field(default_factory=dict)
    aliases: dict[str, list[Any]] = field(default_factory=dict)
    by_customer: dict[str, dict[str, str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    created: dict[str, Any] = field(default_factory=dict)
    shown_once: list[httpx.Response] = field(default_factory=list)
    signing_secret: str = ""
    idempotent: list[tuple[str, str, Any, str]] = field(default_factory=list)  # (path, key, body, header customer)

    @property
    def secret_name(self) -> str:
        return f"{self.label}_note"

    @property
    def connector_key(self) -> str:
        return f"{self.label}-cin7"

    @property
    def workflow_key(self) -> str:
        return f"{self.label}-sync"

    def string_ids(self) -> set[str]:
        """Every textual id of the tenant's rows (numbers such as versions and audit entry ids left out)."""
        found = {self.tenant.org_id, *self.tenant.customers, *self.key_ids.values()}
        for values in self.ids.values():
            found.update(v for v in values if isinstance(v, str))
        for rows in self.by_customer.values():
            found.update(v for v in rows.values() if isinstance(v, str))
        return found

    def add(self, parameter: str, value: Any) -> None:
        self.ids.setdefault(parameter, [])
        if value not in self.ids[parameter]:
            self.ids[parameter].append(value)


def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url.path}: {response.text}"
    return response.json() if response.content else {}


def cin7_spec(key: str, base_url: str, name: str) -> dict[str, Any]:
    """The Cin7 connector of examples/ under ``key``, pointed at ``base_url`` (a sandbox), with an event."""
    spec = yaml.safe_load((ROOT / "examples" / "connectors" / "cin7.yaml").read_text())
    return spec | {"id": key, "name": name, "base_url": base_url, "events": {"customer_created": {"kind": "webhook"}}}


def workflow_spec(key: str, connector: str, secret: str, name: str) -> dict[str, Any]:
    """List Cin7 customers, then add one whose comment is the secret ``secret``."""
    return {
        "id": key,
        "name": name,
        "tier": "instant",
        "input": {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}}, "required": ["name"],
                  "additionalProperties": False},
        "steps": [
            {"id": "existing", "action": f"{connector}.list_customers", "input": {"Limit": 50}},
            {"id": "create", "action": f"{connector}.create_customer",
             "input": {"body": {"Name": "{{ input.name }}", "Currency": "USD", "Comments": f"{{{{ secrets.{secret} }}}}"}}},
        ],
        "output": {"before": "{{ $count(steps.existing.items) }}", "created": "{{ steps.create }}"},
    }


class _Seeder:
    def __init__(self, http: httpx.Client, seeded: SeededTenant, idempotency: bool) -> None:
        self.http = http
        self.seeded = seeded
        self.idempotency = idempotency
        self.counter = itertools.count(1)

    def headers(self, customer: str | None = None, key: str | None = None) -> dict[str, str]:
        return self.seeded.tenant.headers(customer, key=key)

    def create(self, path: str, body: Any, *, customer: str | None = None, status: int = 201) -> dict[str, Any]:
        headers = self.headers(customer)
        if self.idempotency:
            key = f"seed-{self.seeded.label}-{next(self.counter)}"
            headers["Idempotency-Key"] = key
            self.seeded.idempotent.append((path, key, body, customer or ""))
        return _ok(self.http.post(path, headers=headers, json=body), status)


def seed_tenant(
    http: httpx.Client,
    tenant: Tenant,
    label: str,
    *,
    cin7_url: str,
    values: SeedValues | None = None,
    idempotency: bool = True,
) -> SeededTenant:
    """Create one of every resource for ``tenant`` through the API (as its owner key) and return
    their ids. ``cin7_url`` is the base URL of a Cin7 sandbox the connector points at (the
    executions are dry runs: they only read from it). Fails (AssertionError) on any refusal."""
    assert label.isalnum() and label.islower(), "label: lowercase letters and digits"
    seeded = SeededTenant(tenant=tenant, label=label, values=values or SeedValues.for_label(label))
    values = seeded.values
    s = _Seeder(http, seeded, idempotency)
    first, second = tenant.customers[0], tenant.customers[1]
    owner = http.get("/v1/api-keys", headers=s.headers()).json()["items"]
    seeded.key_ids["owner"] = owner[0]["id"]

    # Billing: a tier, and unlimited overrides so tests are never cut off by the Free plan.
    tier = s.create("/v1/billing/tiers", {"name": f"{label}-gold", "limits": {"events_per_day": {"limit": 5000, "mode": "warn"}}})
    seeded.add("tier_id", tier["id"])
    for customer in tenant.customers:
        _ok(http.put(f"/v1/billing/customers/{customer}/overrides", headers=s.headers(), json=UNLIMITED), 200)

    # Settings: an environment and a customer in it.
    environment = s.create("/v1/environments", {"slug": f"{label}-qa", "name": f"{label} QA"})
    seeded.add("environment_id", environment["id"])
    seeded.add("environment", environment["id"])
    seeded.aliases["environment_id"] = [environment["slug"]]
    seeded.aliases["environment"] = [environment["slug"]]
    extra = s.create("/v1/customers", {"name": f"{label} extra customer", "environment": environment["slug"],
                                       "tier": tier["name"], "metadata": {"crm": f"{label}-crm-ref"}})
    for customer in (*tenant.customers, extra["id"]):
        seeded.add("customer_id", customer)

    # People: a custom role and a user holding it.
    role = s.create("/v1/roles", {"name": f"{label} auditor", "description": f"{label} reads the audit log",
                                  "permissions": {"audit": ["read"], "settings": ["read"]}})
    seeded.add("role_id", role["id"])
    user = s.create("/v1/users", {"email": f"ada@{label}.example.com", "role": role["id"], "name": f"{label} Ada"})
    seeded.add("user_id", user["id"])

    # API keys: one for the organization, one bound to each customer (shown once).
    for name, body in (
        ("org", {"name": f"{label} org key", "role": "developer", "kind": "test"}),
        ("bound_admin", {"name": f"{label} first customer's admin key", "role": "admin", "customer": first}),
        ("bound_end_user", {"name": f"{label} second customer's key", "customer": second}),
    ):
        response = http.post("/v1/api-keys", headers=s.headers(), json=body)
        issued = _ok(response)
        seeded.shown_once.append(response)
        seeded.keys[name] = issued["key"]
        seeded.key_ids[name] = issued["id"]
    for key_id in seeded.key_ids.values():
        seeded.add("key_id", key_id)

    # Secrets and the OAuth app (write-only values).
    secret = s.create("/v1/secrets", {"name": seeded.secret_name, "value": values.secret_value, "environment": "dev"})
    seeded.add("secret_id", secret["id"])
    app = s.create("/v1/oauth-apps", {"connector": f"{label}-crm", "client_id": f"{label}-client-id",
                                      "client_secret": values.client_secret, "scopes": ["contacts.read"]})
    seeded.add("app_id", app["id"])

    # A connector with a published version 1 and a draft version 2.
    spec = cin7_spec(seeded.connector_key, cin7_url, f"{label} Cin7")
    connector = s.create("/v1/connectors", {"spec": spec})
    _ok(http.post(f"/v1/connectors/{connector['id']}/versions/1/publish", headers=s.headers()), 200)
    s.create(f"/v1/connectors/{connector['id']}/versions", {"spec": spec | {"name": f"{label} Cin7 v2"}})
    seeded.add("connector_id", connector["id"])
    seeded.aliases["connector_id"] = [connector["key"]]
    seeded.add("version", 1)
    seeded.add("version", 2)

    # Each customer's connection.
    auth = {"type": "api_key", "values": {"account_id": values.account_id, "application_key": values.application_key}}
    for index, customer in enumerate(tenant.customers):
        connection = s.create("/v1/connections", {"connector": connector["key"], "name": f"{label} cin7 of customer {index}",
                                                  "auth": auth}, customer=customer)
        seeded.add("connection_id", connection["id"])
        seeded.by_customer.setdefault(customer, {})["connection_id"] = connection["id"]

    # A workflow with versions 1 and 2, version 1 deployed to the environment, and a webhook trigger.
    flow = workflow_spec(seeded.workflow_key, connector["key"], seeded.secret_name, f"{label} sync")
    workflow = s.create("/v1/workflows", {"spec": flow})
    seeded.add("workflow_id", workflow["id"])
    seeded.aliases["workflow_id"] = [workflow["key"]]
    s.create(f"/v1/workflows/{workflow['id']}/publish", None)
    _ok(http.put(f"/v1/workflows/{workflow['id']}/draft", headers=s.headers(), json={"spec": flow | {"name": f"{label} sync v2"}}), 200)
    s.create(f"/v1/workflows/{workflow['id']}/publish", None)
    _ok(http.post(f"/v1/workflows/{workflow['id']}/deploy", headers=s.headers(),
                  json={"version": 1, "environment": environment["slug"]}), 200)
    hook_headers = s.headers()
    hook_body = {"kind": "webhook", "customer": tenant.customers[0]}
    if idempotency:
        hook_headers["Idempotency-Key"] = f"seed-{label}-webhook"
        seeded.idempotent.append((f"/v1/workflows/{workflow['id']}/triggers", hook_headers["Idempotency-Key"], hook_body, ""))
    response = http.post(f"/v1/workflows/{workflow['id']}/triggers", headers=hook_headers, json=hook_body)
    hook = _ok(response)
    seeded.shown_once.append(response)
    seeded.signing_secret = hook["signing_secret"]
    seeded.add("trigger_id", hook["id"])
    schedule = s.create(f"/v1/workflows/{workflow['id']}/triggers", {"kind": "schedule", "cron": "0 6 * * *"})
    seeded.add("trigger_id", schedule["id"])

    # One dry run per customer (reads the sandbox with the customer's credentials).
    for customer in tenant.customers:
        run = http.post(f"/v1/workflows/{workflow['id']}/runs", headers=s.headers(customer),
                        json={"input": {"name": f"{label} dry run"}, "dry_run": True})
        execution = _ok(run)
        assert execution["status"] == "completed", execution
        seeded.add("execution_id", execution["id"])
        seeded.by_customer[customer]["execution_id"] = execution["id"]
    seeded.by_customer[second]["key_id"] = seeded.key_ids["bound_end_user"]
    seeded.by_customer[first]["key_id"] = seeded.key_ids["bound_admin"]

    # One webhook event per customer: a trigger for each whose filter the delivery does not match,
    # so the event is stored (filtered) and runs nothing.
    for customer in tenant.customers:
        created = http.post(f"/v1/workflows/{workflow['id']}/triggers", headers=s.headers(),
                            json={"kind": "webhook", "customer": customer, "filter": 'payload.type = "never"'})
        customer_hook = _ok(created)
        seeded.shown_once.append(created)
        seeded.add("trigger_id", customer_hook["id"])
        body = f'{{"type": "{label} seeded"}}'.encode()
        at, delivery_id = datetime.now(UTC), f"msg_{label}_{len(seeded.ids.get('event_id', []))}"
        signature = Webhook(customer_hook["signing_secret"]).sign(delivery_id, at, body)
        delivered = http.post(customer_hook["config"]["path"], content=body, headers={
            "webhook-id": delivery_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature,
            "content-type": "application/json"})
        event = _ok(delivered, 202)
        assert event["status"] == "filtered", event
        seeded.add("event_id", event["event_id"])
        seeded.by_customer[customer]["event_id"] = event["event_id"]

    # An agent thread with one run, read to its end so the run changes no more.
    thread = s.create("/v1/threads", {"graph": "connector_agent", "title": f"{label} thread"})
    seeded.add("thread_id", thread["id"])
    run = _ok(http.post(f"/v1/threads/{thread['id']}/messages", headers=s.headers(),
                        json={"content": f"hello from {label}"}), 202)
    seeded.add("run_id", run["id"])
    with http.stream("GET", run["events_url"], headers=s.headers()) as events:
        assert events.status_code == 200, events.read()
        last = [line for line in events.iter_lines() if line.startswith("event:")][-1]
    assert last.split(":", 1)[1].strip() in ("done", "error", "interrupt"), last

    # Audit entries came with every mutation: the newest and the oldest, and one per customer.
    audit = http.get("/v1/audit-log", headers=s.headers(), params={"limit": 200}).json()["items"]
    assert audit, "mutations were not audited"
    seeded.add("entry_id", audit[0]["id"])
    seeded.add("entry_id", audit[-1]["id"])
    for customer in tenant.customers:
        mine = [e for e in audit if e["customer_id"] == customer]
        assert mine, f"no audit entry for customer {customer}"
        seeded.by_customer[customer]["entry_id"] = mine[0]["id"]
    seeded.created = {"tier": tier, "environment": environment, "customer": extra, "role": role, "user": user,
                      "secret": secret, "oauth_app": app, "connector": connector, "workflow": workflow,
                      "trigger": hook, "schedule": schedule, "thread": thread}
    return seeded

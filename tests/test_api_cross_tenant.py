"""Cross-tenant isolation through the API, walked from ``/openapi.json`` so that a route added later
is covered without touching this module.

Two organizations, each seeded with one of every resource (tests/support/seed.py) and two
customers. Organization B then calls every operation that takes a path parameter with A's ids
(and A's keys and slugs where a route accepts them), with and without a customer of its own in
``x-fastn-account-tenant-id``, and every list with and without filters naming A's rows: nothing
answers 2xx for A's rows, nothing shows an id or a name of A, and A's resources read back
exactly as before. A key bound to A's first customer cannot reach the second customer's rows.
B's attempts are audited in B's log, and A's log holds nothing of B's.

An operation whose path parameter this module has no value for fails the walk (add the
parameter to the seed), and one that refuses the body the walk sends with 422 fails too (add a
valid body to ``bodies``): a 422 says nothing about isolation.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from api._auth import CUSTOMER_CEILING
from support.platform import app_database, client, make_tenant, running_platform
from support.sandbox import running_sandbox
from support.seed import SeededTenant, seed_tenant

TENANT_HEADER = "x-fastn-account-tenant-id"
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
# Fields that change by reading or by the clock, not by anyone's writes.
VOLATILE = frozenset({"last_used_at", "last_seen_at", "window_start", "reset_at"})
# A value for each required query parameter a plain call sends (the walk adds the other tenant's
# values as filters too); a required parameter missing here fails the walk with a KeyError.
REQUIRED_QUERY_VALUES = {"q": "customer"}
SEED = {"/customer": [{"ID": "6f1c6a52-0000-4000-8000-000000000001", "Name": "Existing", "Currency": "NZD"}]}


@dataclass(frozen=True)
class Operation:
    """One operation of the OpenAPI document."""

    method: str
    path: str
    operation_id: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    header_params: tuple[str, ...]
    body: dict[str, Any] | None  # the requestBody object, if any
    required_query: tuple[str, ...] = ()  # query parameters the operation cannot do without (a search's q)

    def base_params(self) -> dict[str, Any]:
        """The largest page, and a plain value for each required query parameter."""
        params: dict[str, Any] = {"limit": 200} if "limit" in self.query_params else {}
        return params | {name: REQUIRED_QUERY_VALUES[name] for name in self.required_query}

    @property
    def authenticated(self) -> bool:
        return "x-fastn-access-key" in self.header_params

    def url(self, values: dict[str, Any]) -> str:
        return re.sub(r"\{([^}]+)\}", lambda m: str(values[m.group(1)]), self.path)


@dataclass
class Call:
    """One request made during the walk and what came back."""

    who: str
    operation: Operation
    url: str
    params: dict[str, Any]
    sent: list[str]
    status: int
    text: str
    body: Any = None

    def __str__(self) -> str:
        query = f"?{httpx.QueryParams(self.params)}" if self.params else ""
        return f"{self.who}: {self.operation.method} {self.url}{query} ({self.operation.operation_id}) -> {self.status} {self.text[:300]}"


@dataclass
class Attack:
    calls: list[Call] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


# -- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cin7():
    with running_sandbox("cin7-core-v2-subset.yaml", seed=SEED) as server:
        yield server


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def http(platform: str) -> Iterator[httpx.Client]:
    with client(platform) as session:
        yield session


@pytest.fixture(scope="module")
def two(migrated_database_url: str, http: httpx.Client, cin7) -> tuple[SeededTenant, SeededTenant]:
    with app_database(migrated_database_url) as db:
        acme, globex = make_tenant(db, "acmeco"), make_tenant(db, "globex")
    return (
        seed_tenant(http, acme, "acmeco", cin7_url=cin7.base_url),
        seed_tenant(http, globex, "globex", cin7_url=cin7.base_url),
    )


@pytest.fixture(scope="module")
def operations(http: httpx.Client) -> list[Operation]:
    document = http.get("/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method, spec in item.items():
            if method.upper() not in METHOD_ORDER or not path.startswith("/v1/"):
                continue
            parameters = spec.get("parameters", [])
            found.append(Operation(
                method=method.upper(), path=path, operation_id=spec.get("operationId", f"{method} {path}"),
                path_params=tuple(p["name"] for p in parameters if p["in"] == "path"),
                query_params=tuple(p["name"] for p in parameters if p["in"] == "query"),
                header_params=tuple(p["name"].lower() for p in parameters if p["in"] == "header"),
                body=spec.get("requestBody"),
                required_query=tuple(p["name"] for p in parameters if p["in"] == "query" and p.get("required")),
            ))
    found.sort(key=lambda o: (METHOD_ORDER[o.method], o.path))
    assert len(found) > 50, "the document lists too few operations to be the platform's"
    return found


@pytest.fixture(scope="module")
def document(http: httpx.Client) -> dict[str, Any]:
    return http.get("/openapi.json").json()


# -- helpers --------------------------------------------------------------------------------------------------


def foreign(text: str, tenant: SeededTenant, sent: list[str]) -> list[str]:
    """The ids and the label of ``tenant`` in ``text``, after removing what the caller sent itself."""
    for value in sorted(sent, key=len, reverse=True):
        if value:
            text = text.replace(value, "<sent>")
    lowered = text.lower()
    found = sorted(i for i in tenant.string_ids() if i in text)
    if tenant.label in lowered:
        found.append(f"label {tenant.label!r}")
    return found


def combinations(operation: Operation, ids: dict[str, list[Any]]) -> list[dict[str, Any]] | None:
    """Every assignment of ``ids`` to the operation's path parameters; None if one is missing."""
    if any(name not in ids or not ids[name] for name in operation.path_params):
        return None
    values = [ids[name] for name in operation.path_params]
    return [dict(zip(operation.path_params, combo, strict=True)) for combo in itertools.product(*values)]


def is_list(operation: Operation) -> bool:
    return operation.method == "GET" and not operation.path_params


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        if "window" in value:  # a new minute (or day) starts counting from zero
            value = {k: v for k, v in value.items() if k not in ("count", "remaining")}
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def bodies(a: SeededTenant) -> dict[str, Any]:
    """Valid request bodies by operationId: what the walk sends where a route needs one."""
    return {
        "customer.update": {"name": "taken over"},
        "user.update": {"name": "taken over"},
        "role.update": {"name": "taken over"},
        "secret.update": {"value": "taken-over-value"},
        "oauth_app.update": {"client_id": "taken-over"},
        "connector_version.create": {"spec": {"id": a.connector_key, "base_url": "https://api.example.com",
                                              "actions": {"ping": {"method": "GET", "path": "/ping"}}}},
        "workflow.update_draft": {"spec": {"id": a.workflow_key, "steps": [{"id": "ping", "action": f"{a.connector_key}.list_customers"}]}},
        "workflow.validate": {"spec": {"id": a.workflow_key, "steps": [{"id": "ping", "action": f"{a.connector_key}.list_customers"}]}},
        "workflow.deploy": {"version": 1, "environment": "production"},
        "trigger.create": {"kind": "schedule", "cron": "0 * * * *"},
        "trigger.update": {"enabled": False},
        "execution.create": {"input": {"name": "taken over"}, "dry_run": True},
        "quota_override.update": {"events_per_day": {"limit": 1, "mode": "hard"}},
        "quota_tier.update": {"name": "taken-over"},
    }


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def example(schema: dict[str, Any], document: dict[str, Any]) -> Any:
    """A value for ``schema`` with its required properties only (the walk's fallback body)."""
    schema = _resolve(schema, document)
    for combinator in ("oneOf", "anyOf", "allOf"):
        if combinator in schema:
            options = [o for o in schema[combinator] if _resolve(o, document).get("type") != "null"]
            return example(options[0], document)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example(properties.get(name, {}), document) for name in schema.get("required", [])}
    return {"string": "x", "integer": 1, "number": 1, "boolean": True, "array": []}.get(kind)


def body_for(operation: Operation, a: SeededTenant, document: dict[str, Any]) -> tuple[bool, Any]:
    """(send a body?, the body) for ``operation``."""
    table = bodies(a)
    if operation.operation_id in table:
        return True, table[operation.operation_id]
    if operation.body is None:
        return False, None
    schema = operation.body.get("content", {}).get("application/json", {}).get("schema", {})
    if not operation.body.get("required"):
        return False, None
    return True, example(schema, document)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def call(http: httpx.Client, who: str, headers: dict[str, str], operation: Operation, values: dict[str, Any],
         *, params: dict[str, Any] | None = None, body: tuple[bool, Any] = (False, None)) -> Call:
    url = operation.url(values)
    send, payload = body
    response = http.request(operation.method, url, headers=headers, params=params or None,
                            **({"json": payload} if send else {}))
    sent = [str(v) for v in values.values()] + [str(v) for v in (params or {}).values()] + strings(payload)
    sent += [v for k, v in headers.items() if k.lower() == TENANT_HEADER]
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    return Call(who, operation, url, dict(params or {}), sent, response.status_code, response.text, parsed)


def snapshot(http: httpx.Client, tenant: SeededTenant, operations: list[Operation]) -> dict[str, Any]:
    """Every GET of ``tenant``'s own resources (each path parameter filled with each of its ids) and
    every list, as the tenant's owner; all must answer 200."""
    shot: dict[str, Any] = {}
    refused = []
    for operation in operations:
        if operation.method != "GET" or operation.operation_id == "connection.oauth_callback":
            continue
        params = operation.base_params()
        for values in combinations(operation, tenant.ids) or []:
            url = operation.url(values)
            response = http.get(url, headers=tenant.tenant.headers(), params=params)
            if operation.operation_id.startswith("sandbox.") and response.status_code == 409 \
                    and response.json()["code"] == "sandbox_unavailable":
                # The seed's connector is made from a spec, not imported: it has no sandbox to read
                # (tests/test_hosted_sandboxes.py reads one). The 409 still proves the owner reached it.
                shot[url] = normalized(response.json())
                continue
            if response.status_code != 200:
                refused.append(f"{url} -> {response.status_code} {response.text[:200]}")
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                shot[url] = response.text  # a finished run's events (SSE), the same at every read
                continue
            shot[url] = normalized(response.json())
    assert not refused, "the owner cannot read its own resources:\n" + "\n".join(refused)
    return shot


def variants(b: SeededTenant) -> list[tuple[str, dict[str, str]]]:
    return [("B", b.tenant.headers()), ("B as its customer", b.tenant.headers(b.tenant.customers[0]))]


def filter_values(a: SeededTenant) -> dict[str, list[str]]:
    """List query parameters by name, with A's values for them."""
    return {
        "customer": list(a.tenant.customers),
        "workflow_id": [*a.ids["workflow_id"], a.workflow_key],
        "workflow": [*a.ids["workflow_id"], a.workflow_key],
        "execution": list(a.ids["execution_id"]),
        "after": list(a.ids["event_id"]),
        "connector": [*a.ids["connector_id"], a.connector_key, f"{a.label}-crm"],
        "actor": [*a.key_ids.values(), *a.ids["user_id"]],
        "resource_id": [a.ids["customer_id"][0], a.ids["workflow_id"][0], a.ids["connection_id"][0], a.ids["secret_id"][0]],
        "role": list(a.ids["role_id"]),
        "environment": [*a.ids["environment_id"], *a.aliases["environment_id"]],
        "tier": [f"{a.label}-gold"],
        "name": [f"{a.label}-gold"],
        "q": [a.label],
    }


# -- the walk -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b_lists(http: httpx.Client, two: tuple[SeededTenant, SeededTenant], operations: list[Operation]) -> list[Call]:
    """Every list as B, plain and filtered by A's values; made before B's attempts on A's rows,
    which B's own audit log records."""
    a, b = two
    calls = []
    filters = filter_values(a)
    for operation in filter(is_list, operations):
        base = operation.base_params()
        for who, headers in variants(b):
            calls.append(call(http, who, headers, operation, {}, params=base))
            for name in operation.query_params:
                for value in filters.get(name, []):
                    calls.append(call(http, who, headers, operation, {}, params=base | {name: value}))
        calls.append(call(http, "B naming A's customer", b.tenant.headers(a.tenant.customers[0]), operation, {}, params=base))
    return calls


@pytest.fixture(scope="module")
def attack(http: httpx.Client, two: tuple[SeededTenant, SeededTenant], operations: list[Operation],
           document: dict[str, Any], b_lists: list[Call]) -> Attack:
    """B calls every operation with a path parameter, filled with A's ids and aliases."""
    a, b = two
    result = Attack(before=snapshot(http, a, operations))
    missing = []
    for operation in operations:
        if not operation.path_params:
            continue
        if not operation.authenticated:
            # A public URL takes no credentials, so no organization calls it: a webhook delivery is
            # anyone's request, refused by its signature (tests/test_api_webhooks.py), and another
            # organization's trigger under one's own organization is a 404 there.
            continue
        assignments = combinations(operation, a.ids)
        if assignments is None:
            missing.append(f"{operation.operation_id}: {[p for p in operation.path_params if p not in a.ids]}")
            continue
        aliased = {name: a.aliases.get(name, []) for name in operation.path_params}
        if any(aliased.values()):
            with_aliases = {name: aliased[name] or a.ids[name][:1] for name in operation.path_params}
            assignments += combinations(operation, with_aliases) or []
        body = body_for(operation, a, document)
        for values in assignments:
            for who, headers in variants(b):
                result.calls.append(call(http, who, headers, operation, values, body=body))
    assert not missing, "operations with path parameters the seed has no value for (extend tests/support/seed.py):\n" + "\n".join(missing)
    result.after = snapshot(http, a, operations)
    return result


# -- tests ----------------------------------------------------------------------------------------------------


def test_no_operation_reaches_another_organizations_rows(attack: Attack) -> None:
    wrong = []
    for made in attack.calls:
        body = made.body if isinstance(made.body, dict) else {}
        if made.status == 404:
            continue
        if made.status == 400 and made.who == "B" and body.get("header") == TENANT_HEADER:
            continue  # the route needs a customer before it looks anything up; "B as its customer" covers it
        wrong.append(str(made))
    assert not wrong, f"{len(wrong)} of {len(attack.calls)} calls with A's ids did not answer 404:\n" + "\n".join(wrong)
    assert len(attack.calls) > 150


def test_refusals_show_nothing_of_the_other_organization(attack: Attack, two: tuple[SeededTenant, SeededTenant]) -> None:
    a, _ = two
    leaks = [f"{made} shows {found}" for made in attack.calls if (found := foreign(made.text, a, made.sent))]
    assert not leaks, "\n".join(leaks)


def test_the_other_organizations_resources_are_intact(attack: Attack) -> None:
    changed = [url for url in attack.before if attack.before[url] != attack.after.get(url)]
    details = [f"{url}:\n  before {json.dumps(attack.before[url], default=str)[:400]}\n  after  "
               f"{json.dumps(attack.after.get(url), default=str)[:400]}" for url in changed]
    assert not changed, "A's resources changed while B called its routes:\n" + "\n".join(details)
    assert len(attack.before) > 40


def test_lists_show_only_ones_own_rows(b_lists: list[Call], two: tuple[SeededTenant, SeededTenant]) -> None:
    a, b = two
    problems = []
    for made in b_lists:
        if made.who == "B naming A's customer":
            if made.operation.authenticated and (made.status != 400 or (made.body or {}).get("header") != TENANT_HEADER):
                problems.append(f"{made}: expected 400 for a customer of another account")
        elif made.status >= 500 or (made.status != 200 and "limit" in made.operation.query_params and made.params == made.operation.base_params()):
            problems.append(f"{made}: a list must answer")
        if found := foreign(made.text, a, made.sent):
            problems.append(f"{made} shows {found}")
    assert not problems, "\n".join(problems)
    # The lists do work: B's own rows are in them.
    shown = "\n".join(m.text for m in b_lists if m.who == "B" and m.status == 200)
    for parameter in ("customer_id", "environment_id", "user_id", "role_id", "key_id", "secret_id", "app_id", "connector_id",
                      "connection_id", "workflow_id", "execution_id", "tier_id"):
        absent = [i for i in b.ids[parameter] if i not in shown]
        assert not absent, f"B's own {parameter} {absent} is in none of B's lists"


def _beyond_ceiling(permission: Any) -> bool:
    if not isinstance(permission, str) or ":" not in permission:
        return False
    area, action = permission.split(":", 1)
    return action not in CUSTOMER_CEILING.get(area, ())


def test_a_key_bound_to_one_customer_reaches_no_other_customer(
    http: httpx.Client, two: tuple[SeededTenant, SeededTenant], operations: list[Operation], document: dict[str, Any],
    attack: Attack,
) -> None:
    a, _ = two
    first, second = a.tenant.customers
    key = a.keys["bound_admin"]
    theirs = {"customer_id": [second], **{name: [value] for name, value in a.by_customer[second].items()}}
    mine = {name: value for name, value in a.by_customer[first].items()}
    second_ids = [second, *(v for v in a.by_customer[second].values() if isinstance(v, str))]
    problems = []
    walked = 0
    for operation in operations:
        assignments = combinations(operation, theirs) if operation.path_params else None
        body = body_for(operation, a, document)
        for values in assignments or []:
            for who, headers in (("bound key", a.tenant.headers(key=key)), ("bound key naming its customer", a.tenant.headers(first, key=key))):
                made = call(http, who, headers, operation, values, body=body)
                walked += 1
                if made.status == 403 and _beyond_ceiling((made.body or {}).get("permission")):
                    continue  # refused before any lookup: the key may never do this, for any customer
                if made.status != 404:
                    problems.append(f"{made}: expected 404")
        if not is_list(operation):
            continue
        base = operation.base_params()
        for params in (base, *([base | {"customer": second}] if "customer" in operation.query_params else [])):
            made = call(http, "bound key", a.tenant.headers(key=key), operation, {}, params=params)
            if made.status >= 500:
                problems.append(f"{made}: a list must answer")
            leaked = [i for i in second_ids if i in made.text]
            if leaked:
                problems.append(f"{made} shows the other customer's {leaked}")
            for item in (made.body or {}).get("items", []) if isinstance(made.body, dict) else []:
                owner = item.get("customer_id", item.get("id") if operation.operation_id == "customer.list" else first)
                if owner not in (first, None):
                    problems.append(f"{made.operation.operation_id} lists a row of {owner}")
        refused = call(http, "bound key naming the other customer", a.tenant.headers(second, key=key), operation, {}, params=base)
        if operation.authenticated and refused.status != 403:
            problems.append(f"{refused}: expected 403")
    assert walked >= 10, "too few customer-scoped operations were walked"
    assert not problems, "\n".join(problems)
    # The key does see its own customer's rows.
    headers = a.tenant.headers(key=key)
    assert [c["id"] for c in http.get("/v1/customers", headers=headers).json()["items"]] == [first]
    assert [c["id"] for c in http.get("/v1/connections", headers=headers).json()["items"]] == [mine["connection_id"]]
    assert mine["execution_id"] in [e["id"] for e in http.get("/v1/executions", headers=headers).json()["items"]]
    assert [u["customer_id"] for u in http.get("/v1/billing/usage", headers=headers).json()["items"]] == [first]


def _audit_log(http: httpx.Client, tenant: SeededTenant) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = http.get("/v1/audit-log", headers=tenant.tenant.headers(), params=params).json()
        entries += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


def test_attempts_are_audited_in_the_callers_log_only(
    http: httpx.Client, two: tuple[SeededTenant, SeededTenant], attack: Attack, migrated_database_url: str
) -> None:
    a, b = two
    b_actors = set(b.key_ids.values()) | set(b.ids["user_id"])
    a_actors = set(a.key_ids.values()) | set(a.ids["user_id"])
    # B's log: whatever names A's rows is B's own refused attempt.
    b_log = _audit_log(http, b)
    about_a = [e for e in b_log if foreign(json.dumps(e), a, [])]
    strays = [e for e in about_a if e["actor_id"] not in b_actors or e["outcome"] != "error" or e["status"] not in (400, 404)]
    assert not strays, "B's log has entries about A's rows that are not B's refused attempts:\n" + "\n".join(map(str, strays))
    attempted = {m.operation.operation_id for m in attack.calls if m.operation.method != "GET"}
    recorded = {e["action"] for e in about_a}
    assert attempted <= recorded, f"B's attempts were not audited: {sorted(attempted - recorded)}"
    # A's log: nothing of B's, through the API and in the table itself.
    a_log = _audit_log(http, a)
    assert a_log and not [e for e in a_log if e["actor_id"] in b_actors or foreign(json.dumps(e), b, [])]
    assert not [e for e in b_log if e["actor_id"] in a_actors]
    with psycopg.connect(migrated_database_url) as owner:
        crossed = owner.execute(
            "SELECT count(*) FROM audit_log WHERE (org_id = %s AND actor_id = ANY(%s)) OR (org_id = %s AND actor_id = ANY(%s))",
            (a.tenant.org_id, sorted(b_actors), b.tenant.org_id, sorted(a_actors)),
        ).fetchone()[0]
    assert crossed == 0


def test_creations_cannot_point_at_the_other_organizations_rows(
    http: httpx.Client, two: tuple[SeededTenant, SeededTenant], attack: Attack
) -> None:
    """Bodies that name A's rows (environment, role, customer, connector) are refused for B."""
    a, b = two
    environment, role, customer = a.ids["environment_id"][0], a.ids["role_id"][0], a.tenant.customers[0]
    mine = b.tenant.customers[0]
    requests = [
        ("/v1/customers", None, {"name": "pointing", "environment": environment}),
        ("/v1/customers", None, {"name": "pointing", "environment": a.aliases["environment_id"][0]}),
        ("/v1/users", None, {"email": "pointing@example.com", "role": role}),
        ("/v1/api-keys", None, {"name": "pointing", "role": role}),
        ("/v1/api-keys", None, {"name": "pointing", "customer": customer}),
        ("/v1/secrets", None, {"name": "pointing", "value": "pointing-value", "environment": environment}),
        ("/v1/connections", mine, {"connector": a.ids["connector_id"][0], "auth": {"type": "api_key", "values": {"account_id": "x", "application_key": "y"}}}),
        ("/v1/connections", mine, {"connector": a.connector_key, "auth": {"type": "api_key", "values": {"account_id": "x", "application_key": "y"}}}),
        ("/v1/connections/oauth/start", mine, {"connector": a.ids["connector_id"][0]}),
        (f"/v1/workflows/{b.ids['workflow_id'][0]}/deploy", None, {"version": 1, "environment": environment}),
        (f"/v1/workflows/{b.ids['workflow_id'][0]}/triggers", None, {"kind": "app_event", "connector": a.connector_key, "event": "customer_created"}),
    ]
    problems = []
    for path, customer_header, body in requests:
        response = http.post(path, headers=b.tenant.headers(customer_header), json=body)
        if response.status_code < 400 or response.status_code >= 500:
            problems.append(f"POST {path} {body} -> {response.status_code} {response.text[:300]}")
        elif found := foreign(response.text, a, [*path.split("/"), *strings(body)]):
            problems.append(f"POST {path} shows {found}: {response.text[:300]}")
    assert not problems, "\n".join(problems)


def test_idempotency_keys_are_per_organization(http: httpx.Client, two: tuple[SeededTenant, SeededTenant], attack: Attack) -> None:
    """B sending A's Idempotency-Keys with A's requests never gets A's stored responses back.

    Last in the module: B's requests create B's own copies of A's environment, connector...
    """
    a, b = two
    problems = []
    for path, key, body, customer in a.idempotent:
        headers = b.tenant.headers(b.tenant.customers[0] if customer else None) | {"Idempotency-Key": key}
        response = http.post(path, headers=headers, json=body)
        sent = [*path.split("/"), *strings(body)]
        if response.headers.get("idempotent-replayed") or foreign(response.text, a, sent):
            problems.append(f"POST {path} with A's key {key!r} -> {response.status_code} {response.text[:300]}")
    assert not problems, "\n".join(problems)
    assert len(a.idempotent) >= 10

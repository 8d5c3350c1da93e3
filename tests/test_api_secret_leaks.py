"""Secrets and credentials appear in no API response, log line, trace, audit entry or stored
idempotent response, and in no table in plaintext.

One organization stores distinctive values of every kind the platform keeps write-only: a
secret (then replaced), Cin7 API-key credentials, bearer, basic and query-key credentials, OAuth
client secrets (then replaced), OAuth access and refresh tokens from the real local provider's
flow (short-lived, so every use refreshes them), its API keys and a webhook signing secret. Then
it reads every GET route of ``/openapi.json``, runs workflows that send all of them (real and dry,
one failing), tests every connection, and sends bad input that carries credentials. A fake
third-party API echoes whatever credentials it receives, in successes and in 401s, as some real
APIs do.

The responses that show a value by design are left out: an API key's issue response and a
webhook trigger's creation response (each shows its own value once). Logs are the platform's
structured JSON lines at DEBUG, kept by a handler beside the stderr one for the whole module, and
stderr itself through ``capfd``; lines of the fake OAuth provider's own loggers (authlib's
server side, werkzeug) are the third party's, not ours, and left out.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
import structlog
from psycopg import sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.oauth_server import OAuthTestServer
from support.platform import Tenant, app_database, make_tenant, running_platform
from support.sandbox import running_sandbox
from support.seed import SeededTenant, SeedValues, seed_tenant
from support.servers import serve_app

import switchboard.logging as switchboard_logging

TAG = secrets.token_hex(4)
LABEL = "leakco"
SECRET_VALUE = f"sv-{TAG}-first-Zq81mPw3"
SECRET_VALUE_2 = f"sv-{TAG}-second-Hc27xLq9"
ACCOUNT_ID = f"acct-{TAG}-Rw4b7Kd0"
APPLICATION_KEY = f"appkey-{TAG}-Tz9s2Vn6"
SEED_CLIENT_SECRET = f"cs-{TAG}-seed-Jp3m8Qa5"
SEED_CLIENT_SECRET_2 = f"cs-{TAG}-seed2-Lk6d1Wr8"
OAUTH_CLIENT_SECRET = f"cs-{TAG}-oauth-Ny5f0Ge2"
BEARER_TOKEN = f"bearer-{TAG}-Xu7c4Pb1"
BASIC_USER = f"user-{TAG}-Mo2h9Sj4"
BASIC_PASSWORD = f"pass-{TAG}-Vd8e3Ki6"
QUERY_KEY = f"qkey-{TAG}-Bg1r5Yt7"
CLIENT_ID = f"{LABEL}-oauth-client"
SEED = {"/customer": [{"ID": "6f1c6a52-0000-4000-8000-000000000001", "Name": "Existing", "Currency": "NZD"}]}
# The fake OAuth provider runs in this process; its own DEBUG lines ("Issue token {...}") are the
# third party's logs, not the platform's.
THIRD_PARTY_LOGGERS = (
    "authlib.oauth2.rfc6749.grants", "authlib.oauth2.rfc6749.authenticate_client",
    "authlib.oauth2.rfc6749.authorization_server", "authlib.oauth2.rfc6749.resource_protector",
    "authlib.oauth2.rfc6750", "authlib.oauth2.rfc7636", "authlib.integrations", "werkzeug", "flask",
)


# -- the fake third-party API that echoes credentials ---------------------------------------------------------


def _seen(request: Request) -> dict[str, Any]:
    authorization = request.headers.get("authorization", "")
    seen: dict[str, Any] = {"authorization": authorization, "query": dict(request.query_params)}
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() == "basic":
        user, _, password = base64.b64decode(rest).decode().partition(":")
        seen |= {"user": user, "password": password, "message": f"hello {user}, your password is {password}"}
    elif scheme.lower() == "bearer":
        seen |= {"message": f"token {rest} accepted"}
    if "api_key" in request.query_params:
        seen["message"] = f"key {request.query_params['api_key']} accepted"
    return seen


async def _me(request: Request) -> JSONResponse:
    return JSONResponse({"id": "me-1", "seen": _seen(request)})


async def _deny(request: Request) -> JSONResponse:
    seen = _seen(request)
    return JSONResponse({"error": f"invalid credentials: {seen.get('message', '')}", "seen": seen}, status_code=401)


ECHO_APP = Starlette(routes=[Route("/me", _me), Route("/deny", _deny)])


def echo_spec(key: str, base_url: str, auth: dict[str, Any]) -> dict[str, Any]:
    """A connector for the echo API: ``test`` (the connection test) is refused with an echo."""
    return {
        "id": key, "name": key, "base_url": base_url, "auth": auth,
        "actions": {
            "test": {"method": "GET", "path": "/deny"},
            "me": {"method": "GET", "path": "/me",
                   "input": {"type": "object", "properties": {"note": {"type": "string"}}},
                   "query": {"note": "{{ input.note }}"}},
            "deny": {"method": "GET", "path": "/deny"},
        },
    }


# -- evidence -------------------------------------------------------------------------------------------------


@dataclass
class Seen:
    """A response the platform gave, as text: status, headers and body."""

    request: str
    text: str
    response: httpx.Response  # kept, so that it can be told apart from the shown-once ones


@dataclass
class World:
    url: str
    tenant: Tenant
    other: Tenant
    seeded: SeededTenant
    provider: OAuthTestServer
    http: httpx.Client
    responses: list[Seen]  # every response of the platform, the shown-once ones included
    logs: list[str]
    ids: dict[str, list[Any]]
    connections: dict[str, str] = field(default_factory=dict)  # the first customer's, by kind: runs use them
    tested: dict[str, str] = field(default_factory=dict)  # the second customer's: tested, revoked, disconnected
    executions: list[str] = field(default_factory=list)
    idempotent: list[tuple[str, str, Any, str]] = field(default_factory=list)  # (path, key, body, customer)
    exercised: list[str] = field(default_factory=list)

    def values(self) -> dict[str, str]:
        """Every stored value by a name for reports, with the encodings it could hide in."""
        found = {
            "secret value": SECRET_VALUE, "replaced secret value": SECRET_VALUE_2,
            "Cin7 account id": ACCOUNT_ID, "Cin7 application key": APPLICATION_KEY,
            "seed OAuth client secret": SEED_CLIENT_SECRET, "replaced seed OAuth client secret": SEED_CLIENT_SECRET_2,
            "OAuth client secret": OAUTH_CLIENT_SECRET, "bearer token": BEARER_TOKEN,
            "basic username": BASIC_USER, "basic password": BASIC_PASSWORD, "query API key": QUERY_KEY,
            "basic credentials (base64)": base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode(),
            "owner API key": self.tenant.key, "other organization's API key": self.other.key,
            "webhook signing secret": self.seeded.signing_secret,
        }
        found |= {f"API key {name}": key for name, key in self.seeded.keys.items()}
        for index, token in enumerate(self.provider.tokens):
            found[f"OAuth access token {index}"] = token.access_token
            if token.refresh_token:
                found[f"OAuth refresh token {index}"] = token.refresh_token
        for name, value in list(found.items()):
            found[f"{name} (base64)"] = base64.b64encode(value.encode()).decode()
        return found


def find(values: dict[str, str], text: str, where: str) -> list[str]:
    """``<value name> in <where>: ...<the text around it>...`` for each value ``text`` holds."""
    found = []
    for name, value in values.items():
        at = text.find(value) if value else -1
        if at >= 0:
            found.append(f"{name} in {where}: ...{text[max(0, at - 160):at + len(value) + 40]}...")
    return found


def report(found: list[str], what: str) -> str:
    return f"{len(found)} stored value(s) found in {what}:\n" + "\n".join(found[:60])


# -- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs() -> Iterator[list[str]]:
    """DEBUG JSON logs to stderr for the module; the lines also kept in a list. Restored after."""
    saved = (logging.root.handlers[:], logging.root.level, structlog.get_config(), switchboard_logging._configured)
    switchboard_logging.configure_logging("DEBUG", "json", force=True)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    keep = Keep()
    keep.setFormatter(logging.root.handlers[0].formatter)
    logging.root.addHandler(keep)
    try:
        yield lines
    finally:
        logging.root.handlers[:] = saved[0]
        logging.root.setLevel(saved[1])
        structlog.configure(**saved[2])
        switchboard_logging._configured = saved[3]


@pytest.fixture(scope="module")
def world(logs: list[str], migrated_database_url: str) -> Iterator[World]:
    responses: list[Seen] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        text = f"{response.status_code}\n{headers}\n{response.text}"
        responses.append(Seen(f"{response.request.method} {response.request.url}", text, response))

    with OAuthTestServer(expires_in=30) as provider, \
            running_sandbox("cin7-core-v2-subset.yaml", seed=SEED) as cin7, \
            serve_app(ECHO_APP) as echo_url, \
            running_platform(migrated_database_url, egress_allow=["127.0.0.1"]) as (url, _settings), \
            httpx.Client(base_url=url, timeout=30, event_hooks={"response": [keep]}) as http:
        provider.add_client(CLIENT_ID, OAUTH_CLIENT_SECRET, redirect_uris=[f"{url}/v1/oauth/callback"],
                            grant_types=("authorization_code", "refresh_token"))
        with app_database(migrated_database_url) as db:
            tenant, other = make_tenant(db, LABEL), make_tenant(db, "otherleak", customers=1)
        seeded = seed_tenant(http, tenant, LABEL, cin7_url=cin7.base_url, values=SeedValues(
            secret_value=SECRET_VALUE, account_id=ACCOUNT_ID, application_key=APPLICATION_KEY, client_secret=SEED_CLIENT_SECRET))
        world = World(url, tenant, other, seeded, provider, http, responses, logs,
                      {k: list(v) for k, v in seeded.ids.items()}, idempotent=list(seeded.idempotent))
        _connect_everything(world, echo_url)
        _replace_values(world)
        yield world


def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url.path}: {response.text}"
    return response.json()


def _connect_everything(world: World, echo_url: str) -> None:
    """Echo connectors with bearer, basic and query-key connections; an OAuth connection through
    the provider; a workflow that uses all of them and the secret."""
    http, tenant = world.http, world.tenant
    headers = tenant.headers()
    auths = {
        "bearer": ({"type": "bearer"}, {"type": "bearer", "token": BEARER_TOKEN}),
        "basic": ({"type": "basic"}, {"type": "basic", "username": BASIC_USER, "password": BASIC_PASSWORD}),
        "query": ({"type": "api_key", "keys": [{"credential": "api_key", "in": "query", "name": "api_key"}]},
                  {"type": "api_key", "api_key": QUERY_KEY}),
    }
    for kind, (scheme, auth) in auths.items():
        key = f"{LABEL}-echo-{kind}"
        _ok(http.post("/v1/connectors", headers=headers, json={"spec": echo_spec(key, echo_url, scheme)}))
        _ok(http.post(f"/v1/connectors/{key}/versions/1/publish", headers=headers), 200)
        for customer, kept in zip(tenant.customers, (world.connections, world.tested), strict=True):
            idempotency = f"leak-{kind}-{customer}"
            created = _ok(http.post("/v1/connections", headers=tenant.headers(customer) | {"Idempotency-Key": idempotency},
                                    json={"connector": key, "auth": auth}))
            world.idempotent.append(("/v1/connections", idempotency, {"connector": key, "auth": auth}, customer))
            kept[kind] = created["id"]

    provider = world.provider
    crm = {"id": f"{LABEL}-oauthcrm", "name": "CRM", "base_url": provider.url,
           "auth": {"type": "oauth2", "flow": "authorization_code", "authorize_url": provider.authorize_url,
                    "token_url": provider.token_url, "scopes": ["contacts.read", "offline_access"]},
           "actions": {"me": {"method": "GET", "path": "/api/me"}}}
    _ok(http.post("/v1/connectors", headers=headers, json={"spec": crm}))
    _ok(http.post(f"/v1/connectors/{crm['id']}/versions/1/publish", headers=headers), 200)
    app = {"connector": crm["id"], "client_id": CLIENT_ID, "client_secret": OAUTH_CLIENT_SECRET}
    _ok(http.post("/v1/oauth-apps", headers=headers | {"Idempotency-Key": "leak-oauth-app"}, json=app))
    world.idempotent.append(("/v1/oauth-apps", "leak-oauth-app", app, ""))
    for customer, kept in zip(tenant.customers, (world.connections, world.tested), strict=True):
        started = _ok(http.post("/v1/connections/oauth/start", headers=tenant.headers(customer) | {"Idempotency-Key": f"leak-start-{customer}"},
                                json={"connector": crm["id"]}))
        world.idempotent.append(("/v1/connections/oauth/start", f"leak-start-{customer}", {"connector": crm["id"]}, customer))
        approved = httpx.get(started["authorize_url"], follow_redirects=False)
        assert approved.status_code == 302, approved.text
        _ok(http.get(approved.headers["location"]), 200)
        kept["oauth"] = started["connection_id"]
        kept["cin7"] = world.seeded.by_customer[customer]["connection_id"]
    for connection in (*world.connections.values(), *world.tested.values()):
        if connection not in world.ids["connection_id"]:
            world.ids["connection_id"].append(connection)

    secret = world.seeded.secret_name
    everything = {
        "id": f"{LABEL}-everything", "tier": "instant",
        "steps": [
            {"id": "list", "action": f"{world.seeded.connector_key}.list_customers", "input": {"Limit": 5}},
            {"id": "create", "action": f"{world.seeded.connector_key}.create_customer",
             "input": {"body": {"Name": "Leak check", "Currency": "USD", "Comments": f"{{{{ secrets.{secret} }}}}"}}},
            {"id": "crm", "action": f"{LABEL}-oauthcrm.me"},
            {"id": "bearer", "action": f"{LABEL}-echo-bearer.me", "input": {"note": f"{{{{ secrets.{secret} }}}}"}},
            {"id": "basic", "action": f"{LABEL}-echo-basic.me"},
            {"id": "query", "action": f"{LABEL}-echo-query.me"},
        ],
        "output": {"steps": "{{ steps }}"},
    }
    denied = {"id": f"{LABEL}-denied", "tier": "instant", "steps": [{"id": "basic", "action": f"{LABEL}-echo-basic.deny"}]}
    for spec in (everything, denied):
        created = _ok(http.post("/v1/workflows", headers=headers, json={"spec": spec}))
        _ok(http.post(f"/v1/workflows/{spec['id']}/publish", headers=headers))
        world.ids["workflow_id"].append(created["id"])


def _replace_values(world: World) -> None:
    http, headers = world.http, world.tenant.headers()
    _ok(http.put(f"/v1/secrets/{world.seeded.ids['secret_id'][0]}", headers=headers, json={"value": SECRET_VALUE_2}), 200)
    _ok(http.patch(f"/v1/oauth-apps/{world.seeded.ids['app_id'][0]}", headers=headers,
                   json={"client_secret": SEED_CLIENT_SECRET_2}), 200)


# -- exercising ---------------------------------------------------------------------------------------------


def run_everything(world: World) -> None:
    """Runs (real, dry, failing), connection tests, bad input; recorded by the client's hook."""
    http, tenant = world.http, world.tenant
    first, second = tenant.customers
    runs = [
        (f"{LABEL}-everything", {"input": {}}, "completed"),
        (f"{LABEL}-everything", {"input": {}, "dry_run": True}, "completed"),
        (world.seeded.workflow_key, {"input": {"name": "Real run"}}, "completed"),
        (f"{LABEL}-denied", {"input": {}}, "failed"),
    ]
    for workflow, body, status in runs:
        execution = _ok(http.post(f"/v1/workflows/{workflow}/runs", headers=tenant.headers(first), json=body))
        assert execution["status"] == status, execution
        world.executions.append(execution["id"])
        world.ids["execution_id"].append(execution["id"])
    for kind, connection in [*world.connections.items(), *world.tested.items()]:
        customer = first if connection in world.connections.values() else second
        tested = _ok(http.post(f"/v1/connections/{connection}/test", headers=tenant.headers(customer)), 200)
        expected = kind in ("cin7", "oauth")  # the echo API refuses its test action, echoing what it got
        assert tested["ok"] is expected, (kind, tested)
    world.exercised.append("runs and connection tests")

    cin7, echo = world.seeded.connector_key, f"{LABEL}-echo"
    bad: list[tuple[str, str, dict[str, str], Any, int]] = [
        ("POST", "/v1/connections", tenant.headers(first), {"connector": cin7, "auth": {"type": "bearer", "token": APPLICATION_KEY}}, 422),
        ("POST", "/v1/connections", tenant.headers(first), {"connector": f"{echo}-basic", "auth": {
            "type": "basic", "username": BASIC_USER, "password": BASIC_PASSWORD, "token": BEARER_TOKEN}}, 422),
        ("POST", "/v1/connections", tenant.headers(first), {"connector": f"{echo}-bearer", "auth": {
            "type": "bearer", "token": BEARER_TOKEN, "values": {"nope": QUERY_KEY}}}, 422),
        ("POST", "/v1/connections", tenant.headers(first), {"connector": f"{echo}-query", "auth": {"type": "api_key", "api_key": QUERY_KEY + "\u0001"}}, 422),
        ("POST", "/v1/connections", tenant.headers(first), {"connector": f"{echo}-query", "auth": {"type": "api_key", "api_key": QUERY_KEY * 2000}}, 422),
        ("POST", "/v1/connections", tenant.headers(first), {"connector": "no-such-connector", "auth": {"type": "api_key", "api_key": QUERY_KEY}}, 404),
        ("POST", "/v1/connections", tenant.headers(), {"connector": f"{echo}-query", "auth": {"type": "api_key", "api_key": QUERY_KEY}}, 400),
        ("POST", "/v1/secrets", tenant.headers(), {"name": "bad name!", "value": SECRET_VALUE, "environment": "dev"}, 422),
        ("POST", "/v1/secrets", tenant.headers(), {"name": world.seeded.secret_name, "value": SECRET_VALUE_2, "environment": "dev"}, 409),
        ("POST", "/v1/secrets", tenant.headers(), {"name": "extra", "value": "v", "environment": "dev", "copy": SECRET_VALUE}, 422),
        ("POST", "/v1/secrets", tenant.headers(), {"name": "nested", "value": {"v": SECRET_VALUE}, "environment": "dev"}, 422),
        ("POST", "/v1/secrets", tenant.headers(), {"name": "nowhere", "value": SECRET_VALUE, "environment": "moon"}, 404),
        ("PUT", "/v1/secrets/sec_000000000000000000000000", tenant.headers(), {"value": SECRET_VALUE}, 404),
        ("POST", "/v1/oauth-apps", tenant.headers(), {"connector": f"{LABEL}-oauthcrm", "client_id": "x", "client_secret": OAUTH_CLIENT_SECRET}, 409),
        ("POST", "/v1/oauth-apps", tenant.headers(), {"connector": "elsewhere", "client_id": "x", "client_secret": OAUTH_CLIENT_SECRET,
                                                       "token_url": f"ftp://{OAUTH_CLIENT_SECRET}.example.com/token"}, 422),
        ("PATCH", f"/v1/oauth-apps/{world.seeded.ids['app_id'][0]}", tenant.headers(), {"client_secret": SEED_CLIENT_SECRET, "scopes": "all"}, 422),
        ("GET", "/v1/customers", {"x-fastn-access-key": tenant.key, "x-fastn-account-id": world.other.org_id}, None, 401),
        ("GET", "/v1/customers", {"x-fastn-access-key": tenant.key + "x", "x-fastn-account-id": tenant.org_id}, None, 401),
        ("GET", "/v1/customers", {"authorization": f"Bearer {tenant.key}", "x-fastn-account-id": tenant.org_id}, None, 401),
        ("GET", "/v1/customers", {"x-fastn-access-key": tenant.key}, None, 401),
        ("GET", "/v1/connections", tenant.headers(tenant.customers[1], key=world.seeded.keys["bound_admin"]), None, 403),
    ]
    for method, path, headers, body, status in bad:
        response = http.request(method, path, headers=headers, json=body)
        assert response.status_code == status, (method, path, response.status_code, response.text)
    broken = http.post("/v1/secrets", headers=tenant.headers() | {"content-type": "application/json"},
                       content=f'{{"name": "broken", "value": "{SECRET_VALUE}", '.encode())
    assert broken.status_code == 422, broken.text
    reused = http.post("/v1/connections", headers=tenant.headers(first) | {"Idempotency-Key": f"leak-bearer-{first}"},
                       json={"connector": f"{echo}-bearer", "auth": {"type": "bearer", "token": BEARER_TOKEN + "-other"}})
    assert reused.status_code == 409, reused.text
    world.exercised.append("bad input")

    # The OAuth grant revoked at the provider: the next use marks the connection needs_reconnect.
    token = world.provider.tokens[-1]
    _ok(http.post(f"/v1/connections/{world.tested['oauth']}/test", headers=tenant.headers(second)), 200)
    world.provider.revoke_refresh_token(world.provider.tokens[-1].refresh_token)
    revoked = _ok(http.post(f"/v1/connections/{world.tested['oauth']}/test", headers=tenant.headers(second)), 200)
    assert revoked["connection"]["status"] == "needs_reconnect" and world.provider.tokens[-1] is not token, revoked
    disconnected = _ok(http.delete(f"/v1/connections/{world.tested['basic']}", headers=tenant.headers(second)), 200)
    assert disconnected["status"] == "disconnected"
    assert http.post(f"/v1/connections/{world.tested['basic']}/test", headers=tenant.headers(second)).status_code == 409


def read_everything(world: World) -> int:
    """Every GET of the OpenAPI document with this organization's ids, as its owner (with and
    without a customer) and as a customer-bound key. Returns the number of calls."""
    http, tenant = world.http, world.tenant
    document = http.get("/openapi.json").json()
    callers = [tenant.headers(), tenant.headers(tenant.customers[0]),
               tenant.headers(key=world.seeded.keys["bound_admin"])]
    calls = 0
    for path, item in document["paths"].items():
        operation = item.get("get")
        if not path.startswith("/v1/") or operation is None:
            continue
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        missing = [n for n in names if not world.ids.get(n)]
        assert not missing, f"GET {path}: no value for {missing} (extend the seed)"
        limit = {"limit": 200} if any(p["name"] == "limit" for p in operation.get("parameters", [])) else {}
        for combo in itertools.product(*(world.ids[n] for n in names)):
            values = dict(zip(names, combo, strict=True))
            url = re.sub(r"\{([^}]+)\}", lambda m, values=values: str(values[m.group(1)]), path)
            for headers in callers:
                http.get(url, headers=headers, params=limit)
                calls += 1
    world.exercised.append("every GET")
    return calls


@pytest.fixture(scope="module")
def exercised(world: World) -> World:
    run_everything(world)
    assert read_everything(world) > 100
    return world


def owner_rows(conninfo: str, query: str, *params: Any) -> list[str]:
    with psycopg.connect(conninfo) as owner:
        return [json.dumps(row[0], default=str) for row in owner.execute(query, params)]


# -- tests ------------------------------------------------------------------------------------------------------


def test_stderr_has_the_platforms_debug_logs_and_no_stored_value(world: World, capfd: pytest.CaptureFixture[str]) -> None:
    """What reaches stderr while runs (one refused by the echo API), connection tests and a bad
    request are served. A refused connection test marks a connection needs_reconnect, and runs
    are then refused: the tests are on the second customer's connections, runs use the first's."""
    http, tenant, first = world.http, world.tenant, world.tenant.customers[0]
    for workflow, status in ((f"{LABEL}-everything", "completed"), (f"{LABEL}-denied", "failed")):
        run = _ok(http.post(f"/v1/workflows/{workflow}/runs", headers=tenant.headers(first), json={"input": {}}))
        assert run["status"] == status, run
    for connection in (world.connections["cin7"], world.connections["oauth"]):
        assert _ok(http.post(f"/v1/connections/{connection}/test", headers=tenant.headers(first)), 200)["ok"]
    for kind in ("bearer", "basic", "query"):
        http.post(f"/v1/connections/{world.tested[kind]}/test", headers=tenant.headers(tenant.customers[1]))
    http.post("/v1/connections", headers=tenant.headers(first), json={"connector": world.seeded.connector_key,
                                                                      "auth": {"type": "bearer", "token": APPLICATION_KEY}})
    captured = capfd.readouterr()
    lines = [line for line in (captured.err + captured.out).splitlines() if line.strip()]
    assert any('"level": "debug"' in line for line in lines), "no DEBUG log line reached stderr: the capture sees nothing"
    ours = [line for line in lines if not third_party(line)]
    found = [f for index, line in enumerate(ours) for f in find(world.values(), line, f"stderr line {index}")]
    assert not found, report(found, "stderr")


def third_party(line: str) -> bool:
    try:
        logger = json.loads(line).get("logger", "")
    except ValueError:
        return False
    return isinstance(logger, str) and logger.startswith(THIRD_PARTY_LOGGERS)


def test_no_stored_value_in_any_response(exercised: World) -> None:
    world = exercised
    shown = [seen for seen in world.responses if not any(seen.response is once for once in world.seeded.shown_once)]
    assert len(shown) > 300 and len(world.responses) - len(shown) == len(world.seeded.shown_once)
    values = world.values()
    found = [f for seen in shown for f in find(values, seen.text, seen.request)]
    assert not found, report(found, "API responses (bodies and headers)")


def test_no_stored_value_in_any_log_line(exercised: World) -> None:
    world = exercised
    ours = [line for line in world.logs if not third_party(line)]
    assert any('"level": "debug"' in line for line in world.logs), "no DEBUG line was logged: the capture sees nothing"
    found = [f for line in ours for f in find(world.values(), line, "a log line")]
    assert not found, report(found, "log lines")


def test_no_stored_value_in_traces_or_executions(exercised: World, migrated_database_url: str) -> None:
    world = exercised
    rows = owner_rows(migrated_database_url,
                      "SELECT to_jsonb(e) FROM executions e WHERE org_id = %s", world.tenant.org_id)
    assert len(rows) >= len(world.executions) + 2
    traces = [json.loads(row)["trace"] for row in rows]
    assert sum(len(t or []) for t in traces) > 10, "the executions recorded no traces"
    found = [f for row in rows for f in find(world.values(), row, f"execution {json.loads(row)['id']}")]
    assert not found, report(found, "executions (trace, input, output, error)")


def test_no_stored_value_in_audit_entries(exercised: World, migrated_database_url: str) -> None:
    world = exercised
    rows = owner_rows(migrated_database_url, "SELECT to_jsonb(a) FROM audit_log a WHERE org_id = %s", world.tenant.org_id)
    assert len(rows) > 30
    assert any('"outcome": "error"' in row for row in rows)
    found = [f for row in rows for f in find(world.values(), row, "an audit entry")]
    assert not found, report(found, "audit entries")


def test_no_stored_value_in_idempotent_responses(exercised: World, migrated_database_url: str) -> None:
    """Responses kept to answer Idempotency-Key retries, and the retries' answers."""
    world = exercised
    rows = owner_rows(migrated_database_url, "SELECT to_jsonb(k) FROM idempotency_keys k WHERE org_id = %s", world.tenant.org_id)
    assert len(rows) >= 15
    found = [f for row in rows for f in find(world.values(), row, f"idempotency_keys row {json.loads(row)['path']}")]
    for path, key, body, customer in world.idempotent:
        headers = world.tenant.headers(customer or None) | {"Idempotency-Key": key}
        replay = world.http.post(path, headers=headers, json=body)
        found += find(world.values(), replay.text, f"the retry of POST {path} (Idempotency-Key {key}) -> {replay.status_code}")
    assert not found, report(found, "stored idempotent responses and their replays")


def test_no_stored_value_in_any_table_in_plaintext(exercised: World, migrated_database_url: str) -> None:
    """Every column of every table of the database (text, JSON, arrays and bytes), as the owner."""
    world = exercised
    values = world.values()
    found: list[str] = []
    scanned = binary_values = 0
    control = f"{LABEL} customer 0"  # stored in plaintext: shows that the scan reads what is there
    controls = 0
    with psycopg.connect(migrated_database_url) as owner:
        tables = owner.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            name = sql.Identifier(schema, table)
            for (row,) in owner.execute(sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(name)):
                scanned += 1
                controls += control in row
                found += find(values, row, f"{schema}.{table}")
            binary = [c for (c,) in owner.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s AND data_type = 'bytea'",
                (schema, table))]
            for column in binary:
                for (data,) in owner.execute(sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL").format(
                        sql.Identifier(column), name, sql.Identifier(column))):
                    binary_values += 1
                    found += find(values, bytes(data).decode("latin-1"), f"{schema}.{table}.{column} (bytes)")
    assert scanned > 100 and len(tables) >= 20 and binary_values >= 5 and controls >= 1
    assert not found, report(found, "the database in plaintext")

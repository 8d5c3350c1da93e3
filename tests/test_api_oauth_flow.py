"""The OAuth 2.0 connection flow through the API against a real local authorization server
(authlib, tests/support/oauth_server.py): authorize with PKCE, callback, tokens stored encrypted,
refresh before expiry (once, when two workers race), ``invalid_grant`` -> needs reconnect, tokens
the engine renews during a run kept, one-time and expiring states."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Iterator
from functools import partial
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx
import psycopg
import pytest

import store
from engine.http import EgressPolicy, HttpClient
from support.oauth_server import OAuthTestServer
from support.platform import Tenant, make_tenant, running_platform
import runtime as credentials
from switchboard.settings import Settings

CLIENT_ID = "switchboard-app"
CLIENT_SECRET = "cs_7Yq2Wm9Rt4Kd1Lp6"
CONNECTOR = "acme-crm"
UNLIMITED = {d: {"limit": None, "mode": "hard"} for d in ("api_calls_per_minute", "api_calls_per_day")}
RETURN_TO = "https://app.example.com/integrations/done?tab=crm"


class Clock:
    """The platform's clock: real time plus an offset a test moves."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


clock = Clock()
seen: list[str] = []


def _remember(response: httpx.Response) -> None:
    response.read()
    seen.append(response.text + response.headers.get("location", ""))


@pytest.fixture(autouse=True)
def _real_time() -> None:
    clock.offset = timedelta(0)


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuthTestServer]:
    with OAuthTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def platform(migrated_database_url: str, provider: OAuthTestServer) -> Iterator[tuple[str, Settings]]:
    with running_platform(migrated_database_url, clock=clock, egress_allow=["127.0.0.1"]) as (url, settings):
        provider.add_client(CLIENT_ID, CLIENT_SECRET, redirect_uris=[f"{url}/v1/oauth/callback"],
                            grant_types=("authorization_code", "refresh_token"))
        yield url, settings


@pytest.fixture(scope="module")
def http(platform: tuple[str, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform[0], timeout=30, event_hooks={"response": [_remember]}) as client:
        yield client


def _spec(provider: OAuthTestServer, key: str = CONNECTOR) -> dict[str, Any]:
    return {
        "id": key,
        "name": "Acme CRM",
        "base_url": provider.url,
        "auth": {
            "type": "oauth2", "flow": "authorization_code", "authorize_url": provider.authorize_url,
            "token_url": provider.token_url, "scopes": ["contacts.read", "offline_access"],
        },
        "actions": {"me": {"method": "GET", "path": "/api/me"}},
    }


def _tenant(db: store.Database, http: httpx.Client, provider: OAuthTestServer, name: str) -> Tenant:
    tenant = make_tenant(db, name)
    with db.tenant(tenant.org_id) as tx:
        for customer in tenant.customers:
            store.Customers(tx).update(tenant.org_id, customer, {"quota_overrides": UNLIMITED})
    for spec in (_spec(provider), _spec(provider, "acme-crm-no-app")):
        assert http.post("/v1/connectors", headers=tenant.headers(), json={"spec": spec}).status_code == 201
    app = {"connector": CONNECTOR, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert http.post("/v1/oauth-apps", headers=tenant.headers(), json=app).status_code == 201
    return tenant


@pytest.fixture(scope="module")
def acme(db: store.Database, http: httpx.Client, provider: OAuthTestServer) -> Tenant:
    return _tenant(db, http, provider, "Acme")


@pytest.fixture(scope="module")
def globex(db: store.Database, http: httpx.Client, provider: OAuthTestServer) -> Tenant:
    return _tenant(db, http, provider, "Globex")


def _start(http: httpx.Client, tenant: Tenant, customer: str, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/connections/oauth/start", headers=tenant.headers(customer), json={"connector": CONNECTOR, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _approve(authorize_url: str) -> str:
    """What the end customer's browser does at the provider: returns the redirect to our callback."""
    response = httpx.get(authorize_url, follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def _connect(http: httpx.Client, tenant: Tenant, customer: str) -> dict[str, Any]:
    started = _start(http, tenant, customer)
    response = http.get(_approve(started["authorize_url"]))
    assert response.status_code == 200, response.text
    return http.get(f"/v1/connections/{started['connection_id']}", headers=tenant.headers(customer)).json()


def _tokens(provider: OAuthTestServer) -> Any:
    return provider.tokens[-1]


def _encryptor(settings: Settings) -> store.Encryptor:
    return store.Encryptor(store.MasterKeyring.from_settings(settings.master_key, settings.master_key_path, production=False))


def _local_http() -> HttpClient:
    return HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))


def test_authorize_callback_and_tokens_stored_encrypted(
    http: httpx.Client, acme: Tenant, provider: OAuthTestServer, migrated_database_url: str
) -> None:
    customer = acme.customers[0]
    started = _start(http, acme, customer, name="CRM of customer 0")
    assert started["state"].startswith(acme.org_id + ".")
    query = _query(started["authorize_url"])
    assert started["authorize_url"].startswith(provider.authorize_url + "?")
    assert (query["client_id"], query["state"], query["code_challenge_method"]) == (CLIENT_ID, started["state"], "S256")
    assert query["redirect_uri"].endswith("/v1/oauth/callback")
    assert query["scope"] == "contacts.read offline_access"
    pending = http.get(f"/v1/connections/{started['connection_id']}", headers=acme.headers(customer)).json()
    assert (pending["status"], pending["has_credentials"], pending["auth_type"]) == ("pending", False, "oauth2")

    callback = http.get(_approve(started["authorize_url"]))
    assert callback.status_code == 200, callback.text
    assert callback.json() == {"connection_id": started["connection_id"], "status": "connected"}
    connection = http.get(f"/v1/connections/{started['connection_id']}", headers=acme.headers(customer)).json()
    assert (connection["status"], connection["has_credentials"], connection["name"]) == ("connected", True, "CRM of customer 0")
    expires = datetime.fromisoformat(connection["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)

    issued = _tokens(provider)
    with psycopg.connect(migrated_database_url) as owner:
        ciphertext = bytes(owner.execute("SELECT credentials FROM connections WHERE id = %s", (connection["id"],)).fetchone()[0])
        audit = owner.execute(
            "SELECT actor_type, actor_id, outcome, customer_id FROM audit_log WHERE org_id = %s AND action = 'connection.oauth_callback'",
            (acme.org_id,),
        ).fetchall()
    for secret in (issued.access_token, issued.refresh_token, CLIENT_SECRET):
        assert secret.encode() not in ciphertext
    assert ("system", "oauth_callback", "success", customer) in audit

    tested = http.post(f"/v1/connections/{connection['id']}/test", headers=acme.headers(customer)).json()
    assert (tested["ok"], tested["status"], tested["action"]) == (True, 200, "me")


def test_the_callback_sends_the_browser_on_to_the_return_url(http: httpx.Client, acme: Tenant) -> None:
    started = _start(http, acme, acme.customers[1], redirect_uri=RETURN_TO)
    response = http.get(_approve(started["authorize_url"]), follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("https://app.example.com/integrations/done?")
    assert _query(location) == {"tab": "crm", "connection_id": started["connection_id"], "status": "connected"}


def test_a_state_is_used_once_and_must_be_well_formed(http: httpx.Client, acme: Tenant) -> None:
    started = _start(http, acme, acme.customers[0])
    callback = _approve(started["authorize_url"])
    assert http.get(callback).status_code == 200
    replay = http.get(callback)
    assert (replay.status_code, replay.json()["code"]) == (400, "oauth_state_invalid")
    assert "already used" in replay.json()["detail"]
    random_part = started["state"].split(".", 1)[1]
    for state in ["", "nonsense", f"{acme.org_id}.short", f"org_zz.{random_part}", f"{acme.org_id}.{'A' * 43}", f"{acme.org_id}.{random_part}!"]:
        response = http.get("/v1/oauth/callback", params={"state": state, "code": "x"})
        assert (response.status_code, response.json()["code"]) == (400, "oauth_state_invalid"), state
    assert http.get("/v1/oauth/callback", params={"code": "x"}).status_code == 400


def test_an_expired_state_is_refused_and_the_connection_disconnected(http: httpx.Client, acme: Tenant) -> None:
    customer = acme.customers[0]
    started = _start(http, acme, customer)
    callback = _approve(started["authorize_url"])
    clock.offset = store.OAUTH_STATE_TTL + timedelta(seconds=1)
    response = http.get(callback)
    assert (response.status_code, response.json()["code"]) == (400, "oauth_state_invalid")
    assert "expired" in response.json()["detail"]
    connection = http.get(f"/v1/connections/{started['connection_id']}", headers=acme.headers(customer)).json()
    assert connection["status"] == "disconnected"
    assert "expired" in connection["last_error"]


def test_access_denied_leaves_the_connection_disconnected(http: httpx.Client, acme: Tenant) -> None:
    customer = acme.customers[0]
    started = _start(http, acme, customer)
    response = http.get(
        "/v1/oauth/callback",
        params={"state": started["state"], "error": "access_denied", "error_description": "The user said no"},
    )
    assert response.status_code == 400
    problem = response.json()
    assert (problem["code"], problem["error"], problem["connection_id"]) == ("oauth_callback_failed", "access_denied", started["connection_id"])
    connection = http.get(f"/v1/connections/{started['connection_id']}", headers=acme.headers(customer)).json()
    assert connection["status"] == "disconnected"
    assert "access_denied" in connection["last_error"] and "The user said no" in connection["last_error"]
    assert http.get("/v1/oauth/callback", params={"state": started["state"], "code": "late"}).status_code == 400


def test_the_provider_checks_the_pkce_verifier(http: httpx.Client, acme: Tenant) -> None:
    customer = acme.customers[1]
    first = _start(http, acme, customer)
    second = _start(http, acme, customer)
    code = _query(_approve(first["authorize_url"]))["code"]
    # The second authorization's state carries another verifier than the code's challenge.
    response = http.get("/v1/oauth/callback", params={"state": second["state"], "code": code})
    assert response.status_code == 400, response.text
    assert (response.json()["code"], response.json()["error"]) == ("oauth_callback_failed", "invalid_grant")
    connection = http.get(f"/v1/connections/{second['connection_id']}", headers=acme.headers(customer)).json()
    assert connection["status"] == "disconnected"
    assert "invalid_grant" in connection["last_error"]


async def test_tokens_are_refreshed_before_they_expire(
    http: httpx.Client, acme: Tenant, provider: OAuthTestServer, db: store.Database, platform: tuple[str, Settings]
) -> None:
    customer = acme.customers[0]
    connection = _connect(http, acme, customer)
    first = _tokens(provider)
    expires = datetime.fromisoformat(connection["expires_at"])
    refreshes = provider.token_requests.count("refresh_token")

    encryptor = _encryptor(platform[1])
    async with _local_http() as client:
        values = await credentials.credentials_for_connection(
            db, acme.org_id, connection["id"], customer_id=customer, encryptor=encryptor, http=client, clock=clock
        )
    assert values["access_token"] == first.access_token  # an hour left: no refresh
    assert (values["client_id"], values["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)

    clock.offset = expires - datetime.now(UTC) - timedelta(seconds=30)
    tested = http.post(f"/v1/connections/{connection['id']}/test", headers=acme.headers(customer)).json()
    assert (tested["ok"], tested["status"]) == (True, 200)
    assert provider.token_requests.count("refresh_token") == refreshes + 1
    second = _tokens(provider)
    assert second.access_token != first.access_token
    assert provider.token(first.access_token).access_revoked  # the provider rotated it
    refreshed = datetime.fromisoformat(tested["connection"]["expires_at"])
    assert refreshed - expires > timedelta(minutes=59)

    # The run contract: the customer's connection for the connector, refreshed when it must be.
    clock.offset = refreshed - datetime.now(UTC) - timedelta(seconds=10)
    with db.tenant(acme.org_id, customer) as tx:
        chosen = credentials.connection_for_run(tx, acme.org_id, customer, CONNECTOR)
        assert credentials.connection_for_run(tx, acme.org_id, customer, "acme-crm-no-app") is None
    assert chosen == connection["id"]
    async with _local_http() as client:
        run = await credentials.credentials_for_connection(db, acme.org_id, chosen, customer_id=customer,
                                                           encryptor=encryptor, http=client, clock=clock)
    assert run["access_token"] == _tokens(provider).access_token != second.access_token
    assert provider.token_requests.count("refresh_token") == refreshes + 2
    with db.tenant(acme.org_id) as tx:
        stored = store.Connections(tx).credentials(acme.org_id, connection["id"], encryptor)
    assert stored["refresh_token"] == _tokens(provider).refresh_token and "client_secret" not in stored


def _blocked(owner_url: str, provider: OAuthTestServer, held: Any, refreshes: int, limit: float = 20.0) -> None:
    """Wait until the held refresh is in flight and the other caller is stuck: waiting on a row lock
    (what the store's lock does) or having sent a refresh of its own (what it would do without one).
    Gives up after ``limit`` seconds; the assertions that follow then decide."""
    deadline = time.monotonic() + limit
    with psycopg.connect(owner_url, autocommit=True) as owner:
        while time.monotonic() < deadline:
            waiting = owner.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()[0]
            if held.is_set() and (waiting or provider.token_requests.count("refresh_token") > refreshes + 1):
                return
            time.sleep(0.02)


async def test_two_workers_refreshing_at_once_spend_the_refresh_token_once(
    http: httpx.Client, globex: Tenant, provider: OAuthTestServer, db: store.Database, platform: tuple[str, Settings],
    migrated_database_url: str,
) -> None:
    customer = globex.customers[1]
    connection = _connect(http, globex, customer)
    clock.offset = datetime.fromisoformat(connection["expires_at"]) - datetime.now(UTC) - timedelta(seconds=30)
    refreshes = provider.token_requests.count("refresh_token")
    held, release = provider.hold_next_token_request()
    async with _local_http() as client:
        # Separate calls, as from two workers: nothing in memory is shared between them but the database.
        fetch = partial(
            credentials.credentials_for_connection, db, globex.org_id, connection["id"], customer_id=customer,
            encryptor=_encryptor(platform[1]), http=client, clock=clock,
        )
        racing = [asyncio.ensure_future(fetch()), asyncio.ensure_future(fetch())]
        try:
            await anyio.to_thread.run_sync(_blocked, migrated_database_url, provider, held, refreshes)
        finally:
            release.set()
        first, second = await asyncio.gather(*racing)
    assert provider.token_requests.count("refresh_token") == refreshes + 1
    assert first["access_token"] == second["access_token"] == _tokens(provider).access_token
    shown = http.get(f"/v1/connections/{connection['id']}", headers=globex.headers(customer)).json()
    assert (shown["status"], shown["last_error"]) == ("connected", None)


def test_a_token_revoked_early_is_renewed_after_the_401_and_kept(
    http: httpx.Client, acme: Tenant, provider: OAuthTestServer, db: store.Database, platform: tuple[str, Settings]
) -> None:
    customer = acme.customers[1]
    connection = _connect(http, acme, customer)
    first = _tokens(provider)
    provider.revoke_access_token(first.access_token)
    tested = http.post(f"/v1/connections/{connection['id']}/test", headers=acme.headers(customer)).json()
    assert (tested["ok"], tested["status"], tested["connection"]["status"]) == (True, 200, "connected")
    renewed = _tokens(provider)
    assert renewed.access_token != first.access_token
    encryptor = _encryptor(platform[1])
    with db.tenant(acme.org_id) as tx:
        stored = store.Connections(tx).credentials(acme.org_id, connection["id"], encryptor)
        assert (stored["access_token"], stored["refresh_token"]) == (renewed.access_token, renewed.refresh_token)
        # What the engine hands back after renewing (the credentials it was given merged with the
        # new tokens): only the token fields are stored, a None clears one.
        kept = store.Connections(tx).save_tokens(
            acme.org_id, connection["id"], {"access_token": "at-run", "client_secret": CLIENT_SECRET, "scope": None}, encryptor
        )
        assert kept["status"] == "connected"
        stored = store.Connections(tx).credentials(acme.org_id, connection["id"], encryptor)
        assert stored["access_token"] == "at-run" and "client_secret" not in stored and "scope" not in stored
        tx.rollback()  # the connection keeps its real tokens
    with db.tenant(acme.org_id) as tx:
        gone = store.Connections(tx).disconnect(acme.org_id, _connect(http, acme, customer)["id"])
        with pytest.raises(store.Conflict):
            store.Connections(tx).save_tokens(acme.org_id, gone["id"], {"access_token": "late"}, encryptor)
        assert store.Connections(tx).credentials(acme.org_id, gone["id"], encryptor) == {}


def test_a_run_keeps_the_tokens_the_engine_renewed(
    http: httpx.Client, globex: Tenant, provider: OAuthTestServer, db: store.Database, platform: tuple[str, Settings]
) -> None:
    """The provider refuses the stored access token (401) during a run: the engine refreshes, which
    rotates the refresh token, and the run's credential provider stores the new tokens at once, so
    the next refresh works instead of getting invalid_grant."""
    customer = globex.customers[0]
    workflow = {"id": "whoami", "name": "Who am I", "steps": [{"id": "me", "action": f"{CONNECTOR}.me"}],
                "output": {"me": "{{ steps.me }}"}}
    assert http.post("/v1/workflows", headers=globex.headers(), json={"spec": workflow}).status_code == 201
    connection = _connect(http, globex, customer)
    first = _tokens(provider)
    provider.revoke_access_token(first.access_token)
    refreshes = provider.token_requests.count("refresh_token")

    ran = http.post("/v1/workflows/whoami/runs", headers=globex.headers(customer), json={"draft": True, "dry_run": True, "input": {}})
    assert ran.status_code == 201, ran.text
    assert ran.json()["status"] == "completed", ran.json()["error"]
    assert provider.token_requests.count("refresh_token") == refreshes + 1
    renewed = _tokens(provider)
    assert provider.token(first.access_token) is not None and renewed.refresh_token != first.refresh_token
    with db.tenant(globex.org_id) as tx:
        stored = store.Connections(tx).credentials(globex.org_id, connection["id"], _encryptor(platform[1]))
    assert (stored["access_token"], stored["refresh_token"]) == (renewed.access_token, renewed.refresh_token)
    assert set(stored) <= set(store.OAUTH_TOKEN_FIELDS)

    # The next refresh spends the refresh token the run stored; the one before it is revoked.
    clock.offset = datetime.fromtimestamp(stored["expires_at"], UTC) - datetime.now(UTC) - timedelta(seconds=30)
    tested = http.post(f"/v1/connections/{connection['id']}/test", headers=globex.headers(customer)).json()
    assert (tested["ok"], tested["connection"]["status"]) == (True, "connected"), tested["detail"]
    assert provider.token_requests.count("refresh_token") == refreshes + 2


async def test_invalid_grant_marks_the_connection_needs_reconnect(
    http: httpx.Client, acme: Tenant, provider: OAuthTestServer, db: store.Database, platform: tuple[str, Settings]
) -> None:
    customer = acme.customers[1]
    connection = _connect(http, acme, customer)
    provider.revoke_refresh_token(_tokens(provider).refresh_token)
    clock.offset = datetime.fromisoformat(connection["expires_at"]) - datetime.now(UTC) - timedelta(seconds=30)
    tested = http.post(f"/v1/connections/{connection['id']}/test", headers=acme.headers(customer)).json()
    assert (tested["ok"], tested["status"]) == (False, None)
    assert tested["connection"]["status"] == "needs_reconnect"
    shown = http.get(f"/v1/connections/{connection['id']}", headers=acme.headers(customer)).json()
    assert shown["status"] == "needs_reconnect"
    assert "invalid_grant" in shown["last_error"]
    listed = http.get("/v1/connections", headers=acme.headers(), params={"status": "needs_reconnect"}).json()["items"]
    assert connection["id"] in [c["id"] for c in listed]

    with pytest.raises(store.ConnectionNeedsReconnect) as raised:
        await credentials.credentials_for_connection(
            db, acme.org_id, connection["id"], encryptor=_encryptor(platform[1]), http=None, clock=clock
        )
    assert (raised.value.connection_id, raised.value.http_status) == (connection["id"], 409)


def test_starting_needs_an_oauth_app_an_oauth_connector_and_a_customer(http: httpx.Client, acme: Tenant, db: store.Database) -> None:
    headers = acme.headers(acme.customers[0])
    missing = http.post("/v1/connections/oauth/start", headers=headers, json={"connector": "acme-crm-no-app"})
    assert (missing.status_code, missing.json()["code"]) == (422, "oauth_app_missing")
    assert "no OAuth app configured for connector acme-crm-no-app" in missing.json()["detail"]
    no_customer = http.post("/v1/connections/oauth/start", headers=acme.headers(), json={"connector": CONNECTOR})
    assert (no_customer.status_code, no_customer.json()["header"]) == (400, "x-fastn-account-tenant-id")
    bad_return = http.post("/v1/connections/oauth/start", headers=headers, json={"connector": CONNECTOR, "redirect_uri": "javascript:alert(1)"})
    assert bad_return.status_code == 422 and bad_return.json()["errors"][0]["pointer"] == "/body/redirect_uri"
    assert http.post("/v1/connections/oauth/start", headers=headers, json={"connector": "nope"}).status_code == 404
    keyed = http.post("/v1/connections", headers=headers, json={"connector": CONNECTOR, "auth": {"type": "api_key", "api_key": "k" * 20}})
    assert (keyed.status_code, keyed.json()["pointer"]) == (422, "/auth/type")
    assert "/v1/connections/oauth/start" in keyed.json()["detail"]
    spec = {"id": "plain-key", "base_url": "https://api.example.com", "auth": {"type": "api_key", "keys": [{"credential": "api_key", "in": "header", "name": "X-Key"}]}}
    assert http.post("/v1/connectors", headers=acme.headers(), json={"spec": spec}).status_code == 201
    wrong = http.post("/v1/connections/oauth/start", headers=headers, json={"connector": "plain-key"})
    assert (wrong.status_code, wrong.json()["pointer"]) == (422, "/connector")


def test_another_organization_cannot_see_or_complete_the_flow(http: httpx.Client, acme: Tenant, globex: Tenant) -> None:
    started = _start(http, acme, acme.customers[0])
    assert http.get(f"/v1/connections/{started['connection_id']}", headers=globex.headers()).status_code == 404
    assert http.delete(f"/v1/connections/{started['connection_id']}", headers=globex.headers()).status_code == 404
    # The state's organization part decides the tenant: moved to another organization it is unknown.
    forged = globex.org_id + "." + started["state"].split(".", 1)[1]
    response = http.get("/v1/oauth/callback", params={"state": forged, "code": "x"})
    assert (response.status_code, response.json()["code"]) == (400, "oauth_state_invalid")
    assert http.get(_approve(started["authorize_url"])).status_code == 200  # the real state still works


def test_disconnecting_a_pending_connection_voids_its_state(http: httpx.Client, acme: Tenant) -> None:
    customer = acme.customers[0]
    started = _start(http, acme, customer)
    callback = _approve(started["authorize_url"])
    assert http.delete(f"/v1/connections/{started['connection_id']}", headers=acme.headers(customer)).status_code == 200
    assert http.get(callback).status_code == 400


def test_no_token_or_client_secret_in_any_response(provider: OAuthTestServer, acme: Tenant) -> None:
    everything = "\n".join(seen)
    assert seen
    for token in provider.tokens:
        assert token.access_token not in everything
        assert token.refresh_token not in everything
    assert CLIENT_SECRET not in everything

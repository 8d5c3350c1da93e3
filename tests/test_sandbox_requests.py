"""Routing, request checking, resource rules and admin routes of sandbox apps, over real HTTP."""

from __future__ import annotations

import socket

import httpx
import pytest
from support.sandbox import assert_matches_document, load_spec, running_sandbox, sandbox_url

import engine.sandbox
from engine.errors import SandboxStartError
from engine.sandbox import Sandbox, SandboxServer

CIN7 = {"api-auth-accountid": "acct", "api-auth-applicationkey": "key"}
BEARER = {"Authorization": "Bearer t"}


def test_public_surface() -> None:
    assert sorted(engine.sandbox.__all__) == sorted([
        "Binding", "IncomingRequest", "ListShape", "Reply", "Resource", "Role", "Sandbox", "SandboxServer", "StepClock",
        "create_sandbox_app", "merge_patch", "serve_sandbox",
    ])


def test_bad_requests_get_clear_errors() -> None:
    with sandbox_url("cin7-core-v2-subset.yaml") as base:
        client = httpx.Client(base_url=base, headers=CIN7)
        missing = client.post("/customer", json={"Name": "No currency"})
        assert missing.status_code == 422
        error = missing.json()["error"]
        assert error["code"] == "request_invalid"
        assert error["problems"] == [{"in": "body", "reason": "'Currency' is a required property", "pointer": "/Currency"}]
        nested = client.post("/customer", json={"Name": "A", "Currency": "USD", "Contacts": [{"Email": 7}]})
        assert nested.status_code == 422 and nested.json()["error"]["problems"][0]["pointer"] == "/Contacts/0/Email"

        malformed = client.post("/customer", content=b'{"Name": "A",', headers={"Content-Type": "application/json"})
        assert malformed.status_code == 400
        assert malformed.json()["error"]["code"] == "malformed_request" and "line 1" in malformed.json()["error"]["message"]
        assert client.post("/customer").status_code == 422  # the body is required

        assert client.get("/nothing-here").status_code == 404
        assert httpx.get(base.rsplit("/ExternalApi", 1)[0] + "/customer", headers=CIN7).status_code == 404, \
            "the sandbox serves under the server URL's path only"
        wrong_method = client.delete("/customer")
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET, POST, PUT"

        unauthorised = httpx.post(base + "/customer", json={"Name": "A", "Currency": "USD"},
                                  headers={"api-auth-accountid": "only one of two"})
        assert unauthorised.status_code == 401
        assert "api-auth-applicationkey" in unauthorised.json()["error"]["problems"][0]["reason"]

        bad_page = client.get("/customer", params={"Page": "two", "Limit": 5000})
        assert bad_page.status_code == 422
        assert {p["name"] for p in bad_page.json()["error"]["problems"]} == {"Page", "Limit"}

        read_only_ignored = client.post("/customer", json={"Name": "A", "Currency": "USD", "ID": "11111111-1111-4111-8111-111111111111",
                                                           "LastModifiedOn": "1999-01-01T00:00:00Z"})
        record = read_only_ignored.json()["CustomerList"][0]
        assert read_only_ignored.status_code == 200
        assert record["ID"] != "11111111-1111-4111-8111-111111111111" and record["LastModifiedOn"] != "1999-01-01T00:00:00Z"


def test_required_header_and_query_parameters() -> None:
    with sandbox_url("postmark-account-v0.9-swagger.yaml") as base:
        missing = httpx.get(base + "/servers")
        assert missing.status_code == 422
        assert {(p["in"], p["name"]) for p in missing.json()["error"]["problems"]} == {
            ("header", "X-Postmark-Account-Token"), ("query", "count"), ("query", "offset")}
        headers = {"X-Postmark-Account-Token": "t"}
        for name in ("alpha", "beta", "gamma"):
            assert httpx.post(base + "/servers", json={"Name": name}, headers=headers).status_code == 200
        page = httpx.get(base + "/servers", params={"count": 2, "offset": 1}, headers=headers).json()
        assert [s["Name"] for s in page["Servers"]] == ["beta", "gamma"] and page["TotalCount"] == 3
        by_id = httpx.get(base + f"/servers/{page['Servers'][0]['ID']}", headers=headers)
        assert by_id.status_code == 200 and by_id.json()["Name"] == "beta"
        assert httpx.get(base + "/servers/not-a-number", headers=headers).status_code == 422


def test_keys_other_than_ids_sub_path_lists_and_conflicts() -> None:
    document = load_spec("swagger-petstore-v3.yaml")
    with sandbox_url(document) as base:
        assert base.endswith("/v3")
        user = {"username": "ada", "firstName": "Ada", "email": "ada@example.com"}
        created = httpx.post(base + "/user", json=user)
        assert created.status_code == 200 and created.json()["username"] == "ada"
        assert httpx.post(base + "/user", json=user).status_code == 409
        fetched = httpx.get(base + "/user/ada")
        assert fetched.status_code == 200 and fetched.json()["email"] == "ada@example.com"
        assert isinstance(fetched.json()["id"], int)
        replaced = httpx.put(base + "/user/ada", json={"username": "ada", "firstName": "Augusta"})
        assert replaced.status_code == 200
        assert httpx.get(base + "/user/ada").json().get("email") is None, "PUT replaces"
        assert httpx.delete(base + "/user/ada").status_code == 204, "no 2xx documented: 204 for DELETE"
        assert httpx.get(base + "/user/ada").status_code == 404

        auth = {"Authorization": "Bearer t"}
        # POST /pet asks for OAuth only; the API key other operations ask for is accepted too (one connector, one auth)
        assert httpx.post(base + "/pet", json={"name": "Nobody", "photoUrls": []}).status_code == 401
        by_key = httpx.post(base + "/pet", json={"name": "Keyed", "photoUrls": []}, headers={"api_key": "k"})
        assert by_key.status_code == 200
        assert httpx.delete(base + f"/pet/{by_key.json()['id']}", headers=auth).status_code == 204
        for name, status in (("Rex", "available"), ("Tom", "sold"), ("Kit", "available")):
            pet = {"name": name, "photoUrls": [], "status": status}
            assert httpx.post(base + "/pet", json=pet, headers=auth).status_code == 200
        available = httpx.get(base + "/pet/findByStatus", params={"status": "available"}, headers=auth)
        assert available.status_code == 200
        assert_matches_document(document, "GET", "/pet/findByStatus", 200, available.json())
        assert [p["name"] for p in available.json()] == ["Rex", "Kit"]
        assert httpx.get(base + "/pet/findByStatus", params={"status": "lost"}, headers=auth).status_code == 422
        assert httpx.get(base + "/pet/abc", headers={"api_key": "k"}).status_code == 422
        rex = available.json()[0]
        # form-style update in the query string
        renamed = httpx.post(base + f"/pet/{rex['id']}", params={"name": "Rexy"}, headers=auth)
        assert renamed.status_code == 200
        assert httpx.get(base + f"/pet/{rex['id']}", headers={"api_key": "k"}).json()["name"] == "Rexy"
        updated = httpx.put(base + "/pet", json={"id": rex["id"], "name": "Rex II", "photoUrls": []}, headers=auth)
        assert updated.status_code == 200 and updated.json()["status"] == "available"
        assert httpx.put(base + "/pet", json={"id": 999, "name": "Nope", "photoUrls": []}, headers=auth).status_code == 404


def test_nested_collections_are_scoped_by_their_path_parameters() -> None:
    with sandbox_url("google-tasks-v1.yaml") as base:
        client = httpx.Client(base_url=base, headers=BEARER)
        tasklist = client.post("/tasks/v1/users/@me/lists", json={"title": "Home"}).json()
        other = client.post("/tasks/v1/users/@me/lists", json={"title": "Work"}).json()
        assert tasklist["id"] != other["id"]
        task = client.post(f"/tasks/v1/lists/{tasklist['id']}/tasks", json={"title": "Milk"})
        assert task.status_code == 200
        assert [t["title"] for t in client.get(f"/tasks/v1/lists/{tasklist['id']}/tasks").json()["items"]] == ["Milk"]
        assert client.get(f"/tasks/v1/lists/{other['id']}/tasks").json().get("items", []) == []
        state = client.get("/__sandbox/state").json()["collections"]
        assert [t["title"] for t in state[f"/tasks/v1/lists/{tasklist['id']}/tasks"]] == ["Milk"]
        moved = client.patch(f"/tasks/v1/lists/{tasklist['id']}/tasks/{task.json()['id']}", json={"status": "completed"})
        assert moved.status_code == 200 and moved.json()["title"] == "Milk" and moved.json()["status"] == "completed"


def test_virtual_resources_singletons_and_parents() -> None:
    with running_sandbox("twilio-bulkexports-v1.yaml") as server:
        auth = ("AC123", "secret")
        day = httpx.get(server.base_url + "/v1/Exports/Messages/Days/2024-01-02", auth=auth)
        assert day.status_code == 307 and "location" not in day.headers, "only 307 is documented"
        assert day.json()["day"] == "2024-01-02" and day.json()["resource_type"] == "Messages"
        days = httpx.get(server.base_url + "/v1/Exports/Messages/Days", auth=auth)
        assert days.status_code == 200 and len(days.json()["days"]) == 2
        assert {d["resource_type"] for d in days.json()["days"]} == {"Messages"}, "path parameters fill record fields"
        assert httpx.get(server.base_url + "/v1/Exports/Messages/Days/2024-01-02", auth=auth).json() == day.json()
        assert httpx.get(server.base_url + "/v1/Exports/Messages").status_code == 401
        job = httpx.get(server.base_url + "/v1/Exports/Jobs/JS0123456789abcdef0123456789abcdef", auth=auth)
        assert job.status_code == 200
        assert httpx.delete(server.base_url + "/v1/Exports/Jobs/JS0123456789abcdef0123456789abcdef", auth=auth).status_code == 204
        assert httpx.get(server.base_url + "/v1/Exports/Jobs/JS0123456789abcdef0123456789abcdef", auth=auth).status_code == 404
        created = httpx.post(server.base_url + "/v1/Exports/Messages/Jobs", auth=auth,
                             data={"StartDay": "2024-01-01", "EndDay": "2024-01-02", "FriendlyName": "jan"})
        assert created.status_code == 201 and created.json()["friendly_name"] == "jan"
        assert created.json()["job_sid"].startswith("JS")
        config = httpx.post(server.base_url + "/v1/Exports/Messages/Configuration", auth=auth, data={"Enabled": "true"})
        assert config.status_code == 200 and config.json()["enabled"] is True

    with sandbox_url("hubspot-webhooks-v3.json") as base:
        settings = base + "/webhooks/v3/42/settings"
        hapikey = {"hapikey": "k"}
        first = httpx.get(settings, params=hapikey)
        assert first.status_code == 200
        put = httpx.put(settings, params=hapikey, json={"targetUrl": "https://example.com/hook", "throttling": {"maxConcurrentRequests": 5}})
        assert put.status_code == 200 and put.json()["targetUrl"] == "https://example.com/hook"
        assert httpx.get(settings, params=hapikey).json()["targetUrl"] == "https://example.com/hook"
        assert httpx.delete(settings, params=hapikey).status_code == 204
        assert httpx.get(settings, params=hapikey).status_code == 404

    with sandbox_url("resend-api.yaml") as base:
        unknown = base + "/emails/4ef9a417-02e9-4d39-ad75-9611e0fcc33c/attachments"
        assert httpx.get(unknown, headers=BEARER).status_code == 404, "a nested list needs its stored parent"


def test_ids_and_samples_are_deterministic() -> None:
    document = load_spec("hubspot-crm-contacts-v3.json")
    answers = []
    for _ in range(2):
        with sandbox_url(document) as base:
            client = httpx.Client(base_url=base, headers=BEARER)
            body = {"properties": {"email": "x@example.com"}}
            answers.append([client.post("/crm/v3/objects/contacts", json=body).json() for _ in range(2)]
                           + [client.post("/crm/v3/objects/contacts/search", json={"filterGroups": []}).json()])
    assert answers[0] == answers[1]
    assert answers[0][0]["id"] != answers[0][1]["id"]


def test_admin_routes() -> None:
    with running_sandbox("oai-petstore-v3.0.yaml") as server:
        described = httpx.get(server.admin_url + "/describe").json()
        assert described["base_path"] == "/v1"
        roles = {(o["method"], o["path"]): o["role"] for o in described["operations"]}
        assert roles == {("GET", "/pets"): "list", ("POST", "/pets"): "create", ("GET", "/pets/{petId}"): "get"}
        seeded = httpx.post(server.admin_url + "/seed", json={"pets": [{"id": 7, "name": "Seven"}]})
        assert seeded.status_code == 200
        assert httpx.get(server.base_url + "/pets").json() == [{"id": 7, "name": "Seven"}]
        assert httpx.get(server.base_url + "/pets/7").json() == [{"id": 7, "name": "Seven"}]
        assert httpx.get(server.base_url + "/pets/8").status_code == 404
        assert httpx.post(server.admin_url + "/seed", json={"cats": []}).status_code == 422
        assert httpx.post(server.admin_url + "/seed", content=b"{").status_code == 400
        for not_a_seed in ([1], "x"):  # refused, and the records stay
            assert httpx.post(server.admin_url + "/seed", json=not_a_seed).status_code == 422
        assert httpx.get(server.base_url + "/pets").json() == [{"id": 7, "name": "Seven"}]
        assert httpx.get(server.admin_url + "/nope").status_code == 404


def test_server_start_errors_are_typed() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        server = SandboxServer(Sandbox(load_spec("oai-petstore-v3.0.yaml")), port=busy.getsockname()[1])
        with pytest.raises(SandboxStartError) as caught:
            server.start()
        assert str(busy.getsockname()[1]) in str(caught.value)
    finally:
        busy.close()

"""Actions over real HTTP: request building, auth placement, errors, and every pagination style."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from engine.actions import ActionExecutor, InputValidators, build_request
from engine.auth import Authenticator, OAuth2Client, StaticCredentials
from engine.errors import ActionFailed, ActionInputInvalid, ResponseInvalid, UnknownAction
from engine.http import EgressPolicy, HttpClient
from engine.specs import load_connector
from support.servers import serve_app

RECORDS = [{"id": i, "name": f"r{i}"} for i in range(1, 8)]
seen: list[dict] = []


async def echo(request: Request):
    body = await request.body()
    seen.append({"path": request.url.path, "query": dict(request.query_params), "raw_query": request.url.query, "headers": dict(request.headers), "body": body.decode()})
    return JSONResponse({"path": request.url.path, "query": dict(request.query_params), "body": body.decode(),
                         "key": request.headers.get("x-key")})


async def by_offset(request: Request):
    offset, limit = int(request.query_params.get("offset", 0)), int(request.query_params.get("limit", 3))
    return JSONResponse({"data": RECORDS[offset:offset + limit]})


async def by_page(request: Request):
    page, size = int(request.query_params.get("page", 1)), int(request.query_params.get("per_page", 3))
    return JSONResponse({"rows": RECORDS[(page - 1) * size: page * size]})


async def by_cursor(request: Request):
    start = int(request.query_params.get("after") or 0)
    chunk = RECORDS[start:start + 3]
    nxt = start + 3 if start + 3 < len(RECORDS) else None
    return JSONResponse({"results": chunk, "paging": {"next": {"after": str(nxt)}} if nxt else {}})


async def by_body_cursor(request: Request):
    payload = await request.json()
    start = int(payload.get("cursor") or 0)
    chunk = RECORDS[start:start + 3]
    return JSONResponse({"items": chunk, "cursor": str(start + 3), "has_more": start + 3 < len(RECORDS)})


async def by_link(request: Request):
    page = int(request.query_params.get("p", 1))
    chunk = RECORDS[(page - 1) * 3: page * 3]
    headers = {}
    if page * 3 < len(RECORDS):
        headers["Link"] = f'<{request.url.path}?p={page + 1}&size=3>; rel="next"'
    return JSONResponse(chunk, headers=headers)


async def evil_link(request: Request):
    return JSONResponse([RECORDS[0]], headers={"Link": '<http://127.0.0.2:1/steal?p=2>; rel="next"'})


async def stuck_cursor(request: Request):
    return JSONResponse({"results": [RECORDS[0]], "paging": {"next": {"after": "same"}}})


async def capped(request: Request):
    # Asked for 3 a page, gives 2: a short page is not the last one.
    page = int(request.query_params.get("page", 1))
    return JSONResponse({"rows": RECORDS[(page - 1) * 2: page * 2]})


async def ignores_page(request: Request):
    return JSONResponse({"rows": RECORDS[:3]})


async def empty_cursor_page(request: Request):
    after = request.query_params.get("after")
    pages = {None: ([RECORDS[0]], "a"), "a": ([], "b"), "b": ([RECORDS[1]], None)}
    chunk, nxt = pages[after]
    return JSONResponse({"results": chunk, "paging": {"next": {"after": nxt}} if nxt else {}})


async def bad_link(request: Request):
    return JSONResponse([RECORDS[0]], headers={"Link": '<http://[oops>; rel="next"'})


async def missing(request: Request):
    return JSONResponse({"message": "no such thing"}, status_code=404)


async def not_json(request: Request):
    return PlainTextResponse("plain")


APP = Starlette(routes=[
    Route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT"]),
    Route("/offset", by_offset), Route("/page", by_page), Route("/cursor", by_cursor),
    Route("/bodycursor", by_body_cursor, methods=["POST"]), Route("/link", by_link), Route("/evil", evil_link),
    Route("/stuck", stuck_cursor), Route("/missing", missing), Route("/text", not_json),
    Route("/capped", capped), Route("/ignores", ignores_page), Route("/emptycursor", empty_cursor_page), Route("/badlink", bad_link),
])

CONNECTOR = {
    "id": "demo",
    "base_url": "https://api.demo.example/v1",
    "auth": {"type": "api_key", "keys": [{"credential": "key", "in": "header", "name": "X-Key"}]},
    "actions": {
        "echo": {
            "method": "POST", "path": "/echo/{name}",
            "input": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "limit": {"type": "integer"},
                                                                            "flag": {"type": "boolean"}, "tags": {"type": "array"}, "body": {}}},
            "path_params": {"name": "{{ input.name }}"},
            "query": {"limit": "{{ input.limit }}", "flag": "{{ input.flag }}", "tag": "{{ input.tags }}"},
            "headers": {"X-Trace": "t-{{ input.name }}"},
            "body": "{{ input.body }}",
        },
        "form": {"method": "POST", "path": "/echo/form", "body": {"a": "{{ input.a }}", "b": "x"}, "body_type": "form"},
        "multipart": {"method": "POST", "path": "/echo/upload", "body": {"file": "{{ input.csv }}", "n": 2}, "body_type": "multipart"},
        "bearer_only": {"method": "GET", "path": "/echo/b", "auth": {"type": "bearer", "credential": "pets_token"}},
        "offset": {"method": "GET", "path": "/offset", "pagination": {"style": "offset", "items": "data", "offset_param": "offset", "size_param": "limit", "size": 3}},
        "page": {"method": "GET", "path": "/page", "pagination": {"style": "page", "items": "rows", "page_param": "page", "size_param": "per_page", "size": 3}},
        "cursor": {"method": "GET", "path": "/cursor", "pagination": {"style": "cursor", "items": "results", "next": "paging.next.after", "cursor_param": "after"}},
        "body_cursor": {"method": "POST", "path": "/bodycursor", "body": {"limit": 3},
                        "pagination": {"style": "cursor", "items": "items", "next": "has_more ? cursor : undefined", "cursor_param": "cursor", "cursor_in": "body"}},
        "link": {"method": "GET", "path": "/link", "pagination": {"style": "link", "items": "$"}},
        "evil": {"method": "GET", "path": "/evil", "pagination": {"style": "link", "items": "$"}},
        "stuck": {"method": "GET", "path": "/stuck", "pagination": {"style": "cursor", "items": "results", "next": "paging.next.after", "cursor_param": "after"}},
        "missing": {"method": "GET", "path": "/missing"},
        "capped": {"method": "GET", "path": "/capped", "pagination": {"style": "page", "items": "rows", "page_param": "page", "size_param": "per_page", "size": 3}},
        "ignores": {"method": "GET", "path": "/ignores", "pagination": {"style": "page", "items": "rows", "page_param": "page"}},
        "empty_cursor": {"method": "GET", "path": "/emptycursor", "pagination": {"style": "cursor", "items": "results", "next": "paging.next.after", "cursor_param": "after"}},
        "bad_link": {"method": "GET", "path": "/badlink", "pagination": {"style": "link", "items": "$"}},
        "names": {"method": "GET", "path": "/cursor", "result": "body.results.name"},
        "text_items": {"method": "GET", "path": "/text", "pagination": {"style": "page", "items": "rows", "page_param": "page"}},
    },
}


@pytest.fixture(scope="module")
def base_url():
    with serve_app(APP) as url:
        yield url


@pytest.fixture
async def executor(base_url):
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    auth = Authenticator(StaticCredentials({"demo": {"key": "k-123"}}), OAuth2Client(http))
    yield ActionExecutor({"demo": load_connector(CONNECTOR)}, http=http, auth=auth, base_urls={"demo": base_url})
    await http.aclose()


def test_request_building_encodes_path_and_drops_empty_params():
    spec = load_connector(CONNECTOR)
    req = build_request(spec, "echo", {"name": "a b/c", "tags": ["x", "y"], "flag": False, "body": {"z": 1}})
    assert req.url == "https://api.demo.example/v1/echo/a%20b%2Fc"
    assert req.params == [("flag", "false"), ("tag", "x"), ("tag", "y")]  # limit absent: not sent
    assert req.headers == {"X-Trace": "t-a b/c"} and req.json == {"z": 1}
    assert build_request(spec, "echo", {"name": "n"}, base_url="http://127.0.0.1:9/v2").url == "http://127.0.0.1:9/v2/echo/n"


def test_bad_input_names_the_field():
    spec = load_connector(CONNECTOR)
    with pytest.raises(ActionInputInvalid) as info:
        build_request(spec, "echo", {"limit": "ten"})
    pointers = [p.pointer for p in info.value.problems]
    assert "/" in pointers and "/limit" in pointers and info.value.http_status == 422


def test_input_validators_compile_each_schema_once_and_still_refuse_bad_input():
    spec = load_connector(CONNECTOR)
    validators = InputValidators()
    for value in ({"name": "a"}, {"name": "b", "limit": 3}):
        build_request(spec, "echo", value, validators=validators)
    echo = validators.get(spec.actions["echo"].input, spec.defs)
    assert len(validators) == 1 and echo is validators.get(spec.actions["echo"].input, spec.defs)
    with pytest.raises(ActionInputInvalid) as info:
        build_request(spec, "echo", {"name": "a", "limit": "ten"}, validators=validators)
    assert [p.pointer for p in info.value.problems] == ["/limit"] and len(validators) == 1
    small = InputValidators(limit=1)
    small.get({"type": "object"})
    other = {"type": "string"}
    assert small.get(other) is small.get(other) and len(small) == 1


async def test_call_applies_auth_and_returns_body(executor):
    response = await executor.call("demo", "echo", {"name": "x", "limit": 5, "body": {"hello": "world"}})
    assert response.status == 200
    assert response.result["key"] == "k-123" and response.result["query"] == {"limit": "5"}
    assert response.result["body"] == '{"hello":"world"}'
    assert response.attempts and response.attempts[0].status == 200


async def test_form_body(executor):
    response = await executor.call("demo", "form", {"a": "1 2"})
    assert response.result["body"] == "a=1+2&b=x"


async def test_multipart_body_is_reproducible(executor):
    first = await executor.call("demo", "multipart", {"csv": "email\\na@b.c"})
    body = first.result["body"]
    assert 'Content-Disposition: form-data; name="file"' in body and 'name="n"\r\n\r\n2' in body
    assert seen[-1]["headers"]["content-type"].startswith("multipart/form-data; boundary=switchboard-")
    assert (await executor.call("demo", "multipart", {"csv": "email\\na@b.c"})).result["body"] == body


async def test_an_action_with_its_own_auth_sends_that_scheme(base_url):
    spec = load_connector(CONNECTOR)
    assert spec.credential_fields() == ["key", "pets_token"]
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    auth = Authenticator(StaticCredentials({"demo": {"key": "k-1", "pets_token": "t-2"}}), OAuth2Client(http))
    try:
        executor = ActionExecutor({"demo": spec}, http=http, auth=auth, base_urls={"demo": base_url})
        await executor.call("demo", "bearer_only", {})
        assert seen[-1]["headers"]["authorization"] == "Bearer t-2" and "x-key" not in seen[-1]["headers"]
    finally:
        await http.aclose()


@pytest.mark.parametrize("action", ["offset", "page", "cursor", "body_cursor", "link"])
async def test_every_pagination_style_collects_all_records(executor, action):
    response = await executor.call("demo", action, {})
    assert [r["id"] for r in response.result["items"]] == [r["id"] for r in RECORDS]
    assert response.result["pages"] == response.pages >= 3


async def test_pagination_limits_and_guards(executor):
    assert (await executor.call("demo", "cursor", {}, max_pages=2)).result["pages"] == 2
    one_page = await executor.call("demo", "cursor", {}, paginate_pages=False)
    assert len(one_page.result["results"]) == 3
    # A cursor that repeats ends the walk; a next link to another host is not followed.
    assert (await executor.call("demo", "stuck", {})).result["pages"] == 2
    assert (await executor.call("demo", "evil", {})).result == {"items": [RECORDS[0]], "pages": 1}


async def test_pagination_against_apis_that_bend_the_rules(executor):
    capped = await executor.call("demo", "capped", {})
    assert [r["id"] for r in capped.result["items"]] == [r["id"] for r in RECORDS]
    assert capped.result.get("truncated") is None
    ignored = await executor.call("demo", "ignores", {})
    assert [r["id"] for r in ignored.result["items"]] == [1, 2, 3] and ignored.result["pages"] == 2
    assert [r["id"] for r in (await executor.call("demo", "empty_cursor", {})).result["items"]] == [1, 2]
    assert (await executor.call("demo", "bad_link", {})).result == {"items": [RECORDS[0]], "pages": 1}
    truncated = await executor.call("demo", "cursor", {}, max_pages=2)
    assert truncated.result["truncated"] is True and len(truncated.result["items"]) == 6


def test_connection_settings_cannot_change_the_host():
    spec = load_connector({"id": "z", "base_url": "https://{{ connection.subdomain }}.zendesk.com/api/v2",
                           "actions": {"a": {"method": "GET", "path": "/x"}}})
    assert build_request(spec, "a", {}, connection={"subdomain": "acme"}).url == "https://acme.zendesk.com/api/v2/x"
    for evil in ("attacker.example#", "attacker.example/x?", "user:pw@attacker.example/"):
        url = build_request(spec, "a", {}, connection={"subdomain": evil}).url
        assert url.split("/")[2].endswith(".zendesk.com"), url


def test_dot_segments_in_path_parameters_are_refused():
    spec = load_connector(CONNECTOR)
    for value in (".", ".."):
        with pytest.raises(ActionInputInvalid, match="cannot be"):
            build_request(spec, "echo", {"name": value})
    assert build_request(spec, "echo", {"name": "..a"}).url.endswith("/echo/..a")


async def test_result_expression(executor):
    assert (await executor.call("demo", "names", {})).result == ["r1", "r2", "r3"]


async def test_errors_are_typed(executor):
    with pytest.raises(ActionFailed) as info:
        await executor.call("demo", "missing", {})
    assert info.value.status == 404 and "no such thing" in str(info.value) and "k-123" not in str(info.value)
    assert (await executor.call("demo", "missing", {}, raise_for_status=False)).status == 404
    with pytest.raises(UnknownAction, match="known: bad_link, bearer_only"):
        await executor.call("demo", "nope", {})
    with pytest.raises(UnknownAction, match="unknown connector"):
        await executor.call("other", "x", {})
    with pytest.raises(ResponseInvalid, match="not a list"):
        await executor.call("demo", "text_items", {})


async def test_invoke_writes_traces_without_secrets(base_url):
    from engine.workflow import ActionCall, TraceSink

    spec = load_connector({**CONNECTOR, "auth": {"type": "api_key", "keys": [{"credential": "key", "in": "query", "name": "api_key"}]}})
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    auth = Authenticator(StaticCredentials({"demo": {"key": "sekrit-123"}}), OAuth2Client(http))
    try:
        for bodies in (False, True):
            executor = ActionExecutor({"demo": spec}, http=http, auth=auth, base_urls={"demo": base_url}, trace_bodies=bodies)
            sink = TraceSink()
            call = ActionCall(run_id="r1", seq="3", step_id="s", step_path="s", connector="demo", action="echo",
                              input={"name": "x", "body": {"password": "hunter2", "note": "hi"}}, paginate=True, max_pages=None, trace=sink)
            result = await executor.invoke(call)
            assert result["path"] == "/echo/x"
            assert result["query"]["api_key"] == "[redacted]"  # the app echoed the key: not passed on
            (trace,) = sink.list()
            assert (trace.run_id, trace.seq, trace.connector, trace.action, trace.method, trace.status) == ("r1", "3", "demo", "echo", "POST", 200)
            assert trace.latency_ms > 0 and trace.request_bytes > 0 and trace.response_bytes > 0
            assert "sekrit-123" not in repr(trace) and "api_key=" in trace.url
            if bodies:
                assert trace.request_body == {"password": "[redacted]", "note": "hi"}
                assert trace.response_body["path"] == "/echo/x"
            else:
                assert trace.request_body is None and trace.response_body is None
            assert "hunter2" not in repr(trace.request_body)
    finally:
        await http.aclose()


async def test_rate_limits_are_per_connection(base_url):
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    try:
        for scope in ("cust_a", "cust_b"):
            auth = Authenticator(StaticCredentials({"demo": {"key": "k"}}), OAuth2Client(http))
            executor = ActionExecutor({"demo": load_connector(CONNECTOR)}, http=http, auth=auth, base_urls={"demo": base_url},
                                      connection_scope=scope)
            await executor.call("demo", "echo", {"name": scope})
        assert http.rate_limit_stats("demo:cust_a").acquired == 1
        assert http.rate_limit_stats("demo:cust_b").acquired == 1
    finally:
        await http.aclose()


async def test_a_declared_rate_limit_paces_the_connection_and_the_default_applies_without_one(base_url):
    from engine.http import DEFAULT_RATE_LIMIT

    declared = load_connector({**CONNECTOR, "rate_limit": {"requests": 100, "per_seconds": 10, "burst": 5, "concurrency": 3}})
    undeclared = load_connector({**CONNECTOR, "id": "plain"})
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    try:
        auth = Authenticator(StaticCredentials({"demo": {"key": "k"}, "plain": {"key": "k"}}), OAuth2Client(http))
        executor = ActionExecutor({"demo": declared, "plain": undeclared}, http=http, auth=auth,
                                  base_urls={"demo": base_url, "plain": base_url}, connection_scope="cust_a")
        await executor.call("demo", "echo", {"name": "x"})
        await executor.call("plain", "echo", {"name": "x"})
        assert http.rate_limit_stats("demo:cust_a").rate == 10.0  # 100 per 10 seconds
        assert http.rate_limit_stats("plain:cust_a").rate == DEFAULT_RATE_LIMIT.per_second
        assert DEFAULT_RATE_LIMIT.per_second != 10.0
    finally:
        await http.aclose()


def test_rate_limit_spec_refuses_bad_quotas():
    from engine.errors import SpecValidationError

    for bad in ({"requests": 0, "per_seconds": 10}, {"requests": 10, "per_seconds": 0}, {"requests": 10},
                {"requests": 10, "per_seconds": 1, "burst": 0}, {"requests": 10, "per_seconds": 1, "per_minute": 3}):
        with pytest.raises(SpecValidationError) as info:
            load_connector({**CONNECTOR, "rate_limit": bad})
        assert all(p.pointer.startswith("/rate_limit") for p in info.value.problems), info.value.problems


async def test_raw_request_escape_hatch(executor):
    from engine.actions import RAW_REQUEST

    response = await executor.call("demo", RAW_REQUEST, {"method": "PUT", "path": "/echo/any/where", "query": {"q": [1, 2]},
                                                         "headers": {"X-Extra": "1"}, "body": {"note": "{{ 1 + 1 }}"}})
    assert response.result["path"] == "/echo/any/where" and response.result["key"] == "k-123"  # the connector's auth
    assert seen[-1]["raw_query"] == "q=1&q=2" and seen[-1]["headers"]["x-extra"] == "1"
    assert response.result["body"] == '{"note":"{{ 1 + 1 }}"}'  # data is never evaluated as a template
    for bad, pointer in [({"method": "GET", "path": "//evil.example/x"}, "/path"), ({"method": "GET", "path": "/a/../../b"}, "/path"),
                         ({"method": "GET", "path": "https://evil.example/"}, "/path"), ({"method": "TRACE", "path": "/x"}, "/method"),
                         ({"method": "GET", "path": "/x", "extra": 1}, "/")]:
        with pytest.raises(ActionInputInvalid) as info:
            await executor.call("demo", RAW_REQUEST, bad)
        assert pointer in [p.pointer for p in info.value.problems]


async def test_echoed_credentials_never_reach_errors(base_url):
    spec = load_connector({**CONNECTOR, "auth": {"type": "bearer"}, "actions": {
        **CONNECTOR["actions"], "whoami": {"method": "GET", "path": "/echo/whoami"}, "denied": {"method": "GET", "path": "/missing"}}})
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    auth = Authenticator(StaticCredentials({"demo": {"token": "TOPSECRET-TOKEN"}}), OAuth2Client(http))
    try:
        executor = ActionExecutor({"demo": spec}, http=http, auth=auth, base_urls={"demo": base_url})
        await executor.call("demo", "whoami", {})
        assert seen[-1]["headers"]["authorization"] == "Bearer TOPSECRET-TOKEN"  # it was sent...
        echoed = await executor.call("demo", "echo", {"name": "n", "body": {"copy": "Bearer TOPSECRET-TOKEN"}})
        assert "TOPSECRET" not in json.dumps(echoed.result)  # ...and an echo of it is masked
        with pytest.raises(ActionFailed) as info:
            await executor.call("demo", "denied", {})
        assert "TOPSECRET" not in str(info.value)
    finally:
        await http.aclose()


def test_action_names_cannot_take_the_reserved_prefix():
    from engine.errors import SpecValidationError

    with pytest.raises(SpecValidationError, match="action names must match"):
        load_connector({**CONNECTOR, "actions": {"_request": {"method": "GET", "path": "/x"}}})


async def test_a_response_over_the_size_bound_is_a_typed_failure(base_url):
    from engine.errors import UpstreamUnavailable

    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)), max_response_bytes=20)
    try:
        with pytest.raises(UpstreamUnavailable, match="larger than 20 bytes"):
            await http.request("GET", base_url + "/offset")
        assert (await HttpClient(egress=EgressPolicy(allow=("127.0.0.1",))).request("GET", base_url + "/offset")).status_code == 200
    finally:
        await http.aclose()

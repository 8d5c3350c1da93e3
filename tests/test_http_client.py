"""HttpClient over real HTTP on 127.0.0.1: retries, Retry-After, rate limits, redirects,
the SSRF guard at connect time and on every hop, TLS by name to a vetted address."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import ipaddress
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import engine.http
from engine.errors import (
    EgressDenied,
    OutboundHttpError,
    OutboundRequestInvalid,
    TooManyRedirects,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from engine.http import (
    NO_RETRY,
    Attempt,
    EgressPolicy,
    HttpClient,
    RateLimit,
    RateStore,
    DEFAULT_STEP_RETRY_POLICY,
    RetryPolicy,
    step_retry_policy,
    Timeouts,
    parse_retry_after,
    redact_url,
)

# -- a scripted local server ---------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class Script:
    """Responses to hand out by path, then 200; every request is recorded."""

    replies: dict[str, list[tuple[int, dict[str, str], bytes]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def reply(self, path: str, *responses: tuple[int, dict[str, str], bytes]) -> None:
        self.replies.setdefault(path, []).extend(responses)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        script = self.server.script
        headers = {k.lower(): v for k, v in self.headers.items()}
        script.seen.append(Seen(self.command, self.path, headers, body, self.client_address[1]))
        path, _, query = self.path.partition("?")
        args = dict(urllib.parse.parse_qsl(query))
        status, out_headers, payload = 200, {"Content-Type": "text/plain"}, b"ok"
        if script.replies.get(path):
            status, out_headers, payload = script.replies[path].pop(0)
        elif path == "/redirect":
            status, out_headers, payload = int(args.get("status", "302")), {"Location": args["to"]}, b""
        elif path == "/loop":
            status, out_headers, payload = 302, {"Location": "/loop"}, b""
        elif path == "/hang":
            script.release.wait(5)
        elif path == "/echo":
            payload = json.dumps({"method": self.command, "headers": headers, "body": body.decode()}).encode()
            out_headers = {"Content-Type": "application/json"}
        if "Date" in out_headers:
            self.send_response_only(status)  # the script's Date, not the current one
        else:
            self.send_response(status)
        for name, value in out_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out hang up on purpose


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.script = Script()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.script.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def script(server: _Server) -> Iterator[Script]:
    server.script = Script()
    yield server.script
    server.script.release.set()


@pytest.fixture
def base(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def port(server: _Server) -> int:
    return server.server_address[1]


class Sleeps:
    """The injected sleep: records the delays and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


LOCAL = EgressPolicy(allow=("127.0.0.1",))


def make_client(**kwargs) -> HttpClient:
    kwargs.setdefault("egress", LOCAL)
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("random", lambda: 0.5)
    return HttpClient(**kwargs)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(sleeps: Sleeps) -> AsyncIterator[HttpClient]:
    http = make_client(sleep=sleeps)
    yield http
    await http.aclose()


# -- the public surface --------------------------------------------------------------------


def test_public_surface() -> None:
    assert sorted(engine.http.__all__) == sorted(
        [
            "DEFAULT_EGRESS_POLICY",
            "DEFAULT_RATE_LIMIT",
            "DEFAULT_RETRY_POLICY",
            "DEFAULT_SENSITIVE_HEADERS",
            "DEFAULT_STEP_RETRY_POLICY",
            "DEFAULT_TIMEOUTS",
            "IDEMPOTENT_METHODS",
            "NO_RETRY",
            "Attempt",
            "EgressGuard",
            "EgressPolicy",
            "GuardedTransport",
            "HttpClient",
            "Observer",
            "RateLimit",
            "RateLimiterStats",
            "RateStore",
            "Redactor",
            "Resolver",
            "RetryPolicy",
            "Timeouts",
            "classify_address",
            "parse_host",
            "parse_retry_after",
            "redact_url",
            "step_retry_policy",
            "system_resolver",
        ]
    )
    for name in engine.http.__all__:
        assert hasattr(engine.http, name), name


# -- basics and sharing --------------------------------------------------------------------


async def test_allow_listed_local_server_works_and_client_is_shared(client: HttpClient, script: Script, base: str) -> None:
    shared = client.shared_client()
    first = await client.request("GET", f"{base}/a")
    second = await client.request("POST", f"{base}/echo", json={"x": 1})
    assert first.status_code == 200 and first.text == "ok"
    assert second.json()["body"] == '{"x":1}' and second.json()["method"] == "POST"
    assert client.shared_client() is shared
    # one pooled connection served both requests
    assert script.seen[0].client_port == script.seen[1].client_port


async def test_observer_sees_each_attempt_with_sizes(client: HttpClient, script: Script, base: str) -> None:
    records: list[Attempt] = []
    response = await client.request("PUT", f"{base}/echo", content=b"12345", observer=records.append)
    assert response.status_code == 200
    [record] = records
    assert (record.method, record.status, record.error, record.attempt, record.hop) == ("PUT", 200, None, 1, 0)
    assert record.request_bytes == 5 and record.response_bytes == len(response.content)
    assert record.latency_ms >= 0 and record.url == f"{base}/echo"


async def test_async_observer_is_awaited(client: HttpClient, script: Script, base: str) -> None:
    records: list[Attempt] = []

    async def observe(attempt: Attempt) -> None:
        await asyncio.sleep(0)
        records.append(attempt)

    await client.request("GET", f"{base}/x", observer=observe)
    assert len(records) == 1


async def test_cookies_are_never_stored_between_requests(client: HttpClient, script: Script, base: str) -> None:
    script.reply("/login", (200, {"Set-Cookie": "session=tenant-a; Path=/"}, b"ok"))
    await client.request("GET", f"{base}/login")
    await client.request("GET", f"{base}/next")
    assert "cookie" not in script.seen[1].headers


async def test_query_secrets_are_redacted_for_observers(client: HttpClient, script: Script, base: str) -> None:
    records: list[Attempt] = []
    await client.request("GET", f"{base}/q", params={"hapikey": "s3cret", "limit": 10}, observer=records.append)
    assert script.seen[0].path == "/q?hapikey=s3cret&limit=10"  # sent as given
    assert "s3cret" not in records[0].url and "hapikey=REDACTED" in records[0].url and "limit=10" in records[0].url
    custom: list[Attempt] = []
    await client.request("GET", f"{base}/q", params={"x": "1"}, observer=custom.append, redact=lambda u: "shown")
    assert custom[0].url == "shown"


def test_redact_url() -> None:
    assert redact_url("https://u:p@api.example.com/x?api_key=1&page_token=abc&access_token=t&code=c&q=z") == (
        "https://api.example.com/x?api_key=REDACTED&page_token=abc&access_token=REDACTED&code=REDACTED&q=z"
    )
    assert redact_url("https://api.example.com/x?limit=5") == "https://api.example.com/x?limit=5"


# -- retries -------------------------------------------------------------------------------


async def test_503_twice_then_200_takes_three_attempts(client: HttpClient, sleeps: Sleeps, script: Script, base: str) -> None:
    script.reply("/flaky", (503, {}, b"busy"), (503, {}, b"busy"))
    records: list[Attempt] = []
    response = await client.request("GET", f"{base}/flaky", observer=records.append)
    assert response.status_code == 200
    assert [r.status for r in records] == [503, 503, 200]
    assert [r.attempt for r in records] == [1, 2, 3]
    assert script.paths() == ["/flaky"] * 3
    # full jitter with the injected random (0.5): 0.5 * base * 2**(n-1)
    assert sleeps.calls == [0.25, 0.5]


async def test_backoff_is_capped_and_deterministic(script: Script, base: str) -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=3.0, jitter=False)
    async with make_client(sleep=sleeps, retry=policy) as http:
        script.reply("/busy", *[(502, {}, b"")] * 5)
        response = await http.request("GET", f"{base}/busy")
    assert response.status_code == 502
    assert sleeps.calls == [1.0, 2.0, 3.0, 3.0]


async def test_each_attempt_records_the_delay_waited_before_it(client: HttpClient, sleeps: Sleeps, script: Script, base: str) -> None:
    script.reply("/flaky", (503, {}, b"busy"), (429, {"Retry-After": "7"}, b"slow down"))
    records: list[Attempt] = []
    await client.request("GET", f"{base}/flaky", observer=records.append)
    # the first attempt waited for nothing; then the jittered backoff (0.5 * 0.5), then Retry-After
    assert [r.delay for r in records] == [0.0, 0.25, 7.0] == [0.0, *sleeps.calls]


async def test_the_step_policy_waits_5_then_10_seconds_and_retries_server_errors(script: Script, base: str) -> None:
    sleeps = Sleeps()
    async with make_client(sleep=sleeps, retry=DEFAULT_STEP_RETRY_POLICY) as http:
        script.reply("/flaky", (500, {}, b"oops"), (502, {}, b"bad gateway"), (503, {}, b"busy"))
        records: list[Attempt] = []
        response = await http.request("GET", f"{base}/flaky", observer=records.append)
    assert response.status_code == 503 and [r.status for r in records] == [500, 502, 503]
    assert [r.delay for r in records] == [0.0, 5.0, 10.0] and sleeps.calls == [5.0, 10.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_the_step_policy_does_not_retry_a_4xx_a_repeat_cannot_fix(status: int, script: Script, base: str) -> None:
    sleeps = Sleeps()
    async with make_client(sleep=sleeps, retry=DEFAULT_STEP_RETRY_POLICY) as http:
        script.reply("/final", (status, {}, b"no"))
        records: list[Attempt] = []
        response = await http.request("POST", f"{base}/final", observer=records.append)
    assert response.status_code == status and len(records) == 1 and sleeps.calls == []


@pytest.mark.parametrize("status", [408, 425, 429])
async def test_the_step_policy_retries_408_425_429_even_for_a_post(status: int, script: Script, base: str) -> None:
    sleeps = Sleeps()
    async with make_client(sleep=sleeps, retry=step_retry_policy(max_attempts=2, delay=1.0)) as http:
        script.reply("/later", (status, {}, b"later"))
        records: list[Attempt] = []
        response = await http.request("POST", f"{base}/later", observer=records.append)
    assert response.status_code == 200 and [r.status for r in records] == [status, 200] and sleeps.calls == [1.0]


async def test_the_step_policy_retries_a_500_of_a_post_only_with_an_idempotency_key(script: Script, base: str) -> None:
    sleeps = Sleeps()
    async with make_client(sleep=sleeps, retry=DEFAULT_STEP_RETRY_POLICY) as http:
        script.reply("/create", (500, {}, b"oops"))
        plain = await http.request("POST", f"{base}/create")
        script.reply("/create", (500, {}, b"oops"))
        keyed = await http.request("POST", f"{base}/create", headers={"Idempotency-Key": "k1"})
    assert plain.status_code == 500 and keyed.status_code == 200 and sleeps.calls == [5.0]


def test_the_step_policy_caps_its_waits_and_its_retry_after() -> None:
    policy = step_retry_policy(max_attempts=6, delay=5.0, factor=3.0, max_delay=60.0)
    assert [policy.backoff(n, 0.9) for n in range(1, 6)] == [5.0, 15.0, 45.0, 60.0, 60.0]
    assert policy.max_retry_after == 60.0
    with pytest.raises(ValueError, match="factor"):
        RetryPolicy(factor=0.5)


async def test_429_retry_after_seconds_is_honoured(client: HttpClient, sleeps: Sleeps, script: Script, base: str) -> None:
    script.reply("/limited", (429, {"Retry-After": "2"}, b"slow down"))
    response = await client.request("GET", f"{base}/limited")
    assert response.status_code == 200
    assert sleeps.calls == [2.0]


async def test_retry_after_http_date_is_honoured(client: HttpClient, sleeps: Sleeps, script: Script, base: str) -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    later = now + datetime.timedelta(seconds=3)
    headers = {"Retry-After": email.utils.format_datetime(later, usegmt=True), "Date": email.utils.format_datetime(now, usegmt=True)}
    script.reply("/limited", (503, headers, b""))
    response = await client.request("GET", f"{base}/limited")
    assert response.status_code == 200
    assert sleeps.calls == [3.0]


async def test_retry_after_beyond_the_cap_returns_the_response(client: HttpClient, sleeps: Sleeps, script: Script, base: str) -> None:
    script.reply("/limited", (429, {"Retry-After": "3600"}, b"come back in an hour"))
    records: list[Attempt] = []
    response = await client.request("GET", f"{base}/limited", observer=records.append)
    assert response.status_code == 429 and response.text == "come back in an hour"
    assert sleeps.calls == [] and len(records) == 1


async def test_non_retryable_status_is_one_attempt(client: HttpClient, sleeps: Sleeps, script: Script, base: str) -> None:
    script.reply("/bad", (400, {}, b"bad input"))
    records: list[Attempt] = []
    response = await client.request("GET", f"{base}/bad", observer=records.append)
    assert response.status_code == 400 and response.text == "bad input"
    assert len(records) == 1 and sleeps.calls == []


async def test_exhausted_retries_return_the_last_response(client: HttpClient, sleeps: Sleeps, script: Script, base: str) -> None:
    script.reply("/down", (503, {}, b"1"), (503, {}, b"2"), (503, {}, b"3"), (504, {}, b"last"))
    records: list[Attempt] = []
    response = await client.request("GET", f"{base}/down", observer=records.append)
    assert response.status_code == 504 and response.text == "last"
    assert [r.status for r in records] == [503, 503, 503, 504]
    assert len(sleeps.calls) == 3


async def test_post_is_not_retried_on_502_but_is_on_503(client: HttpClient, script: Script, base: str) -> None:
    script.reply("/create", (502, {}, b"gateway"))
    response = await client.request("POST", f"{base}/create", json={"a": 1})
    assert response.status_code == 502 and len(script.seen) == 1
    script.reply("/create", (503, {}, b"busy"))
    response = await client.request("POST", f"{base}/create", json={"a": 1})
    assert response.status_code == 200 and len(script.seen) == 3


async def test_post_with_idempotency_key_is_retried_on_502(client: HttpClient, script: Script, base: str) -> None:
    script.reply("/create", (502, {}, b"gateway"))
    response = await client.request("POST", f"{base}/create", json={}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 200 and len(script.seen) == 2


async def test_no_retry_policy(client: HttpClient, script: Script, base: str) -> None:
    script.reply("/flaky", (503, {}, b""))
    response = await client.request("GET", f"{base}/flaky", retry=NO_RETRY)
    assert response.status_code == 503 and len(script.seen) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_connection_refused_is_upstream_unavailable_after_attempts(client: HttpClient, sleeps: Sleeps) -> None:
    url = f"http://127.0.0.1:{free_port()}/x?api_key=secret"
    records: list[Attempt] = []
    with pytest.raises(UpstreamUnavailable) as info:
        await client.request("POST", url, json={}, observer=records.append)  # connect errors: retried even for POST
    err = info.value
    assert not isinstance(err, UpstreamTimeout)
    assert err.attempts == 4 and err.method == "POST" and "connect" in err.reason
    assert "secret" not in str(err) and "api_key=REDACTED" in err.url
    assert err.code == "upstream_unavailable" and err.http_status == 502
    assert len(records) == 4 and all(r.status is None and r.error for r in records)
    assert len(sleeps.calls) == 3


async def test_read_timeout_is_upstream_timeout(script: Script, base: str) -> None:
    policy = RetryPolicy(max_attempts=2)
    async with make_client(retry=policy, timeouts=Timeouts(read=0.2)) as http:
        with pytest.raises(UpstreamTimeout) as info:
            await http.request("GET", f"{base}/hang")
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, UpstreamUnavailable)
        assert info.value.attempts == 2 and "read timeout" in info.value.reason
        assert info.value.http_status == 504
        # a POST that may have been received is not repeated
        with pytest.raises(UpstreamTimeout) as info:
            await http.request("POST", f"{base}/hang", json={})
        assert info.value.attempts == 1


async def test_total_timeout_bounds_one_attempt(script: Script, base: str) -> None:
    async with make_client(retry=NO_RETRY, timeouts=Timeouts(read=None, total=0.2)) as http:
        with pytest.raises(UpstreamTimeout) as info:
            await http.request("GET", f"{base}/hang")
    assert "total" in info.value.reason


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", date="Wed, 21 Oct 2015 07:28:00 GMT") == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0  # in the past
    for bad in (None, "", "-5", "soon", "1.5", "Wed, 99 Foo 2015"):
        assert parse_retry_after(bad) is None


# -- rate limits ---------------------------------------------------------------------------


async def test_rate_limit_holds_requests_beyond_the_burst(client: HttpClient, script: Script, base: str) -> None:
    # One request per 1000 s after a burst of 2: the third must wait, whatever the machine's speed.
    limit = RateLimit(per_second=0.001, burst=2)
    tasks = [asyncio.create_task(client.request("GET", f"{base}/r{i}", rate_key="slow", rate_limit=limit)) for i in range(3)]
    for _ in range(500):
        stats = client.rate_limit_stats("slow")
        if stats.acquired == 2 and stats.waiting == 1 and sum(t.done() for t in tasks) == 2:
            break
        await asyncio.sleep(0.01)
    stats = client.rate_limit_stats("slow")
    assert (stats.acquired, stats.waiting) == (2, 1)
    waiting = [t for t in tasks if not t.done()]
    assert len(waiting) == 1 and len(script.seen) == 2
    # another connection is not held back by this one's limit
    response = await client.request("GET", f"{base}/other", rate_key="other", rate_limit=limit)
    assert response.status_code == 200
    waiting[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    assert client.rate_limit_stats("slow").waiting == 0 and len(script.seen) == 3


async def test_rate_limit_records_the_waits(client: HttpClient, script: Script, base: str) -> None:
    # Three requests at once with room for one: two of them wait (about 0.1 s each).
    limit = RateLimit(per_second=10, burst=1)
    records: list[Attempt] = []
    await asyncio.gather(
        *(client.request("GET", f"{base}/x", rate_key="fast", rate_limit=limit, observer=records.append) for _ in range(3))
    )
    stats = client.rate_limit_stats("fast")
    assert (stats.acquired, stats.delayed, stats.waiting) == (3, 2, 0)
    waits = sorted(r.rate_wait_ms for r in records)
    assert waits[0] == 0 and waits[1] > 0 and waits[2] > 0
    assert stats.waited_seconds > 0
    assert client.rate_limit_stats("never-used").acquired == 0


class RateClock:
    """The rate limiters' clock and sleep: sleeping moves the clock, and every wait is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds


def test_a_documented_quota_becomes_a_rate_limit() -> None:
    assert RateLimit.of(100, 10) == RateLimit(per_second=10.0, burst=100)
    assert RateLimit.of(60, 60, burst=5, concurrency=2) == RateLimit(per_second=1.0, burst=5, concurrency=2)
    with pytest.raises(ValueError):
        RateLimit.of(0, 10)
    with pytest.raises(ValueError):
        RateLimit(concurrency=0)


async def test_declared_rate_spaces_requests_after_the_burst(script: Script, base: str) -> None:
    clock = RateClock()
    limit = RateLimit.of(10, 1, burst=2)  # 10 per second: one every 0.1 s after two at once
    async with make_client(rate_clock=clock, rate_sleep=clock.sleep) as http:
        for i in range(4):
            await http.request("GET", f"{base}/r{i}", rate_key="conn", rate_limit=limit)
        stats = http.rate_limit_stats("conn")
    # two at once, then one interval (0.1 s) apart
    assert clock.waits == [0.1, 0.1]
    assert (stats.acquired, stats.delayed, stats.rate) == (4, 2, 10.0)


async def test_429_with_retry_after_slows_the_next_calls(sleeps: Sleeps, script: Script, base: str) -> None:
    clock = RateClock()
    limit = RateLimit.of(10, 1)  # 10 per second, bursts of 10: nothing would wait without the 429
    script.reply("/limited", (429, {"Retry-After": "3"}, b"slow down"))
    async with make_client(sleep=sleeps, rate_clock=clock, rate_sleep=clock.sleep) as http:
        first = await http.request("GET", f"{base}/limited", rate_key="conn", rate_limit=limit)
        assert first.status_code == 200 and sleeps.calls == [3.0]  # the call itself was retried after 3 s
        stats = http.rate_limit_stats("conn")
        # the connection sends slower now: halved by the 429, a little given back by the retry's 200
        assert stats.throttled == 1 and stats.rate == 5.5
        records: list[Attempt] = []
        for i in range(3):
            await http.request("GET", f"{base}/next{i}", rate_key="conn", rate_limit=limit, observer=records.append)
    # The retry waited out Retry-After in the limiter too (the injected retry sleep does not move
    # this clock); then no burst: the next calls go one interval of the lowered rate apart.
    assert clock.waits[0] == 3.0
    assert all(w > 0 for w in clock.waits[1:]) and len(clock.waits) == 4
    assert all(r.rate_wait_ms > 0 for r in records)
    # another connection is not slowed by this one's 429
    async with make_client(rate_clock=clock, rate_sleep=clock.sleep) as http:
        await http.request("GET", f"{base}/other", rate_key="other", rate_limit=limit)
        assert http.rate_limit_stats("other").delayed == 0


class FakeRateStore:
    """A shared schedule as a list of calls; answers each reservation with ``waits`` in turn (None:
    the store is unavailable)."""

    def __init__(self, *waits: float | None) -> None:
        self.waits = list(waits)
        self.calls: list[tuple[str, str, float, float]] = []

    async def reserve(self, key: str, interval: float, tolerance: float) -> float | None:
        self.calls.append(("reserve", key, interval, tolerance))
        return self.waits.pop(0) if self.waits else 0.0

    async def hold(self, key: str, seconds: float, tolerance: float) -> None:
        self.calls.append(("hold", key, seconds, tolerance))


async def test_a_rate_store_gives_the_slots_and_is_told_of_a_429(script: Script, base: str) -> None:
    clock = RateClock()
    shared = FakeRateStore(0.0, 0.25)
    limit = RateLimit.of(10, 1, burst=3)  # 10/s: an interval of 0.1 s, a burst of 0.2 s' worth
    script.reply("/limited", (429, {"Retry-After": "4"}, b""))
    async with make_client(rate_clock=clock, rate_sleep=clock.sleep, retry=NO_RETRY) as http:
        await http.request("GET", f"{base}/a", rate_key="conn", rate_limit=limit, rate_store=shared)
        await http.request("GET", f"{base}/b", rate_key="conn", rate_limit=limit, rate_store=shared)
        await http.request("GET", f"{base}/limited", rate_key="conn", rate_limit=limit, rate_store=shared)
    assert isinstance(shared, RateStore)
    assert shared.calls[:2] == [("reserve", "conn", 0.1, pytest.approx(0.2))] * 2
    # the store's answer is the wait (not the local schedule, which would let a burst of 3 through)
    assert clock.waits == [0.25]
    # after the 429, the hold is shared: Retry-After, then no burst at the halved rate (5/s)
    assert shared.calls[3] == ("hold", "conn", 4.0, pytest.approx(0.4))


async def test_an_unavailable_rate_store_falls_back_to_the_local_schedule(script: Script, base: str) -> None:
    clock = RateClock()
    shared = FakeRateStore(None, None, None)
    limit = RateLimit.of(10, 1, burst=2)
    async with make_client(rate_clock=clock, rate_sleep=clock.sleep) as http:
        for i in range(3):
            await http.request("GET", f"{base}/r{i}", rate_key="conn", rate_limit=limit, rate_store=shared)
    assert clock.waits == [0.1] and len(shared.calls) == 3


async def test_wait_scale_shortens_the_waits_retries_cause_and_attempts_record_them_unscaled(
        sleeps: Sleeps, script: Script, base: str) -> None:
    clock = RateClock()
    limit = RateLimit.of(10, 1)
    script.reply("/limited", (429, {"Retry-After": "30"}, b""))
    records: list[Attempt] = []
    async with make_client(sleep=sleeps, rate_clock=clock, rate_sleep=clock.sleep, wait_scale=0.0) as http:
        await http.request("GET", f"{base}/limited", rate_key="conn", rate_limit=limit, observer=records.append)
    assert [r.delay for r in records] == [0.0, 30.0] and sleeps.calls == [0.0]
    # the 429's hold on the connection is scaled too: the retry was not held back 30 s
    assert all(w < 1 for w in clock.waits)


async def test_answers_after_a_429_give_the_rate_back(script: Script, base: str) -> None:
    clock = RateClock()
    limit = RateLimit.of(10, 1)
    script.reply("/limited", (429, {}, b""))
    async with make_client(rate_clock=clock, rate_sleep=clock.sleep, retry=NO_RETRY) as http:
        await http.request("GET", f"{base}/limited", rate_key="conn", rate_limit=limit)
        assert http.rate_limit_stats("conn").rate == 5.0
        for i in range(12):
            await http.request("GET", f"{base}/ok{i}", rate_key="conn", rate_limit=limit)
        assert http.rate_limit_stats("conn").rate == 10.0


async def test_concurrency_caps_requests_in_flight(script: Script, base: str) -> None:
    limit = RateLimit(per_second=1000.0, burst=1000, concurrency=1)
    async with make_client() as http:
        hung = asyncio.create_task(http.request("GET", f"{base}/hang", rate_key="one", rate_limit=limit))
        second = asyncio.create_task(http.request("GET", f"{base}/after", rate_key="one", rate_limit=limit))
        for _ in range(500):
            if len(script.seen) >= 1 and http.rate_limit_stats("one").acquired == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert script.paths() == ["/hang"]  # the second holds a rate slot but no concurrency slot
        script.release.set()
        await asyncio.gather(hung, second)
    assert script.paths() == ["/hang", "/after"]


def test_policies_refuse_bad_values() -> None:
    for make in (
        lambda: RetryPolicy(max_attempts=0),
        lambda: RetryPolicy(base_delay=-1),
        lambda: RateLimit(per_second=0),
        lambda: RateLimit(burst=0),
        lambda: Timeouts(connect=0),
        lambda: Timeouts(total=-1),
        lambda: HttpClient(max_redirects=-1),
    ):
        with pytest.raises(ValueError):
            make()


# -- SSRF through the client ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:169.254.169.254]/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f000001/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[::1]/",
    ],
)
async def test_refused_before_sending(url: str, script: Script) -> None:
    records: list[Attempt] = []
    async with make_client(egress=EgressPolicy()) as http:
        with pytest.raises(EgressDenied) as info:
            await http.request("GET", url, observer=records.append)
    assert info.value.http_status == 403 and isinstance(info.value, OutboundHttpError)
    assert records == [] and script.seen == []


async def test_refused_with_the_local_server_port(script: Script, port: int) -> None:
    async with make_client(egress=EgressPolicy()) as http:
        for url in (f"http://127.0.0.1:{port}/", f"http://127.1:{port}/", f"http://localhost:{port}/", f"http://[::ffff:127.0.0.1]:{port}/"):
            with pytest.raises(EgressDenied):
                await http.request("GET", url)
    assert script.seen == []


async def test_name_resolving_to_loopback_is_refused_at_connect_time(script: Script, port: int) -> None:
    calls: list[str] = []
    records: list[Attempt] = []
    async with make_client(egress=EgressPolicy(), resolver=resolver({"internal.example.test": ["127.0.0.1"]}, calls)) as http:
        with pytest.raises(EgressDenied) as info:
            await http.request("GET", f"http://internal.example.test:{port}/x?token=t0p", observer=records.append)
    err = info.value
    assert err.address == "127.0.0.1" and err.host == "internal.example.test" and "loopback" in err.reason
    assert "internal.example.test" in str(err) and "t0p" not in str(err)
    assert calls == ["internal.example.test"]  # resolved once, at connect time
    assert [r.error for r in records] == ["egress denied: loopback address"]  # not retried
    assert script.seen == []


async def test_machine_name_through_the_system_resolver_is_refused_at_connect_time(script: Script, port: int) -> None:
    # This machine's own name passes the name check and resolves, through the real
    # getaddrinfo, to a loopback or private address: refused when connecting.
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if all(engine.http.classify_address(ipaddress.ip_address(a.split("%")[0])) is None for a in addresses):
        pytest.skip(f"this machine's name {name!r} resolves to public addresses only")
    async with make_client(egress=EgressPolicy()) as http:
        with pytest.raises(EgressDenied) as info:
            await http.request("GET", f"http://{name}:{port}/")
    assert info.value.address in addresses and info.value.host == name
    assert script.seen == []


async def test_name_with_any_internal_address_is_refused(script: Script, port: int) -> None:
    table = {"mixed.example.test": ["93.184.216.34", "127.0.0.1"]}
    async with make_client(egress=EgressPolicy(), resolver=resolver(table)) as http:
        with pytest.raises(EgressDenied):
            await http.request("GET", f"http://mixed.example.test:{port}/")
    assert script.seen == []


async def test_connects_to_the_vetted_address_by_name(script: Script, port: int) -> None:
    # The system resolver knows no "sandbox.example.test": the request can only succeed by
    # connecting to the address the guard resolved and vetted, without a second lookup.
    calls: list[str] = []
    async with make_client(resolver=resolver({"sandbox.example.test": ["127.0.0.1"]}, calls)) as http:
        for _ in range(3):
            response = await http.request("GET", f"http://sandbox.example.test:{port}/hello")
            assert response.status_code == 200
    assert script.seen[0].headers["host"] == f"sandbox.example.test:{port}"
    assert calls == ["sandbox.example.test"]  # vetted once per pooled connection


async def test_redirect_to_metadata_is_refused_at_the_hop(client: HttpClient, script: Script, base: str) -> None:
    for target in ("http://169.254.169.254/latest/meta-data/", "http://[::ffff:a9fe:a9fe]/", "http://[::ffff:169.254.169.254]/", "http://0251.0376.0251.0376/"):
        records: list[Attempt] = []
        with pytest.raises(EgressDenied) as info:
            await client.request("GET", f"{base}/redirect", params={"to": target}, observer=records.append)
        assert "metadata" in info.value.reason
        assert [(r.hop, r.status) for r in records] == [(0, 302)]


async def test_redirect_to_refused_local_name_and_scheme(client: HttpClient, script: Script, base: str, port: int) -> None:
    for target, why in ((f"http://localhost:{port}/", "loopback"), ("file:///etc/passwd", "scheme"), (f"http://10.0.0.1:{port}/", "private")):
        with pytest.raises(EgressDenied) as info:
            await client.request("GET", f"{base}/redirect", params={"to": target})
        assert why in info.value.reason


async def test_redirects_followed_and_vetted(client: HttpClient, script: Script, base: str) -> None:
    records: list[Attempt] = []
    response = await client.request("GET", f"{base}/redirect", params={"to": "/final"}, observer=records.append)
    assert response.status_code == 200 and script.paths()[-1] == "/final"
    assert [(r.hop, r.status) for r in records] == [(0, 302), (1, 200)]
    not_followed = await client.request("GET", f"{base}/redirect", params={"to": "/final"}, follow_redirects=False)
    assert not_followed.status_code == 302 and not_followed.headers["location"] == "/final"


async def test_too_many_redirects(client: HttpClient, script: Script, base: str) -> None:
    with pytest.raises(TooManyRedirects) as info:
        await client.request("GET", f"{base}/loop")
    assert info.value.max_redirects == 5 and len(script.seen) == 6


async def test_redirect_methods_and_bodies(client: HttpClient, script: Script, base: str) -> None:
    response = await client.request("POST", f"{base}/redirect", params={"to": "/echo", "status": "303"}, json={"a": 1})
    assert response.json()["method"] == "GET" and response.json()["body"] == ""
    assert "content-type" not in response.json()["headers"]
    response = await client.request("POST", f"{base}/redirect", params={"to": "/echo", "status": "307"}, json={"a": 1})
    assert response.json()["method"] == "POST" and response.json()["body"] == '{"a":1}'
    response = await client.request("POST", f"{base}/redirect", params={"to": "/echo", "status": "302"}, json={"a": 1})
    assert response.json()["method"] == "GET" and response.json()["body"] == ""
    response = await client.request("PUT", f"{base}/redirect", params={"to": "/echo", "status": "302"}, content=b"x")
    assert response.json()["method"] == "PUT" and response.json()["body"] == "x"


async def test_cross_origin_redirect_drops_sensitive_headers(script: Script, base: str, port: int) -> None:
    table = {"other.example.test": ["127.0.0.1"]}
    headers = {
        "Authorization": "Bearer tok",
        "Cookie": "sid=1",
        "X-Api-Key": "k",
        "X-Tenant-Secret": "s",
        "X-Trace": "keep-me",
    }
    async with make_client(resolver=resolver(table), sensitive_headers=["X-Tenant-Secret"]) as http:
        same = await http.request("GET", f"{base}/redirect", params={"to": "/echo"}, headers=headers)
        assert same.json()["headers"]["authorization"] == "Bearer tok"  # same origin keeps them
        cross = await http.request(
            "GET", f"{base}/redirect", params={"to": f"http://other.example.test:{port}/echo"}, headers=headers
        )
    sent = cross.json()["headers"]
    assert sent["host"] == f"other.example.test:{port}"
    assert not {"authorization", "cookie", "x-api-key", "x-tenant-secret"} & set(sent)
    assert sent["x-trace"] == "keep-me"


async def test_per_request_sensitive_headers(script: Script, base: str, port: int) -> None:
    table = {"other.example.test": ["127.0.0.1"]}
    async with make_client(resolver=resolver(table)) as http:
        cross = await http.request(
            "GET",
            f"{base}/redirect",
            params={"to": f"http://other.example.test:{port}/echo"},
            headers={"X-Cin7-Key": "k", "X-Other": "o"},
            sensitive_headers=["x-cin7-key"],
        )
    assert "x-cin7-key" not in cross.json()["headers"] and cross.json()["headers"]["x-other"] == "o"


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["not a url", "http://", "http:///nohost", "http://exa mple.com/", "http://[::1"],
)
async def test_malformed_urls(client: HttpClient, url: str) -> None:
    with pytest.raises((OutboundRequestInvalid, EgressDenied)) as info:
        await client.request("GET", url)
    if isinstance(info.value, OutboundRequestInvalid):
        assert info.value.http_status == 400 and info.value.code == "outbound_request_invalid"


async def test_bad_headers_and_bodies(client: HttpClient, base: str) -> None:
    with pytest.raises(OutboundRequestInvalid):
        await client.request("GET", f"{base}/x", headers={"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(OutboundRequestInvalid):
        await client.request("POST", f"{base}/x", content=iter([b"a"]))  # type: ignore[arg-type]
    with pytest.raises(OutboundRequestInvalid):
        await client.request("GET", f"{base}/x", headers={"X-Key": "caf\u00e9\u2603"})


# -- TLS: the vetted IP is connected to, the name is verified -------------------------------


def _certificates(tmp_path) -> tuple[str, str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchboard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure.example.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("secure.example.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file), ca.public_bytes(serialization.Encoding.PEM).decode()


async def test_tls_verifies_the_name_while_connecting_to_the_vetted_address(tmp_path) -> None:
    cert, key, ca_pem = _certificates(tmp_path)
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.script = Script()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    tls_port = srv.server_address[1]
    table = {"secure.example.test": ["127.0.0.1"], "wrong.example.test": ["127.0.0.1"]}
    try:
        trust = ssl.create_default_context(cadata=ca_pem)
        async with make_client(resolver=resolver(table), verify=trust) as http:
            response = await http.request("GET", f"https://secure.example.test:{tls_port}/echo")
            assert response.status_code == 200
            assert response.json()["headers"]["host"] == f"secure.example.test:{tls_port}"
            # the certificate is checked against the URL's name, not the address connected to
            with pytest.raises(UpstreamUnavailable) as info:
                await http.request("GET", f"https://wrong.example.test:{tls_port}/")
            assert "certificate" in info.value.reason.lower() or "hostname" in info.value.reason.lower()
            assert info.value.attempts == 1  # a certificate that fails is not retried
    finally:
        srv.shutdown()
        srv.server_close()

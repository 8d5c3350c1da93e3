"""Request size limits: oversized bodies are refused with 413 before they are read, parsed or
authenticated, so they cost the server no memory; spec routes take larger bodies than the rest."""

from __future__ import annotations

import json
import select
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

import store
from support.platform import make_tenant
from support.serve_process import platform_process
from switchboard.settings import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_SPEC_REQUEST_BYTES, Settings

MiB = 1024 * 1024
HUGE = 100 * MiB
PIECE = b"x" * (64 * 1024)
# The peak resident memory of the server may grow this much over the four 100 MB requests: far
# less than one body, far more than the allocator's noise.
MEMORY_MARGIN = 40 * MiB
# A failsafe only: a server that waits for the whole body never answers a request that does not send it.
ANSWER_TIMEOUT = 60


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (``VmHWM``), in bytes: a peak between two readings
    shows even when the memory was given back before the second one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def raw_post(url: str, path: str, *, size: int, chunked: bool, send_body: bool = True) -> tuple[int, dict[str, str], bytes, int]:
    """POST ``size`` bytes to ``path`` over a plain socket (``Content-Length`` or chunked), sending
    the body only until the server answers. Returns status, headers, body and the bytes sent."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=ANSWER_TIMEOUT)
    sent = 0
    try:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
        )
        while send_body and sent < size:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # answered (or closed): stop sending
            piece = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(PIECE)
        else:
            if send_body and chunked:
                sock.sendall(b"0\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body, sent
    finally:
        sock.close()


@pytest.fixture(scope="module")
def server(migrated_database_url: str) -> Iterator[tuple[str, int]]:
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-limits-"))
    try:
        with platform_process(migrated_database_url, data_dir) as (url, proc):
            yield url, proc.pid
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_the_limits_are_settings_with_defaults() -> None:
    settings = Settings(database_url="postgresql://u@localhost/db")
    assert (settings.max_request_bytes, settings.max_spec_request_bytes) == (MiB, 16 * MiB)
    assert (DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_SPEC_REQUEST_BYTES) == (MiB, 16 * MiB)


def test_a_declared_oversized_body_is_refused_before_it_is_sent(server: tuple[str, int]) -> None:
    url, _pid = server
    status, headers, body, _ = raw_post(url, "/v1/secrets", size=HUGE, chunked=False, send_body=False)
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["code"] == "request_too_large"
    assert (problem["limit"], problem["setting"]) == (MiB, "max_request_bytes")
    assert "SWITCHBOARD_MAX_REQUEST_BYTES" in problem["detail"] and "1 MiB" in problem["detail"]


def test_unauthenticated_100mb_posts_are_refused_without_growing_the_server(server: tuple[str, int]) -> None:
    url, pid = server
    # Warm up the paths a request takes, so their first-use allocations are not counted.
    for _ in range(3):
        raw_post(url, "/v1/secrets", size=2 * MiB, chunked=True)
        raw_post(url, "/v1/secrets", size=2 * MiB, chunked=False)
    before = peak_rss(pid)
    results = [raw_post(url, "/v1/secrets", size=HUGE, chunked=chunked) for chunked in (True, False, True, False)]
    after = peak_rss(pid)
    assert after - before < MEMORY_MARGIN, f"peak RSS grew by {(after - before) / MiB:.0f} MiB"
    for status, _headers, body, sent in results:
        assert status == 413, body
        assert json.loads(body)["code"] == "request_too_large"
        assert sent < HUGE


def test_a_spec_route_has_the_larger_limit(server: tuple[str, int]) -> None:
    url, _pid = server
    status, _headers, body, _ = raw_post(url, "/v1/connectors/import", size=17 * MiB, chunked=False, send_body=False)
    assert status == 413
    assert (json.loads(body)["limit"], json.loads(body)["setting"]) == (16 * MiB, "max_spec_request_bytes")
    # Streamed without a length, the count stops it too.
    status, _headers, body, _ = raw_post(url, "/v1/workflows", size=HUGE, chunked=True)
    assert status == 413 and json.loads(body)["setting"] == "max_spec_request_bytes"


def _openapi_document(size: int) -> str:
    """A valid OpenAPI document of about ``size`` bytes (long descriptions, as real ones have)."""
    operations = {
        f"/things{i}": {"get": {"operationId": f"getThing{i}", "description": "d" * 30_000,
                                "responses": {"200": {"description": "ok"}}}}
        for i in range(size // 30_000 + 2)
    }
    return json.dumps({"openapi": "3.0.3", "info": {"title": "Big", "version": "1"},
                       "servers": [{"url": "https://api.example.com"}], "paths": operations})


def test_spec_route_accepts_3mb_and_normal_route_refuses_2mb(server: tuple[str, int], db: store.Database) -> None:
    url, _pid = server
    tenant = make_tenant(db, "Limits", customers=0)
    with httpx.Client(base_url=url, timeout=120) as http:
        document = _openapi_document(3 * MiB)
        body = json.dumps({"document": document, "id": "big"})
        assert len(body) > 3 * MiB
        imported = http.post("/v1/connectors/import", headers={**tenant.headers(), "content-type": "application/json"},
                             content=body)
        assert imported.status_code == 201, imported.text[:500]
        assert imported.json()["key"] == "big"

        refused = http.post("/v1/secrets", headers=tenant.headers(),
                            json={"name": "big", "environment": "dev", "value": "v" * (2 * MiB)})
        assert refused.status_code == 413
        assert refused.json()["setting"] == "max_request_bytes"
        # Just under the limit, the route itself answers (here: the value is too long for a secret).
        small = http.post("/v1/secrets", headers=tenant.headers(),
                          json={"name": "big", "environment": "dev", "value": "v" * (MiB - 200)})
        assert small.status_code == 422


def test_the_413_is_documented_where_there_is_a_body(server: tuple[str, int]) -> None:
    url, _pid = server
    document = httpx.get(url + "/openapi.json", timeout=30).json()
    assert "413" in document["paths"]["/v1/secrets"]["post"]["responses"]
    assert "413" not in document["paths"]["/v1/secrets"]["get"]["responses"]

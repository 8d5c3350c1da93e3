"""Importing an OpenAPI document by URL: the name is resolved once, the addresses vetted, and the
connection goes to a vetted address, so a resolver that changes its answer between the check and
the connection (DNS rebinding) cannot point the fetch at an internal address."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.errors import EgressDenied
from engine.http import EgressPolicy
from engine.openapi import load_openapi

HOST = "docs.rebind.test"
VETTED = "127.0.0.1"
INTERNAL = "127.0.0.2"


def _document(title: str) -> bytes:
    return json.dumps({
        "openapi": "3.0.3", "info": {"title": title, "version": "1"}, "servers": [{"url": "https://api.example.com"}],
        "paths": {"/things": {"get": {"operationId": "listThings", "responses": {"200": {"description": "ok"}}}}},
    }).encode()


class _Server:
    def __init__(self, address: str, port: int, title: str) -> None:
        self.hits: list[str] = []
        body = _document(title)
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((address, port), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    """The document server at the vetted address and, on the same port, an "internal" one."""
    vetted = _Server(VETTED, 0, "Public")
    try:
        internal = _Server(INTERNAL, vetted.port, "Internal")
    except OSError:
        vetted.close()
        pytest.skip(f"cannot listen on {INTERNAL}:{vetted.port}")
    yield vetted, internal
    vetted.close()
    internal.close()


# The egress allow-list names the vetted address only: the internal one stays refused.
POLICY = EgressPolicy(allow=(VETTED,))


def test_the_system_resolver_is_asked_once_and_its_answer_is_where_the_fetch_connects(
    servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS that answers the vetted address first and an internal one afterwards (rebinding)."""
    vetted, internal = servers
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host, port, *args, **kwargs):  # noqa: ANN001, ANN202 (socket.getaddrinfo's signature)
        if (host.decode() if isinstance(host, bytes) else host) != HOST:
            return real(host, port, *args, **kwargs)
        answers.append(VETTED if not answers else INTERNAL)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answers[-1], int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    document = load_openapi(f"http://{HOST}:{vetted.port}/openapi.json", egress=POLICY)
    assert document.raw["info"]["title"] == "Public"
    assert internal.hits == []
    assert vetted.hits == ["/openapi.json"]
    assert answers == [VETTED]


def test_the_resolver_seam_resolves_once(servers: tuple[_Server, _Server]) -> None:
    vetted, internal = servers
    calls: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return [VETTED] if len(calls) == 1 else [INTERNAL]

    document = load_openapi(f"http://{HOST}:{vetted.port}/openapi.json", egress=POLICY, resolver=resolver)
    assert document.raw["info"]["title"] == "Public"
    assert calls == [(HOST, vetted.port)]
    assert internal.hits == []


def test_a_name_resolving_to_an_internal_address_is_refused_without_connecting(servers: tuple[_Server, _Server]) -> None:
    vetted, internal = servers

    async def resolver(host: str, port: int) -> list[str]:
        return [INTERNAL]

    with pytest.raises(EgressDenied) as refused:
        load_openapi(f"http://{HOST}:{vetted.port}/openapi.json", egress=POLICY, resolver=resolver)
    assert refused.value.address == INTERNAL
    assert "loopback" in refused.value.reason
    assert internal.hits == [] and vetted.hits == []


async def test_a_url_can_be_imported_from_async_code(servers: tuple[_Server, _Server]) -> None:
    vetted, _internal = servers

    async def resolver(host: str, port: int) -> list[str]:
        return [VETTED]

    document = load_openapi(f"http://{HOST}:{vetted.port}/openapi.json", egress=POLICY, resolver=resolver)
    assert document.raw["info"]["title"] == "Public"

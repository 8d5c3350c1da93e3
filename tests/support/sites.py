"""Company websites for the Setup Assistant's tests: static pages under ``tests/data/sites/<company>``,
served over real HTTP on 127.0.0.1, and reached by the platform under a made-up public name.

The platform's SSRF guard refuses loopback, and these tests keep it that way: instead of
allow-listing 127.0.0.1 (which would open every local port to every fetch), the platform's
``HttpClient`` gets one mounted prefix, ``https://<company>.example``, whose transport forwards
exactly that origin to the site's server. Every other URL, the server's own 127.0.0.1 address
included, still goes through the guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from support.servers import serve_app

SITES = Path(__file__).resolve().parents[1] / "data" / "sites"


def site_app(company: str) -> Starlette:
    """The static site of ``company`` (``index.html`` at ``/``)."""
    folder = SITES / company
    if not (folder / "index.html").is_file():
        raise FileNotFoundError(f"no site {company!r} under {SITES}")
    return Starlette(routes=[Mount("/", app=StaticFiles(directory=folder, html=True))])


class ForwardTransport(httpx.AsyncBaseTransport):
    """Sends each request to ``target`` (``http://127.0.0.1:PORT``) over real HTTP, keeping its path
    and query; the response is the server's."""

    def __init__(self, target: str) -> None:
        self.target = httpx.URL(target)
        self._http = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_with(scheme=self.target.scheme, host=self.target.host, port=self.target.port)
        forwarded = httpx.Request(request.method, url, headers=request.headers, stream=request.stream)
        return await self._http.handle_async_request(forwarded)

    async def aclose(self) -> None:
        await self._http.aclose()


class ServedSite:
    """A served site: ``url`` its public name (what the platform fetches), ``local`` its real
    address on 127.0.0.1 (refused by the guard)."""

    def __init__(self, company: str, local: str) -> None:
        self.company = company
        self.url = f"https://{company}.example"
        self.local = local

    def mount(self) -> dict[str, httpx.AsyncBaseTransport]:
        """The mount for ``HttpClient.mounted``: this site's public origin only."""
        return {self.url: ForwardTransport(self.local)}


@contextmanager
def served_site(company: str) -> Iterator[ServedSite]:
    """Serve ``tests/data/sites/<company>`` on 127.0.0.1 for the block."""
    with serve_app(site_app(company)) as local:
        yield ServedSite(company, local)

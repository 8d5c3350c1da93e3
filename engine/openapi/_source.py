"""Reading an OpenAPI document's source: a file, an http(s) URL (through the SSRF guard), text or bytes."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import OpenAPIImportError
from ..http import EgressGuard, EgressPolicy, GuardedTransport, Resolver
from ._refs import parse_text

_FETCH_TIMEOUT_S = 30.0


def read_source(source: str | Path | dict | bytes, source_name: str | None,
                egress: EgressPolicy | None = None,
                resolver: Resolver | None = None) -> tuple[Any, str, Path | None, str | None]:
    """Return (parsed data, name for messages, directory for external files, URL for relative servers).

    A URL is fetched through the egress guard with ``egress`` as its allow-list; ``resolver``
    resolves its host (default: the system's; a seam for tests)."""
    if isinstance(source, dict):
        return source, source_name or "<document>", None, None
    if isinstance(source, bytes):
        name = source_name or "<document>"
        return parse_text(_decode(source, name), name), name, None, None
    if isinstance(source, str) and re.match(r"^https?://", source.strip(), re.IGNORECASE):
        url = source.strip()
        name = source_name or url
        return parse_text(_fetch(url, name, egress, resolver), name), name, None, url
    if isinstance(source, str) and ("\n" in source or source.lstrip().startswith(("{", "openapi:", "swagger:"))):
        name = source_name or "<document>"
        return parse_text(source, name), name, None, None
    path = Path(source)
    name = source_name or str(path)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise OpenAPIImportError(name, "", f"file not found: {path}") from None
    except OSError as exc:
        raise OpenAPIImportError(name, "", f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_text(_decode(content, name), name), name, path.resolve().parent, None


def _decode(content: bytes, name: str) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OpenAPIImportError(name, "", f"not UTF-8 text: {exc}") from None


MAX_FETCH_BYTES = 20 * 1024 * 1024


def _fetch(url: str, name: str, egress: EgressPolicy | None, resolver: Resolver | None = None) -> str:
    # Documents come from operators, tenants and agents alike, so the fetch goes through the
    # engine's guarded transport, as connector requests do: the URL's host is vetted as written,
    # then at connect time the name is resolved once, every address vetted and the socket opened
    # to a vetted address; no second lookup can rebind it to a private one (DNS rebinding).
    # Redirects are not followed, so a public URL cannot bounce the fetch elsewhere either.
    guard = EgressGuard(egress or EgressPolicy(), resolver=resolver)
    try:
        guard.check_url(url)
    except ValueError as exc:
        raise OpenAPIImportError(name, "", f"cannot fetch {url}: {exc}") from None
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _decode(asyncio.run(_download(url, name, guard)), name)
    # Called from async code: the transport needs an event loop of its own, in another thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return _decode(pool.submit(asyncio.run, _download(url, name, guard)).result(), name)


async def _download(url: str, name: str, guard: EgressGuard) -> bytes:
    import httpx

    transport = GuardedTransport(guard)
    try:
        async with httpx.AsyncClient(
            transport=transport, timeout=_FETCH_TIMEOUT_S, follow_redirects=False, trust_env=False
        ) as client:
            async with client.stream("GET", url) as response:
                if response.is_redirect:
                    where = response.headers.get("location", "")
                    raise OpenAPIImportError(name, "", f"cannot fetch {url}: it redirects to {where}; import that URL instead")
                if response.status_code >= 400:
                    raise OpenAPIImportError(name, "", f"cannot fetch {url}: HTTP {response.status_code}")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_FETCH_BYTES:
                        raise OpenAPIImportError(name, "", f"cannot fetch {url}: larger than {MAX_FETCH_BYTES} bytes")
                    chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise OpenAPIImportError(name, "", f"cannot fetch {url}: {exc}") from None
    return b"".join(chunks)

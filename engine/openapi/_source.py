"""Reading an OpenAPI document's source: a file, an http(s) URL (through the SSRF guard), text or bytes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import OpenAPIImportError
from ..http import EgressGuard, EgressPolicy
from ._refs import parse_text

_FETCH_TIMEOUT_S = 30.0


def read_source(source: str | Path | dict | bytes, source_name: str | None,
                egress: EgressPolicy | None = None) -> tuple[Any, str, Path | None, str | None]:
    """Return (parsed data, name for messages, directory for external files, URL for relative servers)."""
    if isinstance(source, dict):
        return source, source_name or "<document>", None, None
    if isinstance(source, bytes):
        name = source_name or "<document>"
        return parse_text(_decode(source, name), name), name, None, None
    if isinstance(source, str) and re.match(r"^https?://", source.strip(), re.IGNORECASE):
        url = source.strip()
        name = source_name or url
        return parse_text(_fetch(url, name, egress), name), name, None, url
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


def _fetch(url: str, name: str, egress: EgressPolicy | None) -> str:
    # Documents come from operators, tenants and agents alike: the URL goes through the
    # engine's SSRF guard (every address the name resolves to is vetted) and redirects are
    # not followed, so a public URL cannot bounce the fetch to a private address.
    import socket

    import httpx

    guard = EgressGuard(egress or EgressPolicy())
    try:
        parsed = guard.check_url(url)
    except ValueError as exc:
        raise OpenAPIImportError(name, "", f"cannot fetch {url}: {exc}") from None
    host = parsed.host
    if not guard.policy.allows_hostname(host.lower().rstrip(".")):
        try:
            infos = socket.getaddrinfo(host, parsed.port or (443 if parsed.scheme == "https" else 80), type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OpenAPIImportError(name, "", f"cannot fetch {url}: {exc}") from None
        for info in infos:
            guard.check_address(info[4][0], host=host, url=url)
    try:
        with httpx.stream("GET", url, timeout=_FETCH_TIMEOUT_S, follow_redirects=False, trust_env=False) as response:
            if response.is_redirect:
                where = response.headers.get("location", "")
                raise OpenAPIImportError(name, "", f"cannot fetch {url}: it redirects to {where}; import that URL instead")
            if response.status_code >= 400:
                raise OpenAPIImportError(name, "", f"cannot fetch {url}: HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_FETCH_BYTES:
                    raise OpenAPIImportError(name, "", f"cannot fetch {url}: larger than {MAX_FETCH_BYTES} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise OpenAPIImportError(name, "", f"cannot fetch {url}: {exc}") from None
    return _decode(b"".join(chunks), name)

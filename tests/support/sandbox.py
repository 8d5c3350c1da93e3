"""Sandbox apps for tests: a real uvicorn server on an ephemeral 127.0.0.1 port, in a background thread.

    with sandbox_url("cin7-core-v2-subset.yaml", seed={"/customer": [...]}) as base_url:
        httpx.get(base_url + "/customer", headers=...)

``running_sandbox`` yields the :class:`SandboxServer` itself (``base_url``,
``admin_url``, ``sandbox``). Documents of ``tests/data/openapi`` are named by file
name and loaded once per test session.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.openapi import OpenAPIDocument, load_openapi
from engine.sandbox import SandboxServer
from support.documents import SPECS_DIR  # re-exported: tests name documents relative to it


@functools.lru_cache(maxsize=None)
def load_spec(name: str) -> OpenAPIDocument:
    """A document of ``tests/data/openapi`` by file name, loaded once."""
    return load_openapi(SPECS_DIR / name)


def _document(source: str | Path | OpenAPIDocument) -> OpenAPIDocument | Path:
    if isinstance(source, str) and "/" not in source and (SPECS_DIR / source).exists():
        return load_spec(source)
    return source if isinstance(source, OpenAPIDocument) else Path(source)


@contextmanager
def running_sandbox(source: str | Path | OpenAPIDocument, *, seed: Any = None, clock: Any = None) -> Iterator[SandboxServer]:
    """Serve a sandbox of ``source`` (a tests/data/openapi file name, a path or a document) for the block."""
    server = SandboxServer(_document(source), seed=seed, clock=clock)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def sandbox_url(source: str | Path | OpenAPIDocument, *, seed: Any = None, clock: Any = None) -> Iterator[str]:
    """Like :func:`running_sandbox`, yielding the base URL (origin plus the document's base path)."""
    with running_sandbox(source, seed=seed, clock=clock) as server:
        yield server.base_url


def assert_matches_document(document: OpenAPIDocument, method: str, template: str, status: int, body: Any) -> None:
    """Fail unless ``body`` validates against the response schema ``document`` declares for ``method template status``."""
    from engine._samples import validator_for
    from engine.samples import schema_view

    operation = next(o for o in document.operations if o.method.upper() == method.upper() and o.path == template)
    response = operation.responses.get(str(status)) or operation.responses.get("default")
    assert response is not None, f"{method} {template} does not document {status}"
    if response.schema is None:
        return
    errors = list(validator_for(schema_view(response.schema, for_request=False)).iter_errors(body))
    assert not errors, f"{method} {template} {status}: {errors[0].message} at {list(errors[0].absolute_path)}"

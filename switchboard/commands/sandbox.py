"""``switchboard sandbox``: serve a stateful fake of an API from its OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("sandbox")
@click.argument("document")
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="Port on 127.0.0.1.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--seed", "seed_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="YAML or JSON records to preload.")
def sandbox(document: str, port: int, host: str, seed_file: Path | None) -> None:
    """Serve a sandbox of DOCUMENT (an OpenAPI file) until interrupted."""
    from engine.openapi import load_openapi
    from engine.sandbox import serve_sandbox

    # keep_refs: shared schemas stay shared (Xero's accounting document inlined is over a hundred megabytes)
    doc = load_openapi(document, keep_refs=True)
    base_path = urlpath(doc.servers[0]) if doc.servers else ""
    click.echo(f"sandbox of {doc.title!r} on http://{host}:{port}{base_path} (admin: http://{host}:{port}/__sandbox/state)", err=True)
    serve_sandbox(doc, host=host, port=port, seed_file=seed_file, log_level="warning")


def urlpath(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.rstrip("/")

"""``switchboard connector``: import OpenAPI documents and test connectors against an app."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from switchboard.commands import load_settings


@click.group("connector")
def connector() -> None:
    """Import and test connectors."""


@connector.command("import")
@click.argument("document")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the connector here (.json or .yaml); default stdout.")
@click.option("--id", "connector_id", help="Connector id (default: a slug of the document's title).")
def import_command(document: str, out: Path | None, connector_id: str | None) -> None:
    """Turn an OpenAPI 2.0/3.0/3.1 DOCUMENT (file or URL, JSON or YAML) into a connector spec.

    Problems that still allow a safe import are printed as warnings with their
    JSON pointer; a document that cannot be imported safely is refused.
    """
    from engine.http import EgressPolicy
    from engine.openapi import import_to_file, load_openapi
    from switchboard.engine_runtime import operator_hosts

    settings = load_settings()
    # A URL typed here is the operator's choice: its host joins the allow-list for this fetch.
    egress = EgressPolicy(allow=tuple(dict.fromkeys([*settings.egress_allow, *operator_hosts([document])])))
    # keep_refs: schemas the document reuses stay shared in the connector's $defs
    result = import_to_file(load_openapi(document, egress=egress, keep_refs=True), out, connector_id=connector_id)
    for problem in result.warnings:
        click.echo(f"warning: {problem}", err=True)
    summary = f"imported {result.connector.id}: {len(result.connector.actions)} actions, auth {result.connector.auth.type}"
    click.echo(summary + (f", {len(result.warnings)} warnings" if result.warnings else "") + (f" -> {out}" if out else ""), err=True)


def load_connector_or_document(path: str):
    """A connector spec file, or an OpenAPI document imported on the fly."""
    from engine.openapi import import_connector
    from engine.specs import load_connector, parse_document

    try:
        data = parse_document(Path(path).read_text(encoding="utf-8"), path) if Path(path).is_file() else None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text", param_hint="CONNECTOR") from None
    if isinstance(data, dict) and ("openapi" in data or "swagger" in data):
        return import_connector(path).connector
    return load_connector(path)


@connector.command("test")
@click.argument("connector_file", metavar="CONNECTOR")
@click.option("--base-url", required=True, help="Where the app (or its sandbox) answers, e.g. http://127.0.0.1:8100/v3")
@click.option("--credentials", "credentials_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON or YAML file of real credential values; default: placeholders of the right shape.")
@click.option("--json", "as_json", is_flag=True, help='Print {"actions": N, "passed": N, "failed": [...]}.')
def test_command(connector_file: str, base_url: str, credentials_file: Path | None, as_json: bool) -> None:
    """Call every action of CONNECTOR (a spec, or an OpenAPI document) with a sample input and report.

    Exits 1 when an action fails.
    """
    from engine import check_connector
    from runtime import build_executor
    from switchboard.engine_runtime import build_http_client, operator_hosts

    from switchboard.commands.workflow import check_base_url, read_mapping

    settings = load_settings()
    check_base_url(base_url)
    spec = load_connector_or_document(connector_file)
    credentials = None
    if credentials_file is not None:
        values = read_mapping(credentials_file, "credential names to values", "--credentials")
        if not all(isinstance(v, (str, int, float)) for v in values.values()):
            raise click.BadParameter(f"{credentials_file} must map credential names to values, e.g. "
                                     f"{{{', '.join(repr(f) + ': ...' for f in spec.credential_fields())}}}", param_hint="--credentials")
        credentials = {spec.id: values}

    async def run():
        http = build_http_client(settings, extra_allow=operator_hosts([base_url]))
        try:
            executor = build_executor({spec.id: spec}, http, credentials=credentials, base_urls={spec.id: base_url})
            return await check_connector(spec, executor)
        finally:
            await http.aclose()

    report = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(report.summary(), indent=2))
    else:
        for check in report.checks:
            mark = "ok  " if check.passed else "FAIL"
            status = check.status if check.sent else "not sent"
            click.echo(f"{mark} {check.action:40} {check.method:6} {check.path}  status={status}"
                       + (f"  schema={'ok' if check.schema_ok else 'mismatch'}" if check.schema_ok is not None else "")
                       + (f"\n     {check.reason}" if check.reason else ""))
        click.echo(f"{report.passed}/{len(report.checks)} actions passed")
    if report.passed != len(report.checks):
        raise SystemExit(1)

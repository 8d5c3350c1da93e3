"""``switchboard connector``: import OpenAPI documents and test connectors against an app."""

from __future__ import annotations

import asyncio
import json
import sys
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
@click.option("--json", "as_json", is_flag=True,
              help='Print {"actions", "passed", "drift": [...], "failed": [...], "categories", "notes"}.')
@click.option("--all", "show_all", is_flag=True, help="List every action's outcome, not only drift and failures.")
def test_command(connector_file: str, base_url: str, credentials_file: Path | None, as_json: bool, show_all: bool) -> None:
    """Call every action of CONNECTOR (a spec, or an OpenAPI document) with a sample input and report.

    Records are created before their children, the ids the app answers are
    fed to later calls, deletes run last. Each action passes, drifts (a
    success whose body contradicts the output schema) or fails with a
    category: no_id, status, input_refused, transport. Prints a summary by
    category, then drift and failures grouped. Exits 1 when an action fails
    (drift alone does not fail).
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

    async def run(on_result):
        http = build_http_client(settings, extra_allow=operator_hosts([base_url]))
        try:
            executor = build_executor({spec.id: spec}, http, credentials=credentials, base_urls={spec.id: base_url})
            return await check_connector(spec, executor, on_result=on_result)
        finally:
            await http.aclose()

    if not as_json and sys.stdout.isatty():
        with click.progressbar(length=len(spec.actions), label=f"testing {spec.id}",
                               item_show_func=lambda name: name or "") as bar:
            report = asyncio.run(run(lambda check: bar.update(1, check.action)))
    else:
        report = asyncio.run(run(None))
    if as_json:
        click.echo(json.dumps(report.summary(), indent=2))
    else:
        for line in report_lines(report, show_all=show_all):
            click.echo(line)
    if report.failed:
        raise SystemExit(1)


def report_lines(report, *, show_all: bool = False) -> list[str]:
    """A ``connector test`` report that reads in one screen: the summary by category, then drift and failures grouped."""
    from engine._connector_check import CATEGORIES

    checks = report.checks
    categories = report.categories()
    counts = f"{report.passed} passed, {len(report.drifted)} drift, {len(report.failed)} failed"
    if categories:
        counts += " (" + ", ".join(f"{name} {n}" for name, n in categories.items()) + ")"
    lines = [f"{report.connector}: {len(checks)} actions: {counts}"]
    if show_all:
        lines.append("")
        for check in checks:
            status = check.status if check.sent else "not sent"
            lines.append(f"{check.outcome:7} {check.action:40} {check.method:6} {check.path}  status={status}")
    for category in CATEGORIES:
        group = [c for c in report.failed if c.category == category]
        if group:
            lines += ["", f"failed, {category} ({len(group)}):"]
            lines += [line for c in group for line in (f"  {c.action}  {c.method} {c.path}", f"      {c.reason}")]
    if report.drifted:
        lines += ["", f"drift: success, but the answer contradicts the output schema ({len(report.drifted)}):"]
        for check in report.drifted:
            where = "; ".join(f"{p['pointer'] or '/'}: {p['message']}" for p in check.drift[:2])
            lines += [f"  {check.action}  {check.method} {check.path}", f"      {where[:200]}"]
    noted = [(c.action, note) for c in checks for note in c.notes]
    if noted:
        lines += ["", f"notes ({len(noted)}):"] + [f"  {action}: {note}" for action, note in noted]
    return lines

"""Requests built by imported connectors, judged by a validator nobody here wrote: Stoplight Prism.

For every document of tests/data/openapi that Prism serves, ``prism mock DOC`` runs on
an ephemeral 127.0.0.1 port (all documents start at once, for the session), the
document is imported with ``engine.openapi.import_connector``, and every action
is called through the engine's executor with placeholder credentials: once with
its required sample input, once with every optional parameter filled as well.
No request may be rejected by Prism: no request violation of severity error
(Prism answers those with a 400/422 and lists them in ``sl-violations``), no
unknown route or method, no refused content type, no missing credentials.

Prism comes from npm (``@stoplight/prism-cli@5``, kept in ``.cache/prism``). The
tests skip only where ``node`` or ``npm`` is absent; a failed install fails them.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from support.prism import (
    REFUSED,
    SPECS_DIR,
    PrismInstall,
    PrismInstallFailed,
    PrismServer,
    PrismStartFailed,
    install_prism,
    node_missing,
    prism_complaints,
    request_warnings,
    running_prisms,
    send_every_action,
    served_documents,
)

from engine.http import EgressPolicy, HttpClient, RateLimit, RetryPolicy
from engine.openapi import import_connector
from engine.specs import ConnectorSpec, NoAuth
from runtime import build_executor

pytestmark = pytest.mark.prism

DOCUMENTS = served_documents()


@pytest.fixture(scope="session")
def prism_install() -> PrismInstall:
    reason = node_missing()
    if reason:
        pytest.skip(reason)
    try:
        install = install_prism()
    except PrismInstallFailed as exc:
        pytest.fail(f"installing Stoplight Prism failed:\n{exc}", pytrace=False)
    took = f"installed in {install.install_seconds:.1f}s" if install.install_seconds else "already installed"
    print(f"\nprism {install.version}: {took}")
    return install


@pytest.fixture(scope="session")
def prisms(prism_install: PrismInstall) -> Iterator[dict[str, PrismServer]]:
    started = time.monotonic()
    try:
        with running_prisms(prism_install, DOCUMENTS) as servers:
            print(f"\n{len(servers)} prism mock servers listening after {time.monotonic() - started:.1f}s")
            yield servers
    except PrismStartFailed as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    # One attempt per request and no throttling: each request is judged once, and Resend has 86 actions.
    client = HttpClient(
        egress=EgressPolicy(allow=("127.0.0.1",)),
        retry=RetryPolicy(max_attempts=1),
        rate_limit=RateLimit(per_second=1000.0, burst=1000),
    )
    yield client
    await client.aclose()


def connector_of(document: str) -> ConnectorSpec:
    return import_connector(SPECS_DIR / document).connector


async def judge(connector: ConnectorSpec, server: PrismServer, http: HttpClient):
    executor = build_executor({connector.id: connector}, http, credentials=None, base_urls={connector.id: server.url})
    return await send_every_action(connector, executor)


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_prism_accepts_every_request(document: str, prisms: dict[str, PrismServer], http: HttpClient) -> None:
    connector = connector_of(document)
    sent = await judge(connector, prisms[document], http)

    assert {s.action for s in sent} == set(connector.actions)
    unsent = [s for s in sent if s.status is None]
    rejected = [s for s in sent if s.complaints]
    print(f"\n{document}: {len(sent)} requests for {len(connector.actions)} actions, {len(rejected)} rejected by Prism")
    for s in sent:
        for warning in s.warnings:
            print(f"  prism warning, {s.action} [{s.variant}]: {warning}")
    problems = [s.describe() for s in unsent + rejected]
    assert not problems, (
        f"{len(problems)} of {len(sent)} requests for {document} were not sent or were rejected by Prism:\n"
        + "\n".join(problems)
    )


def _only(connector: ConnectorSpec, action: str, **changes) -> ConnectorSpec:
    """``connector`` with one action, altered by ``changes``."""
    altered = connector.actions[action].model_copy(update=changes)
    return connector.model_copy(update={"actions": {action: altered}})


# Connectors made wrong on purpose: each must draw Prism's complaint, so the test above can fail.
BROKEN: dict[str, tuple[str, Callable[[ConnectorSpec], ConnectorSpec], str]] = {
    "body missing a required property": (
        "cin7-core-v2-subset.yaml",
        lambda c: _only(c, "create_customer", body={"Name": "Ada"}),
        "request.body: Request body must have required property 'Currency'",
    ),
    "path parameter of the wrong type": (
        "swagger-petstore-v3.yaml",
        lambda c: _only(c, "get_pet_by_id", path_params={"petId": "not-a-number"}),
        "request.path.petId: Request path parameter petId must be integer",
    ),
    "query parameter of the wrong type": (
        "oai-petstore-v3.0.yaml",
        lambda c: _only(c, "list_pets", query={"limit": "many"}),
        "request.query.limit: Request query parameter limit must be integer",
    ),
    "credentials left out": (
        "cin7-core-v2-subset.yaml",
        lambda c: _only(c, "list_customers").model_copy(update={"auth": NoAuth()}),
        "401 UNAUTHORIZED",
    ),
    "route the document lacks": (
        "cin7-core-v2-subset.yaml",
        lambda c: _only(c, "list_customers", path="/customers"),
        "404 NO_PATH_MATCHED_ERROR",
    ),
    "form body where JSON is required": (
        "cin7-core-v2-subset.yaml",
        lambda c: _only(c, "create_product", body_type="form"),
        "415 INVALID_CONTENT_TYPE",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
async def test_prism_rejects_a_broken_request(case: str, prisms: dict[str, PrismServer], http: HttpClient) -> None:
    document, breaks, complaint = BROKEN[case]
    sent = await judge(breaks(connector_of(document)), prisms[document], http)

    assert sent and all(s.status is not None for s in sent)
    assert all(s.complaints for s in sent), [s.describe() for s in sent]
    for s in sent:
        assert any(c.lower().startswith(complaint.lower()) for c in s.complaints), s.describe()  # Prism lowercases path parameter names


def test_verdict_reads_only_request_errors() -> None:
    violations = (
        '[{"location":["request","query","x"],"severity":"Warning","code":"deprecated","message":"old"},'
        '{"location":["response","body"],"severity":"Error","code":"type","message":"example is wrong"}]'
    )
    # An accepted request: a warning about it, an error about Prism's own example, a documented 400 example.
    assert prism_complaints(200, {"sl-violations": violations}, {"id": 1}) == []
    assert request_warnings({"sl-violations": violations}) == ["request.query.x: old (Warning)"]
    assert prism_complaints(400, {}, {"code": 400, "message": "Invalid ID supplied"}) == []
    # Prism's trouble building a response is not a verdict on the request.
    problem = {"type": "https://stoplight.io/prism/errors#NO_RESPONSE_DEFINED", "title": "No response", "status": 500}
    assert prism_complaints(500, {}, problem) == []
    # Prism cuts a long violation list; the request is still rejected.
    cut = {"SL-Violations": 'Too many violations! [{"location":["request","body"],"severity":"Error"'}
    assert prism_complaints(422, cut, None) != []
    invalid = {
        "type": "https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY", "status": 422,
        "validation": [{"location": ["query", "limit"], "severity": "Error", "message": "must be integer"}],
    }
    assert prism_complaints(422, {}, invalid) == ["request.query.limit: must be integer"]


def test_a_failed_install_fails_loudly(tmp_path) -> None:
    reason = node_missing()
    if reason:
        pytest.skip(reason)
    unreachable = {
        **os.environ, "npm_config_registry": "http://127.0.0.1:9/", "npm_config_fetch_retries": "0",
        "npm_config_cache": str(tmp_path / "npm-cache"),
    }
    with pytest.raises(PrismInstallFailed) as failed:
        install_prism(tmp_path / "prism", env=unreachable)
    assert failed.value.returncode not in (0, None)
    assert "ECONNREFUSED" in failed.value.output


def test_prism_refuses_what_index_says(prism_install: PrismInstall, tmp_path) -> None:
    # Both at once: a node start is the slow part.
    servers = [PrismServer(prism_install.executable, SPECS_DIR / name, tmp_path) for name in sorted(REFUSED)]
    try:
        for server in servers:
            with pytest.raises(PrismStartFailed) as refused:
                server.wait_listening(time.monotonic() + 60)
            assert "exited with" in refused.value.reason
            assert "fatal" in refused.value.log  # Prism's own word on the document, not a crash of ours
    finally:
        for server in servers:
            server.stop()

"""The API over a real uvicorn server on 127.0.0.1 against the real test Postgres."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

import api
import store
from support.servers import serve_app
from switchboard import Settings
from switchboard.app import create_app


def serve(app: FastAPI):
    """Serve ``app`` with its lifespan on an ephemeral 127.0.0.1 port; yield its base URL."""
    return serve_app(app, lifespan="on")


def test_health_ok_on_migrated_database(migrated_database_url: str) -> None:
    with serve(create_app(Settings(database_url=migrated_database_url))) as base:
        response = httpx.get(f"{base}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "schema_version": store.latest_version()}


def test_health_503_when_database_unreachable() -> None:
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    with serve(create_app(settings)) as base:
        response = httpx.get(f"{base}/health")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("unavailable", "unreachable")
    assert "database unavailable" in body["reason"]


def test_health_503_when_schema_is_behind(database_url: str) -> None:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = store.create_database(database_url, name)
    try:
        with serve(create_app(Settings(database_url=url))) as base:
            response = httpx.get(f"{base}/health")
    finally:
        store.drop_database(database_url, name)
    assert response.status_code == 503
    assert response.json()["database"] == "outdated"
    assert "switchboard db migrate" in response.json()["reason"]


class CodedButUnrelated(Exception):
    """Not a subclass of any Switchboard root: mapping goes by attributes."""

    code = "widget_jammed"
    http_status = 409
    problem_fields = ("widget",)

    def __init__(self, widget: str) -> None:
        self.widget = widget
        super().__init__(f"widget {widget} is jammed")


class Payload(BaseModel):
    name: str
    count: int


@pytest.fixture
def error_app() -> FastAPI:
    app = create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))

    @app.get("/coded")
    def coded() -> None:
        raise CodedButUnrelated("w-7")

    @app.get("/store")
    def store_error() -> None:
        raise store.DatabaseUnavailable("connection refused")

    @app.get("/bug")
    def bug() -> None:
        raise KeyError("internal detail that must not leak")

    @app.post("/payload")
    def payload(body: Payload) -> dict:
        return body.model_dump()

    return app


def test_errors_are_problem_details(error_app: FastAPI) -> None:
    with serve(error_app) as base, httpx.Client(base_url=base) as client:
        coded = client.get("/coded")
        from_store = client.get("/store")
        bug = client.get("/bug")
        missing = client.get("/nowhere")
        wrong_method = client.delete("/health")
        invalid = client.post("/payload", json={"name": "x", "count": "many"})
        valid = client.post("/payload", json={"name": "x", "count": 2})

    for response in (coded, from_store, bug, missing, wrong_method, invalid):
        assert response.headers["content-type"] == "application/problem+json"

    assert coded.status_code == 409
    assert coded.json() == {
        "type": "urn:switchboard:problem:widget_jammed",
        "title": "Widget jammed",
        "status": 409,
        "detail": "widget w-7 is jammed",
        "code": "widget_jammed",
        "instance": "/coded",
        "widget": "w-7",
    }
    assert from_store.status_code == 503
    assert from_store.json()["code"] == "database_unavailable"
    assert bug.status_code == 500
    assert bug.json()["code"] == "internal_error"
    assert "internal detail" not in bug.text
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["allow"]
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["pointer"] == "/body/count"
    assert valid.status_code == 200 and valid.json() == {"name": "x", "count": 2}


def test_json_pointer_escapes() -> None:
    from api.errors import json_pointer

    assert json_pointer(("body", "a/b", "c~d", 0)) == "/body/a~1b/c~0d/0"
    assert json_pointer(()) == ""

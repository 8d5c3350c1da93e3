"""Structured logging: JSON lines, stdlib routed through structlog, credentials redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from switchboard.logging import REDACTED, configure_logging, get_logger, is_sensitive_key, redact, redact_url


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging("INFO", "json", force=True)
    yield capsys
    configure_logging("INFO", "console", force=True)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "key",
    ["Authorization", "password", "client_secret", "access_token", "refresh_token", "X-Api-Key", "api_key",
     "hubspot_access_token", "Cookie", "secret", "token"],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["token_url", "secret_name", "max_tokens", "status", "email", "authorize_url"])
def test_ordinary_keys(key: str) -> None:
    assert not is_sensitive_key(key)


def test_redact_recurses_without_mutating() -> None:
    event = {
        "request": {"headers": {"Authorization": "Bearer abc", "Accept": "application/json"}},
        "pairs": [("X-Api-Key", "k1"), ("Accept", "json")],
        "items": [{"refresh_token": "r"}, 3],
        "dsn": "postgresql://app:hunter2@db:5432/app",
    }
    cleaned = redact(event)
    assert cleaned == {
        "request": {"headers": {"Authorization": REDACTED, "Accept": "application/json"}},
        "pairs": [("X-Api-Key", REDACTED), ("Accept", "json")],
        "items": [{"refresh_token": REDACTED}, 3],
        "dsn": f"postgresql://app:{REDACTED}@db:5432/app",
    }
    assert event["request"]["headers"]["Authorization"] == "Bearer abc"


def test_redact_url_leaves_urls_without_password() -> None:
    assert redact_url("https://api.example.com/v1?x=1") == "https://api.example.com/v1?x=1"
    assert redact_url("see https://u@h/p and https://u:p@h/p") == f"see https://u@h/p and https://u:{REDACTED}@h/p"


def test_json_lines_with_redaction(json_logs: pytest.CaptureFixture[str]) -> None:
    get_logger("test").info("token refreshed", access_token="at-123", connector="hubspot")
    logging.getLogger("third.party").warning("calling %s", "https://u:pw@host/x", extra={"password": "p"})
    first, second = _lines(json_logs)
    assert first["event"] == "token refreshed"
    assert first["access_token"] == REDACTED
    assert first["connector"] == "hubspot"
    assert first["level"] == "info" and first["logger"] == "test" and "timestamp" in first
    assert second["event"] == f"calling https://u:{REDACTED}@host/x"
    assert second["password"] == REDACTED
    assert second["level"] == "warning"


def test_level_filters(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", "json", force=True)
    get_logger("test").info("hidden")
    get_logger("test").warning("shown")
    assert [line["event"] for line in _lines(json_logs)] == ["shown"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")


def test_credential_query_parameters_are_redacted(json_logs: pytest.CaptureFixture[str]) -> None:
    assert redact_url("/cb?state=s1&code=abc123&x=1") == f"/cb?state=s1&code={REDACTED}&x=1"
    assert redact_url("https://h/p?hapikey=k1&limit=5") == f"https://h/p?hapikey={REDACTED}&limit=5"
    # An access log line, as uvicorn writes it for an OAuth callback.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/v1/oauth/callback?state=org_1.x&code=c0de-9", "1.1", 303
    )
    (line,) = _lines(json_logs)
    assert "c0de-9" not in json.dumps(line)
    assert f"code={REDACTED}" in line["event"]
    # An error code in an event is not a credential.
    assert redact({"code": "quota_exceeded"}) == {"code": "quota_exceeded"}


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_logged_exception_never_shows_its_frames_locals(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A traceback renderer that prints locals would print the headers of the call that failed.
    configure_logging("INFO", fmt, force=True)
    try:

        def call_upstream() -> None:
            headers = {"Authorization": "Bearer sk-canary-91d2"}
            raise RuntimeError(f"upstream refused ({len(headers)} headers)")

        call_upstream()
    except RuntimeError:
        logging.getLogger("switchboard.api").exception("request failed")
    finally:
        err = capsys.readouterr().err
        configure_logging("INFO", "console", force=True)
    assert "upstream refused" in err and "call_upstream" in err
    assert "sk-canary-91d2" not in err

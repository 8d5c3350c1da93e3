"""Structured logging: structlog for our code, the standard library (uvicorn, libraries) routed
through the same processors, one line per event as JSON or as console text.

``configure_logging`` is called once by the CLI; calling it again with the same arguments is a
no-op. Every event passes ``redact_secrets``, so a credential that reaches a log call by mistake
is written as ``"[REDACTED]"``.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

# Compared after lower-casing and turning "-" into "_", so "X-Api-Key" and "Authorization"
# match; a key also matches when it ends with "_<word>" ("hubspot_access_token").
SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "private_key",
        "credentials",
    }
)

# Query parameters whose values are credentials when they appear in a URL (an access log line,
# say): the sensitive keys plus OAuth's authorization ``code`` and common API-key spellings.
SENSITIVE_QUERY_PARAMS = SENSITIVE_KEYS | {"code", "key", "hapikey", "sig", "signature", "auth"}
_QUERY_SECRET = re.compile(
    r"(?P<prefix>[?&](?P<name>[A-Za-z0-9_.-]+)=)(?P<value>[^&\s\"'#]+)"
)

_URL_PASSWORD = re.compile(r"(?P<prefix>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?=@)", re.IGNORECASE)

_configured: tuple[str, str] | None = None


def is_sensitive_key(key: str) -> bool:
    """True when a mapping key names a credential (case- and dash-insensitive)."""
    normalized = key.lower().replace("-", "_")
    return normalized in SENSITIVE_KEYS or any(normalized.endswith("_" + word) for word in SENSITIVE_KEYS)


def redact_url(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text``, and the values
    of credential query parameters (``?code=...``, ``&access_token=...``)."""
    text = _URL_PASSWORD.sub(lambda m: m.group("prefix") + REDACTED, text)
    if "=" not in text:
        return text

    def query(match: re.Match[str]) -> str:
        name = match.group("name").lower().replace("-", "_")
        if name in SENSITIVE_QUERY_PARAMS or is_sensitive_key(name):
            return match.group("prefix") + REDACTED
        return match.group(0)

    return _QUERY_SECRET.sub(query, text)


def redact(value: Any) -> Any:
    """Return ``value`` with credentials replaced, recursing into mappings, lists and tuples.

    Mapping values under sensitive keys are replaced whole; ``(name, value)`` pairs (header
    lists) are treated like mappings; strings lose URL passwords. The input is not modified.
    """
    if isinstance(value, Mapping):
        return {k: REDACTED if isinstance(k, str) and is_sensitive_key(k) else redact(v) for k, v in value.items()}
    # Exact types only: named tuples and other subclasses cannot be rebuilt from an iterable.
    if type(value) in (list, tuple):
        if len(value) == 2 and isinstance(value[0], str) and is_sensitive_key(value[0]):
            return type(value)((value[0], REDACTED))
        return type(value)(redact(item) for item in value)
    if isinstance(value, str):
        return redact_url(value)
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: redact credentials anywhere in the event dict."""
    return redact(event_dict)


def _drop_color_message(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # uvicorn passes an ANSI-coloured copy of each message as an "extra"; the event already has it.
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    Click's test runner and pytest swap ``sys.stderr``; a handler holding the stream it saw at
    configuration time would write into a closed buffer afterwards.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", fmt: str = "console", *, force: bool = False) -> None:
    """Configure structlog and the standard library to write one event per line to stderr.

    ``level`` is a standard level name; ``fmt`` is ``"json"`` or ``"console"``. Repeated calls with
    the same arguments do nothing unless ``force`` is true. Raises ``ValueError`` for an unknown
    format.
    """
    global _configured
    if fmt not in ("json", "console"):
        raise ValueError(f"log format must be 'json' or 'console', got {fmt!r}")
    level = level.upper()
    if _configured == (level, fmt) and not force:
        return

    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        final = [structlog.processors.format_exc_info, renderer]
    else:
        # A plain traceback, never rich's: rich renders every frame's locals, which would put
        # request headers and decrypted credentials into the log (and takes seconds per error).
        final = [
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        ]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": _shared_processors(),
                    "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
                }
            },
            "handlers": {
                "stderr": {"class": "switchboard.logging.StderrHandler", "formatter": "structured"}
            },
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                # uvicorn installs its own handlers unless told otherwise; route it through ours.
                # NOTSET: inherit the root's level, whatever an earlier server in this process set.
                "uvicorn": {"handlers": [], "propagate": True, "level": "NOTSET"},
                "uvicorn.error": {"handlers": [], "propagate": True, "level": "NOTSET"},
                "uvicorn.access": {"handlers": [], "propagate": True, "level": "NOTSET"},
                # pgserver logs each pg_ctl step at INFO; only its warnings are news.
                "pgserver": {"level": "WARNING"},
                # httpx logs every request URL at INFO; a connector's query may carry an API key,
                # and the engine's traces already record each call with the URL redacted.
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
            },
        }
    )
    _configured = (level, fmt)


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger bound to ``initial`` key-value pairs."""
    return structlog.get_logger(name, **initial)

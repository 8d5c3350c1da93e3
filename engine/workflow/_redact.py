"""Finding secret values in what a run produces, in the forms they travel in, and masking them.

A connector may echo a credential back (a 401 body quoting the token, a debug
endpoint returning the request), and an expression may transform a secret
before it is sent (``$uppercase``, ``$base64encode``). So a secret is looked
for not only as itself but in its common forms: any letter case, base64
(standard and URL-safe alphabets, padded or not, and at any alignment inside a
longer encoded string, such as HTTP Basic credentials), percent-encoding and
hex. Values shorter than :data:`MIN_ENCODED_LENGTH` are matched exactly only:
their other forms are too likely to occur in ordinary text.

What this cannot catch is a fragment (``$substring``) or any other lossy
transformation; ``engine.check_workflow`` keeps ``secrets`` to the fields
that are sent to a connector, and the interpreter binds them nowhere else.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

MIN_ENCODED_LENGTH = 6


def secret_forms(value: str) -> set[str]:
    """The strings ``value`` commonly travels as: itself, base64 (both alphabets, padded or not, and
    the part that is the same at any alignment), percent-encoded and hex. Compare them case-insensitively."""
    forms = {value}
    if len(value) < MIN_ENCODED_LENGTH:
        return forms
    raw = value.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode("ascii")
        forms.update({whole, whole.rstrip("=")})
        for offset in range(3):
            # base64 of the value preceded by `offset` bytes: the characters that depend only on
            # the value's own bytes appear in any encoding of a text holding it at that alignment
            encoded = encode(b"\0" * offset + raw).decode("ascii")
            first = -(-8 * offset // 6)
            last = (8 * (offset + len(raw))) // 6
            core = encoded[first:last]
            if len(core) >= MIN_ENCODED_LENGTH:
                forms.add(core)
    forms.update({urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value, safe=""),
                  urllib.parse.quote(value), raw.hex()})
    return forms


def _default_mask(name: str) -> str:
    return f"[secret:{name}]"


class Redactor:
    """Replaces secret values, in any of their :func:`secret_forms`, with ``[secret:NAME]`` in JSON values.

    Args:
        mask: what replaces a secret, given its name (``[secret:NAME]`` by default).

    A value holding none of the secrets is returned as is (the same object),
    after one search of its JSON text; only values holding one are rebuilt.
    """

    def __init__(self, mask: Callable[[str], str] = _default_mask) -> None:
        self._mask = mask
        self._by_value: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        self._names: dict[str, str] = {}
        self._needles: tuple[str, ...] = ()

    def add(self, name: str, value: str) -> None:
        """Redact ``value`` (as ``mask(name)``) from now on. Empty values are ignored."""
        if not isinstance(value, str) or not value or value in self._by_value:
            return
        self._by_value[value] = name
        self._pattern = None

    def __bool__(self) -> bool:
        return bool(self._by_value)

    def __call__(self, value: Any) -> Any:
        """``value`` with every secret replaced; the same object when it holds none."""
        if not self._by_value:
            return value
        pattern = self._compiled()
        if not self._may_hold(value):
            return value
        return self._walk(value, lambda text: pattern.sub(self._replace, text))

    def restore(self, value: Any) -> Any:
        """Inverse of redaction for the default mask: ``[secret:NAME]`` back to the secret's value."""
        if not self._by_value:
            return value
        pairs = [(_default_mask(name), secret) for secret, name in self._by_value.items()]

        def put_back(text: str) -> str:
            for old, new in pairs:
                if old in text:
                    text = text.replace(old, new)
            return text

        return self._walk(value, put_back)

    def _compiled(self) -> re.Pattern[str]:
        if self._pattern is None:
            exact: dict[str, str] = {}
            folded: dict[str, str] = {}
            for secret, name in self._by_value.items():
                if len(secret) < MIN_ENCODED_LENGTH:
                    exact.setdefault(secret, name)
                else:
                    for form in secret_forms(secret):
                        folded.setdefault(form.lower(), name)
            alternatives = [(form, False) for form in exact] + [(form, True) for form in folded]
            # longest first, so a secret holding another is replaced whole
            alternatives.sort(key=lambda item: -len(item[0]))
            self._pattern = re.compile("|".join(f"(?i:{re.escape(f)})" if ci else re.escape(f)
                                                for f, ci in alternatives))
            self._names = {**folded, **exact}
            self._needles = tuple({json.dumps(f, ensure_ascii=False)[1:-1].lower() for f, _ in alternatives})
        return self._pattern

    def _replace(self, match: re.Match[str]) -> str:
        found = match.group(0)
        return self._mask(self._names.get(found) or self._names.get(found.lower()) or "secret")

    def _may_hold(self, value: Any) -> bool:
        # One search of the value's JSON text (C speed) instead of a walk over every string.
        if isinstance(value, str):
            text = value
        elif isinstance(value, (dict, list, tuple)):
            try:
                text = json.dumps(value, ensure_ascii=False, default=str)
            except (TypeError, ValueError, RecursionError):
                return True
        else:
            return False
        text = text.lower()
        return any(needle in text for needle in self._needles)

    def _walk(self, value: Any, fix: Callable[[str], str]) -> Any:
        if isinstance(value, str):
            return fix(value)
        if isinstance(value, dict):
            return {self._walk(k, fix): self._walk(v, fix) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._walk(v, fix) for v in value]
        return value

"""Webhook signature schemes: how a delivery proves who sent it.

* ``standard_webhooks`` (https://www.standardwebhooks.com, the default): ``webhook-id``,
  ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` headers; each signature is
  ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the secret (``whsec_<base64>``); several
  space-separated signatures may come (a sender rotating its secret signs with both), and one
  match is enough. The signature is computed by the ``standardwebhooks`` package; the timestamp is
  checked here against the platform's clock, so tests can move time.
* ``hubspot_v3`` (HubSpot's "v3 request signature"): ``X-HubSpot-Signature-v3`` is the base64
  HMAC-SHA256, keyed with the HubSpot app's client secret, of
  ``method + uri + body + timestamp``, where ``X-HubSpot-Request-Timestamp`` is in Unix
  milliseconds and ``uri`` is the full URL HubSpot called, with the URL-encoded characters HubSpot
  lists decoded. HubSpot sends no delivery id, so the body's SHA-256 identifies a delivery for
  deduplication (HubSpot's bodies carry each event's ``eventId`` and ``occurredAt``, so a resent
  body is a retry).

Both refuse a timestamp more than ``TOLERANCE`` away from now (a replayed capture), compare in
constant time (``hmac.compare_digest``) and verify the body bytes exactly as received: a body
re-serialized on the way (other spacing, other key order) does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook

from runtime.errors import SignatureInvalid

STANDARD_WEBHOOKS = "standard_webhooks"
HUBSPOT_V3 = "hubspot_v3"
SIGNATURE_SCHEMES = (STANDARD_WEBHOOKS, HUBSPOT_V3)
TOLERANCE = timedelta(minutes=5)
SECRET_PREFIX = "whsec_"
# A Standard Webhooks secret's key: at least 192 bits, as the spec recommends 24 to 64 bytes.
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
MAX_WEBHOOK_ID = 255

# The percent-encodings HubSpot decodes in the URI before signing it (its v3 validation guide).
_HUBSPOT_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
    "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}


@dataclass(frozen=True)
class Delivery:
    """One webhook request as received: ``url`` is the URL the sender called (the public URL when
    the platform runs behind a proxy), ``headers`` have lower-case names, ``body`` is untouched."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


def new_standard_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` and the base64 of 32 random bytes."""
    import secrets

    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def standard_secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not a usable Standard Webhooks secret, or None."""
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else None
    if raw is None:
        return f"must start with {SECRET_PREFIX}"
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return f"must be {SECRET_PREFIX} followed by standard base64"
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        return f"must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes of key, not {len(key)}"
    return None


def _timestamp(scheme: str, text: str | None, header: str, now: datetime, *, millis: bool = False) -> datetime:
    if not text:
        raise SignatureInvalid(scheme, f"header {header} is missing")
    try:
        value = int(text.strip())
        at = datetime.fromtimestamp(value / 1000 if millis else value, UTC)
    except (ValueError, OverflowError, OSError):
        raise SignatureInvalid(scheme, f"header {header} is not a Unix timestamp") from None
    if at < now - TOLERANCE:
        raise SignatureInvalid(scheme, f"the timestamp is older than {TOLERANCE.seconds // 60} minutes (a replay?)")
    if at > now + TOLERANCE:
        raise SignatureInvalid(scheme, f"the timestamp is more than {TOLERANCE.seconds // 60} minutes in the future")
    return at


def verify_standard(secret: str, delivery: Delivery, now: datetime) -> str:
    """Verify a Standard Webhooks delivery; returns its ``webhook-id``. Raises ``SignatureInvalid``."""
    scheme = STANDARD_WEBHOOKS
    headers = delivery.headers
    webhook_id, signatures = headers.get("webhook-id"), headers.get("webhook-signature")
    if not webhook_id:
        raise SignatureInvalid(scheme, "header webhook-id is missing")
    if len(webhook_id) > MAX_WEBHOOK_ID:
        raise SignatureInvalid(scheme, f"header webhook-id is longer than {MAX_WEBHOOK_ID} characters")
    if not signatures:
        raise SignatureInvalid(scheme, "header webhook-signature is missing")
    at = _timestamp(scheme, headers.get("webhook-timestamp"), "webhook-timestamp", now)
    expected = Webhook(secret).sign(webhook_id, at, delivery.body).encode()
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures.split(" ") if candidate):
        raise SignatureInvalid(scheme, "no signature in webhook-signature matches the body as received")
    return webhook_id


def hubspot_uri(url: str) -> str:
    """``url`` as HubSpot signs it: the characters it lists decoded from their percent-encoding."""
    for encoded, plain in _HUBSPOT_DECODED.items():
        url = url.replace(encoded, plain).replace(encoded.lower(), plain)
    return url


def sign_hubspot_v3(secret: str, method: str, url: str, body: bytes, timestamp_ms: int) -> str:
    """The ``X-HubSpot-Signature-v3`` value for a request (what HubSpot sends; tests sign with it)."""
    source = method.upper().encode() + hubspot_uri(url).encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def verify_hubspot_v3(secret: str, delivery: Delivery, now: datetime) -> str:
    """Verify a HubSpot v3 delivery; returns the id it is deduplicated by (the body's SHA-256).
    Raises ``SignatureInvalid``."""
    scheme = HUBSPOT_V3
    signature = delivery.headers.get("x-hubspot-signature-v3")
    if not signature:
        raise SignatureInvalid(scheme, "header X-HubSpot-Signature-v3 is missing")
    stamp = delivery.headers.get("x-hubspot-request-timestamp")
    _timestamp(scheme, stamp, "X-HubSpot-Request-Timestamp", now, millis=True)
    expected = sign_hubspot_v3(secret, delivery.method, delivery.url, delivery.body, int(stamp.strip()))
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureInvalid(scheme, "X-HubSpot-Signature-v3 does not match the request as received")
    return "sha256:" + hashlib.sha256(delivery.body).hexdigest()


def verify(scheme: str, secret: str, delivery: Delivery, now: datetime) -> str:
    """Verify ``delivery`` by ``scheme`` (one of ``SIGNATURE_SCHEMES``); returns the delivery's id."""
    if scheme == HUBSPOT_V3:
        return verify_hubspot_v3(secret, delivery, now)
    if scheme == STANDARD_WEBHOOKS:
        return verify_standard(secret, delivery, now)
    raise SignatureInvalid(scheme, "the trigger names an unknown signature scheme")

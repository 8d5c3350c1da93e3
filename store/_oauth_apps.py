"""OAuth apps: an organization's managed client id and secret for one connector.

With an OAuth app for a connector, end customers connect through the organization's client
rather than one the builder registers per connector. The client secret is encrypted under purpose
``oauth_app:<id>``; rows this repository returns carry ``client_id`` but never the secret, except
``get_for_connector``, which is for the code that runs the OAuth flow.

Authorize and token URLs must be https (plain http only on a loopback host, for local providers
and tests). Whether a URL's host may be reached at all is the egress guard's decision when the
flow calls it, not this module's.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from psycopg.errors import UniqueViolation

from store._ids import new_id
from store._orgs import taken
from store._paging import Filters, ListQuery, Page, fetch_page
from store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from store._crypto import Encryptor
    from store._database import Tx

# The connector ids specs use (engine.specs ID_PATTERN); repeated here because store/ does not import engine/.
CONNECTOR_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_PATTERN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]{1,200}$")
MAX_SCOPES = 100
MAX_URL_LENGTH = 2048
MAX_CLIENT_ID_LENGTH = 512
MAX_CLIENT_SECRET_LENGTH = 4096
LOOPBACK_NAMES = ("localhost",)

_PUBLIC_COLUMNS = "org_id, id, connector_key, client_id, authorize_url, token_url, scopes, created_at, updated_at"
_CHANGEABLE = ("client_id", "client_secret", "authorize_url", "token_url", "scopes")


def oauth_app_purpose(app_id: str) -> str:
    """The encryption purpose of OAuth app ``app_id``'s client secret."""
    return f"oauth_app:{app_id}"


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(field: str, url: Any) -> str | None:
    """Validate an authorize or token URL (None passes: the connector spec's URL applies).

    Raises ``InvalidInput`` naming ``field`` unless the URL is absolute https, or http on a
    loopback host, without credentials or a fragment.
    """
    if url is None:
        return None
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise InvalidInput("oauth_app", field, f"must be a URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise InvalidInput("oauth_app", field, "is not a valid URL") from None
    if not host:
        raise InvalidInput("oauth_app", field, "must be an absolute URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("oauth_app", field, "must not carry credentials")
    if parts.fragment:
        raise InvalidInput("oauth_app", field, "must not have a fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)):
        return url
    raise InvalidInput("oauth_app", field, "must use https (http is allowed only for a loopback host)")


def _check_client_id(client_id: Any) -> str:
    if not isinstance(client_id, str) or not client_id.strip() or len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise InvalidInput("oauth_app", "client_id", f"must be a non-empty string of at most {MAX_CLIENT_ID_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in client_id):
        raise InvalidInput("oauth_app", "client_id", "must not contain control characters")
    return client_id


def _check_client_secret(secret: Any) -> bytes:
    # Never quote the secret in a reason, even a malformed one.
    if not isinstance(secret, str) or not secret:
        raise InvalidInput("oauth_app", "client_secret", "must be a non-empty string")
    if len(secret) > MAX_CLIENT_SECRET_LENGTH:
        raise InvalidInput("oauth_app", "client_secret", f"is longer than {MAX_CLIENT_SECRET_LENGTH} characters")
    return secret.encode("utf-8")


def _check_scopes(scopes: Any) -> list[str]:
    if not isinstance(scopes, list | tuple) or len(scopes) > MAX_SCOPES:
        raise InvalidInput("oauth_app", "scopes", f"must be a list of at most {MAX_SCOPES} scopes")
    for n, scope in enumerate(scopes):
        if not isinstance(scope, str) or not SCOPE_PATTERN.match(scope):
            raise InvalidInput("oauth_app", f"scopes/{n}", "must be a scope token (printable, no spaces, quotes or backslashes)")
    return list(dict.fromkeys(scopes))


class OAuthApps:
    """An organization's OAuth apps, at most one per connector."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(
        self,
        org_id: str,
        *,
        connector_key: str,
        client_id: str,
        client_secret: str,
        encryptor: Encryptor,
        authorize_url: str | None = None,
        token_url: str | None = None,
        scopes: list[str] | tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Register the OAuth client for ``connector_key``; returns the row without the secret.

        Raises ``InvalidInput`` naming the field that is refused and ``Conflict`` (``connector``)
        when the connector has an OAuth app already.
        """
        if not isinstance(connector_key, str) or not CONNECTOR_KEY_PATTERN.match(connector_key):
            raise InvalidInput("oauth_app", "connector", f"must match {CONNECTOR_KEY_PATTERN.pattern}")
        _check_client_id(client_id)
        secret = _check_client_secret(client_secret)
        check_endpoint_url("authorize_url", authorize_url)
        check_endpoint_url("token_url", token_url)
        scope_list = _check_scopes(scopes)
        app_id = new_id("oap")
        ciphertext = encryptor.encrypt(self.tx, org_id, secret, oauth_app_purpose(app_id))
        try:
            return self.tx.execute(
                "INSERT INTO oauth_apps (org_id, id, connector_key, client_id, client_secret, authorize_url, token_url, scopes)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_PUBLIC_COLUMNS}",
                (org_id, app_id, connector_key, client_id, ciphertext, authorize_url, token_url, scope_list),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("oauth_app", "connector", connector_key) from exc

    def update(self, org_id: str, app_id: str, changes: dict[str, Any], encryptor: Encryptor) -> dict[str, Any]:
        """Change ``client_id``, ``client_secret``, ``authorize_url``, ``token_url`` (None clears it)
        or ``scopes``; returns the row without the secret. The connector cannot change."""
        unknown = set(changes) - set(_CHANGEABLE)
        if unknown:
            field = sorted(unknown)[0]
            raise InvalidInput("oauth_app", "connector" if field == "connector_key" else field, "cannot be changed")
        current = self.get(org_id, app_id)
        params: dict[str, Any] = {}
        if "client_id" in changes:
            params["client_id"] = _check_client_id(changes["client_id"])
        for field in ("authorize_url", "token_url"):
            if field in changes:
                params[field] = check_endpoint_url(field, changes[field])
        if "scopes" in changes:
            params["scopes"] = _check_scopes(changes["scopes"])
        if "client_secret" in changes:
            secret = _check_client_secret(changes["client_secret"])
            params["client_secret"] = encryptor.encrypt(self.tx, org_id, secret, oauth_app_purpose(app_id))
        if not params:
            return current
        assignments = ", ".join(f"{column} = %({column})s" for column in params)
        return self.tx.execute(
            f"UPDATE oauth_apps SET {assignments}, updated_at = now() WHERE org_id = %(_org)s AND id = %(_id)s"
            f" RETURNING {_PUBLIC_COLUMNS}",
            {**params, "_org": org_id, "_id": app_id},
        ).fetchone()

    def get(self, org_id: str, app_id: str) -> dict[str, Any]:
        """The app without its secret (``NotFound`` when absent)."""
        row = self.tx.execute(
            f"SELECT {_PUBLIC_COLUMNS} FROM oauth_apps WHERE org_id = %s AND id = %s", (org_id, app_id)
        ).fetchone()
        if row is None:
            raise NotFound("oauth_app", app_id)
        return row

    def list(self, org_id: str, query: ListQuery, *, connector_key: str | None = None) -> Page:
        """Apps without their secrets, optionally for one connector."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if connector_key:
            filters.add("connector_key = %(connector)s", connector=connector_key)
        sortable = {"created_at": "created_at", "updated_at": "updated_at", "connector": "connector_key"}
        return fetch_page(self.tx, "oauth_app", "oauth_apps", query, sortable, filters, columns=_PUBLIC_COLUMNS)

    def delete(self, org_id: str, app_id: str) -> None:
        """Delete the app (``NotFound`` when absent)."""
        deleted = self.tx.execute(
            "DELETE FROM oauth_apps WHERE org_id = %s AND id = %s RETURNING id", (org_id, app_id)
        ).fetchone()
        if deleted is None:
            raise NotFound("oauth_app", app_id)

    def get_for_connector(self, org_id: str, connector_key: str, encryptor: Encryptor) -> dict[str, Any] | None:
        """The app of ``connector_key`` with ``client_secret`` decrypted (a str), or None.

        For the OAuth flow only: the secret must not be logged, traced or returned. Raises
        ``DecryptionFailed`` when the stored secret cannot be decrypted.
        """
        row = self.tx.execute(
            f"SELECT {_PUBLIC_COLUMNS}, client_secret AS _secret FROM oauth_apps WHERE org_id = %s AND connector_key = %s",
            (org_id, connector_key),
        ).fetchone()
        if row is None:
            return None
        blob = bytes(row.pop("_secret"))
        row["client_secret"] = encryptor.decrypt(self.tx, org_id, blob, oauth_app_purpose(row["id"])).decode("utf-8")
        return row

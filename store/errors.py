"""Errors of the store. psycopg and pgserver exceptions never leave ``store/``; they are
translated into these at the boundary (``store._db.translate_errors``).

Hierarchy (class, code, HTTP status)::

    StoreError                                   store_error (500)
    ├── DatabaseUnavailable                      database_unavailable (503)
    ├── EmbeddedPostgresError                    embedded_postgres_failed (503)
    ├── QueryFailed                              query_failed (500)
    ├── ResourceError                            resource_error (400)
    │   ├── NotFound                             not_found (404)
    │   ├── Conflict                             conflict (409)
    │   ├── InvalidInput                         invalid_input (422)
    │   │   ├── ConnectionAuthInvalid            connection_auth_invalid (422)
    │   │   └── OAuthAppMissing                  oauth_app_missing (422)
    │   ├── ConnectionNeedsReconnect             connection_needs_reconnect (409)
    │   ├── OAuthStateInvalid                    oauth_state_invalid (400)
    │   ├── OAuthCallbackFailed                  oauth_callback_failed (400)
    │   ├── OutsideTenantScope                   outside_tenant_scope (403)
    │   └── ValueNotStorable                     value_not_storable (422)
    ├── SchemaError                              schema_error (500)
    │   ├── MigrationFailed                      migration_failed (500)
    │   ├── SchemaTooNew                         schema_too_new (500)
    │   ├── MigrationMismatch                    migration_mismatch (500)
    │   └── MigrationChanged                     migration_changed (500)
    ├── EncryptionError                          encryption_error (500)
    │   ├── MasterKeyMissing                     master_key_missing (500)
    │   ├── MasterKeyInvalid                     master_key_invalid (500)
    │   ├── KeyringInsecure                      keyring_insecure (500)
    │   ├── KeyRotationRefused                   key_rotation_refused (500)
    │   └── DecryptionFailed                     decryption_failed (500)
    └── QuotaExceeded                            quota_exceeded (429)


Every error builds its message from typed fields and carries ``code`` and ``http_status``,
which ``api/`` maps to a problem+json response.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path


class StoreError(Exception):
    """Root of the errors raised by ``store``."""

    code: str = "store_error"
    http_status: int = 500


class DatabaseUnavailable(StoreError, ConnectionError):
    """The database could not be reached. ``reason`` is the driver's message, without credentials."""

    code = "database_unavailable"
    http_status = 503

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"database unavailable: {reason}")


class EmbeddedPostgresError(StoreError):
    """The embedded Postgres server in ``data_dir`` could not be started."""

    code = "embedded_postgres_failed"
    http_status = 503

    def __init__(self, data_dir: Path, reason: str) -> None:
        self.data_dir = data_dir
        self.reason = reason
        super().__init__(f"embedded Postgres in {data_dir} failed: {reason}")


class QueryFailed(StoreError):
    """The database rejected a statement. ``sqlstate`` is Postgres's five-character error code."""

    code = "query_failed"
    http_status = 500
    # What a client is told: the database's own words (table and constraint names) stay in the log.
    public_detail = "the database refused the request; the server log has the details"

    def __init__(self, sqlstate: str | None, reason: str) -> None:
        self.sqlstate = sqlstate
        self.reason = reason
        super().__init__(f"query failed ({sqlstate or 'no sqlstate'}): {reason}")


class ResourceError(StoreError):
    """A request about one resource cannot be served; ``field`` names what was wrong (or None)."""

    code = "resource_error"
    http_status = 400
    problem_fields = ("resource", "field")
    resource: str = ""
    field: str | None = None


class NotFound(ResourceError, LookupError):
    """``resource`` ``id`` does not exist for this tenant. Another tenant's row is reported the same
    way as a missing one, so its existence is not disclosed."""

    code = "not_found"
    http_status = 404
    problem_fields = ("resource", "resource_id")

    def __init__(self, resource: str, resource_id: str) -> None:
        self.resource = resource
        self.resource_id = resource_id
        super().__init__(f"{resource} {resource_id!r} not found")


class Conflict(ResourceError):
    """``field`` of ``resource`` already has ``value`` (a unique key), or ``reason`` says what state forbids it."""

    code = "conflict"
    http_status = 409

    def __init__(self, resource: str, field: str | None, reason: str) -> None:
        self.resource = resource
        self.field = field
        self.reason = reason
        where = f"{resource}.{field}" if field else resource
        super().__init__(f"{where}: {reason}")


class InvalidInput(ResourceError, ValueError):
    """``field`` of ``resource`` has a value the store refuses; ``reason`` says why."""

    code = "invalid_input"
    http_status = 422

    def __init__(self, resource: str, field: str, reason: str) -> None:
        self.resource = resource
        self.field = field
        self.reason = reason
        super().__init__(f"{resource}.{field}: {reason}")


class SchemaError(StoreError):
    """The database schema cannot be brought to this code's version."""

    code = "schema_error"
    http_status = 500


class MigrationFailed(SchemaError):
    """Migration ``version`` (``name``) could not be applied; the database keeps the earlier version."""

    code = "migration_failed"

    def __init__(self, version: int, name: str, reason: str) -> None:
        self.version = version
        self.name = name
        self.reason = reason
        super().__init__(f"migration {version} ({name}) failed: {reason}")


class SchemaTooNew(SchemaError):
    """The database records migrations this code does not know; run a newer Switchboard."""

    code = "schema_too_new"

    def __init__(self, database_version: int, code_version: int) -> None:
        self.database_version = database_version
        self.code_version = code_version
        super().__init__(f"database schema is at version {database_version}, newer than this code's {code_version}")


class MigrationMismatch(SchemaError):
    """Version ``version`` is recorded as ``recorded_name`` but the code calls it ``expected_name``:
    a shipped migration was edited or reordered, which append-only migrations forbid."""

    code = "migration_mismatch"

    def __init__(self, version: int, recorded_name: str, expected_name: str) -> None:
        self.version = version
        self.recorded_name = recorded_name
        self.expected_name = expected_name
        super().__init__(
            f"migration {version} is recorded as {recorded_name!r} but this code names it {expected_name!r}"
        )



class MigrationChanged(SchemaError):
    """Migration ``version`` (``name``) was applied with checksum ``recorded_checksum`` but the code's
    text now hashes to ``code_checksum``: a shipped migration was edited, which append-only migrations
    forbid. The database refuses to start until the migration is restored; a change goes into a new one."""

    code = "migration_changed"

    def __init__(self, version: int, name: str, recorded_checksum: str, code_checksum: str) -> None:
        self.version = version
        self.name = name
        self.recorded_checksum = recorded_checksum
        self.code_checksum = code_checksum
        super().__init__(
            f"migration {version} ({name}) was changed after it was applied: the database recorded checksum "
            f"{recorded_checksum[:12]}, this code's is {code_checksum[:12]}. Migrations are append-only: "
            f"restore {name} as it was applied and put the change in a new migration"
        )

# --- encryption (store/_crypto.py) ---
#
#   StoreError
#   └── EncryptionError             root of encryption failures; HTTP 500
#       ├── MasterKeyMissing        no master key configured, or a data key names one the keyring lacks
#       ├── MasterKeyInvalid        the master key setting or keyring file is malformed
#       ├── KeyringInsecure         the keyring file is readable by group or others
#       ├── KeyRotationRefused      rotation cannot run with this configuration
#       └── DecryptionFailed        a value or data key failed authentication (never carries key or value bytes)


class EncryptionError(StoreError):
    """Root of the errors of envelope encryption. Messages never contain key material, plaintext or ciphertext."""

    code = "encryption_error"
    http_status = 500


class MasterKeyMissing(EncryptionError):
    """No master key is available from ``source`` (a setting or keyring path); with ``key_id``, the
    keyring lacks that key, which a data key is wrapped under."""

    code = "master_key_missing"

    def __init__(self, source: str, key_id: str | None = None, hint: str | None = None) -> None:
        self.source = source
        self.key_id = key_id
        self.hint = hint
        what = f"master key {key_id} is not in {source}" if key_id else f"no master key in {source}"
        super().__init__(f"{what}; {hint}" if hint else what)


class MasterKeyInvalid(EncryptionError):
    """The master key in ``source`` (a setting name or keyring path) is malformed; ``reason`` says how."""

    code = "master_key_invalid"

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"invalid master key in {source}: {reason}")


class KeyringInsecure(EncryptionError):
    """The keyring file at ``path`` has permission bits ``mode`` that let group or others read it."""

    code = "keyring_insecure"

    def __init__(self, path: Path, mode: int) -> None:
        self.path = path
        self.mode = mode
        super().__init__(
            f"master keyring {path} has mode {mode:04o} and is readable by group or others; run: chmod 600 {path}"
        )


class KeyRotationRefused(EncryptionError):
    """Master key rotation cannot run; ``reason`` says why and what to do instead."""

    code = "key_rotation_refused"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"master key rotation refused: {reason}")


class DecryptionFailed(EncryptionError):
    """``purpose`` (of organization ``org_id``, when known) could not be decrypted; ``reason`` is a
    fixed description such as "authentication failed", never data."""

    code = "decryption_failed"

    def __init__(self, org_id: str | None, purpose: str, reason: str) -> None:
        self.org_id = org_id
        self.purpose = purpose
        self.reason = reason
        whose = f" of organization {org_id}" if org_id else ""
        super().__init__(f"cannot decrypt {purpose}{whose}: {reason}")


# --- end encryption ---


# --- quotas (store/_quotas.py) ---
#
#   StoreError
#   └── QuotaExceeded               a hard quota limit refused the request (nothing was counted); HTTP 429


class QuotaExceeded(StoreError):
    """The customer reached the hard ``limit`` of ``dimension`` (e.g. ``api_calls_per_minute``);
    the window resets at ``reset_at``, ``retry_after`` whole seconds after the refusal."""

    code = "quota_exceeded"
    http_status = 429
    problem_fields = ("dimension", "limit", "reset_at")

    def __init__(self, dimension: str, limit: int, reset_at: datetime, now: datetime) -> None:
        self.dimension = dimension
        self.limit = limit
        self.reset_at = reset_at
        self.retry_after = max(1, math.ceil((reset_at - now).total_seconds()))
        super().__init__(f"quota {dimension} of {limit} reached; it resets at {reset_at.isoformat()}")

    def problem_headers(self) -> dict[str, str]:
        """Headers for the 429 response: when to retry (RFC 9110 ``Retry-After``, in seconds)."""
        return {"Retry-After": str(self.retry_after)}


# --- end quotas ---


# --- connections (store/_connections.py; raised by switchboard/credentials.py, which composes them) ---
#
#   ResourceError
#   ├── ConnectionNeedsReconnect    the connection's grant is gone (invalid_grant, a 401/403); HTTP 409
#   ├── OAuthStateInvalid           an OAuth callback's state is malformed, unknown, already used or expired; HTTP 400
#   ├── OAuthCallbackFailed         the provider refused the authorization, or the code exchange failed; HTTP 400
#   └── InvalidInput
#       ├── ConnectionAuthInvalid   the credentials sent do not fit the connector's auth (names a JSON pointer); HTTP 422
#       └── OAuthAppMissing         no OAuth app (managed client id and secret) is configured for the connector; HTTP 422


class ConnectionNeedsReconnect(ResourceError):
    """Connection ``connection_id`` (of connector ``connector``) can no longer authenticate and is
    marked ``needs_reconnect``; the customer must connect again. ``reason`` never holds a credential."""

    code = "connection_needs_reconnect"
    http_status = 409
    problem_fields = ("resource", "connection_id", "connector")

    def __init__(self, connection_id: str, connector: str, reason: str) -> None:
        self.resource = "connection"
        self.connection_id = connection_id
        self.connector = connector
        self.reason = reason
        super().__init__(f"connection {connection_id} ({connector}) needs to be reconnected: {reason}")


class OAuthStateInvalid(ResourceError):
    """The ``state`` of an OAuth callback is refused; ``reason`` says why (malformed, unknown or already
    used, expired). The state itself is not repeated."""

    code = "oauth_state_invalid"
    http_status = 400
    problem_fields = ("resource", "field")

    def __init__(self, reason: str) -> None:
        self.resource = "oauth_state"
        self.field = "state"
        self.reason = reason
        super().__init__(f"OAuth state refused: {reason}")


class OAuthCallbackFailed(ResourceError):
    """The OAuth flow of connection ``connection_id`` ended without tokens: the provider answered
    ``error`` (``access_denied``, ``invalid_grant``...) to the authorization or the code exchange."""

    code = "oauth_callback_failed"
    http_status = 400
    problem_fields = ("resource", "connection_id", "error")

    def __init__(self, connection_id: str, error: str, reason: str) -> None:
        self.resource = "connection"
        self.connection_id = connection_id
        self.error = error
        self.reason = reason
        super().__init__(f"OAuth authorization of connection {connection_id} failed ({error}): {reason}")


class ConnectionAuthInvalid(InvalidInput):
    """The credentials sent for a connection do not fit its connector's auth; ``pointer`` is the JSON
    pointer into the request body (``/auth/type``, ``/auth/values/account_id``)."""

    code = "connection_auth_invalid"
    problem_fields = ("resource", "field", "pointer")

    def __init__(self, pointer: str, reason: str) -> None:
        self.resource = "connection"
        self.field = pointer.strip("/").replace("/", ".")
        self.pointer = pointer
        self.reason = reason
        ResourceError.__init__(self, f"{pointer}: {reason}")


class OAuthAppMissing(InvalidInput):
    """The organization has no OAuth app (managed client id and secret) for connector ``connector``."""

    code = "oauth_app_missing"
    problem_fields = ("resource", "field", "connector")

    def __init__(self, connector: str) -> None:
        self.resource = "connection"
        self.field = "connector"
        self.connector = connector
        self.reason = f"no OAuth app configured for connector {connector}"
        ResourceError.__init__(self, f"{self.reason}: register its client id and secret with POST /v1/oauth-apps")


# --- end connections ---


# --- refused writes and values (store/_db.py translate_errors; added in review) ---
#
#   ResourceError
#   ├── OutsideTenantScope          a row-level security policy refused a row of another organization or customer; HTTP 403
#   └── ValueNotStorable            a text value Postgres cannot store (a NUL character, invalid Unicode); HTTP 422


class OutsideTenantScope(ResourceError, PermissionError):
    """A write to ``resource`` (a table) was refused by row-level security: the row belongs to
    another organization or customer than the transaction is limited to (a key bound to one
    customer creating a customer, say)."""

    code = "outside_tenant_scope"
    http_status = 403
    problem_fields = ("resource",)

    def __init__(self, resource: str) -> None:
        self.resource = resource
        super().__init__(f"{resource}: this request is limited to one organization or customer, and the row is outside it")


class ValueNotStorable(ResourceError, ValueError):
    """A value sent cannot be stored; ``reason`` is a fixed description (never the value)."""

    code = "value_not_storable"
    http_status = 422
    problem_fields = ("resource", "field")

    def __init__(self, reason: str) -> None:
        self.resource = "request"
        self.field = None
        self.reason = reason
        super().__init__(f"a value in the request cannot be stored: {reason}")


# --- end refused writes and values ---

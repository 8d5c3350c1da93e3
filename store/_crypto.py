"""Envelope encryption with AES-GCM for secrets, connection credentials and OAuth client secrets.

Each organization has a data key (32 random bytes) stored in ``data_keys`` wrapped (AES-GCM) by a
master key; values are encrypted with the data key. The master keys form a ``MasterKeyring``: one
key from the ``SWITCHBOARD_MASTER_KEY`` setting, or a JSON keyring file (mode 0600) that is
generated on the first local run. ``rotate_master_key`` re-wraps every data key under a new master
key; values themselves are never re-encrypted, so rotation touches one row per organization.

A value's ciphertext is self-describing::

    version (1 byte) | len(data key id) (1 byte) | data key id (ASCII) | nonce (12 bytes) | AES-GCM ciphertext+tag

and is bound (AES-GCM associated data) to the organization, the purpose (e.g. ``"secret:<id>"``)
and that header, so a value copied into another organization or another column does not decrypt.

Rotation and data key creation coordinate through one Postgres advisory lock: creating a data key
holds it shared while it reads the keyring file and wraps, rotation takes it exclusively before it
re-wraps. So a process that read the keyring before the new key became active finishes its insert
before rotation looks, and rotation re-wraps that row too; no data key is ever left under a master
key that rotation removes.

Key bytes never appear in a ``repr``, an exception or a log line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.rows import tuple_row

from store._db import connect, translate_errors
from store._keyring import (
    _GENERATE_HINT,
    MASTER_KEY_SETTING,
    NEW_MASTER_KEY_SETTING,
    KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    MasterKeyring,
    _secret_text,
    master_key_id,
)
from store.errors import (
    DecryptionFailed,
    KeyRotationRefused,
)

FORMAT_VERSION = 1
DATA_KEY_CACHE_SIZE = 1024

# Advisory lock keys. The single-bigint and the two-int4 forms are separate key spaces in Postgres.
_ROTATION_LOCK = 0x5357_4B45_5952_4F54  # data key creation (shared) vs. re-wrapping (exclusive)
_ROTATION_RUN_LOCK = 0x5357_4B45_5952_554E  # one rotation at a time, held for the whole run
_DATA_KEY_LOCK_CLASS = 0x5357_444B  # with hashtext(org_id): one creator of an organization's data key

_VALUE_AAD = b"switchboard/value/v1"
_DATA_KEY_AAD = b"switchboard/data-key/v1"
_DATA_KEY_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _length_prefixed(*parts: str) -> bytes:
    out = bytearray()
    for part in parts:
        data = part.encode("utf-8")
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def _data_key_aad(org_id: str, data_key_id: str) -> bytes:
    return _DATA_KEY_AAD + _length_prefixed(org_id, data_key_id)


def _value_aad(org_id: str, purpose: str, header: bytes) -> bytes:
    return _VALUE_AAD + _length_prefixed(org_id, purpose) + header


class Encryptor:
    """Encrypts and decrypts tenant values inside a tenant transaction (``tx``, a psycopg Connection
    with ``app.org_id`` set; any row factory). Creates an organization's data key on first use.

    Unwrapped data keys are cached in memory per (organization, data key id), up to ``cache_size``.
    Safe to share between threads.
    """

    def __init__(self, keyring: MasterKeyring, *, cache_size: int = DATA_KEY_CACHE_SIZE) -> None:
        self._keyring = keyring
        self._cache: OrderedDict[tuple[str, str], AESGCM] = OrderedDict()
        self._cache_size = max(1, cache_size)
        self._lock = threading.Lock()

    @property
    def keyring(self) -> MasterKeyring:
        """The master keyring data keys are wrapped under."""
        return self._keyring

    def __repr__(self) -> str:
        return f"Encryptor(keyring={self._keyring!r})"

    def encrypt(self, tx: psycopg.Connection, org_id: str, plaintext: bytes, purpose: str) -> bytes:
        """Encrypt ``plaintext`` for organization ``org_id`` and ``purpose`` (e.g. ``"secret:<id>"``).

        Returns the self-describing ciphertext (see the module docstring). Raises ``TypeError`` for a
        non-bytes plaintext, ``ValueError`` for an empty ``org_id`` or ``purpose``, and the store's
        errors for database or master key failures.
        """
        _check_names(org_id, purpose)
        if not isinstance(plaintext, bytes | bytearray | memoryview):
            raise TypeError(f"plaintext must be bytes, got {type(plaintext).__name__}")
        data_key_id, aead = self._current_data_key(tx, org_id)
        encoded_id = data_key_id.encode("ascii")
        header = bytes([FORMAT_VERSION, len(encoded_id)]) + encoded_id
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + aead.encrypt(nonce, bytes(plaintext), _value_aad(org_id, purpose, header))

    def decrypt(self, tx: psycopg.Connection, org_id: str, blob: bytes, purpose: str) -> bytes:
        """Decrypt ``blob`` made by ``encrypt`` for the same ``org_id`` and ``purpose``.

        Raises ``DecryptionFailed`` when the blob is malformed, names a data key this organization
        does not have, or fails authentication (another organization's or purpose's value, or a
        modified byte); ``MasterKeyMissing`` when its data key's master key is not in the keyring.
        """
        _check_names(org_id, purpose)
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise TypeError(f"blob must be bytes, got {type(blob).__name__}")
        blob = bytes(blob)
        if len(blob) < 2:
            raise DecryptionFailed(org_id, purpose, "ciphertext is truncated")
        if blob[0] != FORMAT_VERSION:
            raise DecryptionFailed(org_id, purpose, f"unknown format version {blob[0]}")
        header_end = 2 + blob[1]
        if len(blob) < header_end + NONCE_BYTES + TAG_BYTES:
            raise DecryptionFailed(org_id, purpose, "ciphertext is truncated")
        data_key_id = blob[2:header_end].decode("ascii", errors="replace")
        if not _DATA_KEY_ID.match(data_key_id):
            raise DecryptionFailed(org_id, purpose, "malformed data key id")
        aead = self._data_key(tx, org_id, data_key_id)
        if aead is None:
            raise DecryptionFailed(org_id, purpose, f"data key {data_key_id} not found for this organization")
        nonce = blob[header_end : header_end + NONCE_BYTES]
        try:
            return aead.decrypt(nonce, blob[header_end + NONCE_BYTES :], _value_aad(org_id, purpose, blob[:header_end]))
        except InvalidTag:
            raise DecryptionFailed(
                org_id, purpose, "authentication failed (another organization's or purpose's value, or modified)"
            ) from None

    def encrypt_json(self, tx: psycopg.Connection, org_id: str, value: Any, purpose: str) -> bytes:
        """``encrypt`` the compact JSON of ``value`` (a dict or any JSON value; ``TypeError``/``ValueError``
        when it is not serialisable)."""
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return self.encrypt(tx, org_id, text.encode("utf-8"), purpose)

    def decrypt_json(self, tx: psycopg.Connection, org_id: str, blob: bytes, purpose: str) -> Any:
        """``decrypt`` and parse a value made by ``encrypt_json``. Raises what ``decrypt`` raises, and
        ``DecryptionFailed`` when the decrypted bytes are not JSON."""
        plaintext = self.decrypt(tx, org_id, blob, purpose)
        try:
            return json.loads(plaintext)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DecryptionFailed(org_id, purpose, "decrypted value is not JSON") from None

    # -- data keys ------------------------------------------------------------------------------

    def _current_data_key(self, tx: psycopg.Connection, org_id: str) -> tuple[str, AESGCM]:
        # Looked up on every call rather than cached: a key created in a transaction that later
        # rolled back must never be used for a value that outlives it.
        with translate_errors():
            cursor = tx.cursor(row_factory=tuple_row)
            row = _newest_data_key(cursor, org_id)
            if row is None:
                # Shared: rotation waits for this insert. Then one creator per organization.
                cursor.execute("SELECT pg_advisory_xact_lock_shared(%s::bigint)", (_ROTATION_LOCK,))
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))", (_DATA_KEY_LOCK_CLASS, org_id)
                )
                row = _newest_data_key(cursor, org_id)
                if row is None:
                    return self._create_data_key(cursor, org_id)
        data_key_id, wrapped, master_id = row
        return data_key_id, self._unwrapped(org_id, data_key_id, master_id, wrapped)

    def _create_data_key(self, cursor: psycopg.Cursor, org_id: str) -> tuple[str, AESGCM]:
        # Read the file under the shared lock, so the active key is the one a rotation in progress set.
        self._keyring.refresh()
        data_key = os.urandom(KEY_BYTES)
        data_key_id = "dk_" + os.urandom(12).hex()
        master_id, wrapped = self._keyring.wrap(data_key, _data_key_aad(org_id, data_key_id))
        cursor.execute(
            "INSERT INTO data_keys (org_id, id, wrapped, master_key_id) VALUES (%s, %s, %s, %s)",
            (org_id, data_key_id, wrapped, master_id),
        )
        aead = AESGCM(data_key)
        self._remember(org_id, data_key_id, aead)
        return data_key_id, aead

    def _data_key(self, tx: psycopg.Connection, org_id: str, data_key_id: str) -> AESGCM | None:
        with self._lock:
            aead = self._cache.get((org_id, data_key_id))
            if aead is not None:
                self._cache.move_to_end((org_id, data_key_id))
                return aead
        with translate_errors():
            row = (
                tx.cursor(row_factory=tuple_row)
                .execute(
                    "SELECT wrapped, master_key_id FROM data_keys WHERE org_id = %s AND id = %s",
                    (org_id, data_key_id),
                )
                .fetchone()
            )
        if row is None:
            return None
        return self._unwrapped(org_id, data_key_id, row[1], row[0])

    def _unwrapped(self, org_id: str, data_key_id: str, master_id: str, wrapped: bytes) -> AESGCM:
        with self._lock:
            aead = self._cache.get((org_id, data_key_id))
        if aead is not None:
            return aead
        try:
            data_key = self._keyring.unwrap(master_id, bytes(wrapped), _data_key_aad(org_id, data_key_id))
        except DecryptionFailed as exc:
            raise DecryptionFailed(org_id, f"data key {data_key_id}", exc.reason) from None
        aead = AESGCM(data_key)
        self._remember(org_id, data_key_id, aead)
        return aead

    def _remember(self, org_id: str, data_key_id: str, aead: AESGCM) -> None:
        with self._lock:
            self._cache[(org_id, data_key_id)] = aead
            self._cache.move_to_end((org_id, data_key_id))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _newest_data_key(cursor: psycopg.Cursor, org_id: str) -> tuple[str, bytes, str] | None:
    return cursor.execute(
        "SELECT id, wrapped, master_key_id FROM data_keys WHERE org_id = %s ORDER BY created_at DESC, id DESC LIMIT 1",
        (org_id,),
    ).fetchone()


def _check_names(org_id: str, purpose: str) -> None:
    if not isinstance(org_id, str) or not org_id:
        raise ValueError("org_id must be a non-empty string")
    if not isinstance(purpose, str) or not purpose:
        raise ValueError("purpose must be a non-empty string")


# -- rotation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationReport:
    """What ``rotate_master_key`` did: data keys re-wrapped, master key ids retired, the new key's id."""

    rewrapped: int
    old_key_ids: tuple[str, ...]
    new_key_id: str


def rotate_master_key(
    admin_conninfo: str,
    keyring_path: Path,
    *,
    master_key: Any | None = None,
    new_key: Any | None = None,
) -> RotationReport:
    """Re-wrap every organization's data key under a new master key. Encrypted values are untouched
    and decrypt as before.

    With a keyring file (``master_key`` None) a new key is generated and, in a crash-safe order:
    (1) added to the file (the old key stays active), (2) every data key is re-wrapped under it in
    one transaction, (3) it becomes active, (4) data keys created meanwhile under the old key are
    re-wrapped and keys no data key uses are removed from the file. A failure at any step leaves
    every data key under a key the file still holds; running the command again completes it.

    With ``master_key`` (the ``SWITCHBOARD_MASTER_KEY`` setting) the operator supplies ``new_key``
    (base64 of 32 bytes): every data key is re-wrapped under it in one transaction, after which the
    setting must be changed to the new key. Stop the app first: until it restarts it would wrap new
    data keys under the old key (running the same rotation again re-wraps those; it is idempotent).

    ``admin_conninfo`` must connect as the owner of ``data_keys`` (row-level security does not bind
    it). Raises ``KeyRotationRefused`` (no new key for a settings key, or another rotation running),
    ``MasterKeyMissing``/``MasterKeyInvalid``/``KeyringInsecure`` for the keys, ``DecryptionFailed``
    for a data key that does not authenticate, and ``StoreError`` for database failures.
    """
    with _rotation_guard(admin_conninfo):
        if master_key is not None and _secret_text(master_key).strip():
            return _rotate_settings_key(admin_conninfo, master_key, new_key)
        if new_key is not None:
            raise KeyRotationRefused(
                f"a new key is only accepted when the master key comes from {MASTER_KEY_SETTING}; "
                f"the keyring file {keyring_path} gets a generated one"
            )
        return _rotate_keyring_file(admin_conninfo, keyring_path)


def _rotate_keyring_file(admin_conninfo: str, keyring_path: Path) -> RotationReport:
    keyring = MasterKeyring.load(keyring_path)
    new_raw = os.urandom(KEY_BYTES)
    new_id = master_key_id(new_raw)
    keys = keyring._raw_keys()
    keys[new_id] = new_raw
    keyring._saved(keys, keyring.active_key_id)  # (1)
    rewrapped, _ = _rewrap_all(admin_conninfo, keyring, new_id)  # (2)
    keyring._saved(keys, new_id)  # (3)
    stragglers, in_use = _rewrap_all(admin_conninfo, keyring, new_id)  # (4)
    retired = tuple(sorted(key_id for key_id in keys if key_id != new_id and key_id not in in_use))
    keyring._saved({key_id: key for key_id, key in keys.items() if key_id not in retired}, new_id)
    return RotationReport(rewrapped + stragglers, retired, new_id)


def _rotate_settings_key(admin_conninfo: str, master_key: Any, new_key: Any | None) -> RotationReport:
    if new_key is None or not _secret_text(new_key).strip():
        raise KeyRotationRefused(
            f"the master key comes from {MASTER_KEY_SETTING}; stop the app, put a new key "
            f"({_GENERATE_HINT}) in {NEW_MASTER_KEY_SETTING} and run the rotation again, then set "
            f"{MASTER_KEY_SETTING} to the new key and start the app"
        )
    old = MasterKeyring.from_key(master_key)
    new = MasterKeyring.from_key(new_key, source=NEW_MASTER_KEY_SETTING)
    if new.active_key_id == old.active_key_id:
        raise KeyRotationRefused(f"{NEW_MASTER_KEY_SETTING} holds the current master key")
    both = MasterKeyring(
        {**old._raw_keys(), **new._raw_keys()},
        new.active_key_id,
        source=f"{MASTER_KEY_SETTING} and {NEW_MASTER_KEY_SETTING}",
    )
    rewrapped, _ = _rewrap_all(admin_conninfo, both, new.active_key_id)
    return RotationReport(rewrapped, (old.active_key_id,), new.active_key_id)


def _rewrap_all(admin_conninfo: str, keyring: MasterKeyring, new_id: str) -> tuple[int, set[str]]:
    """In one transaction, re-wrap every data key not under ``new_id``; return how many and the
    master key ids in use afterwards. Any failure rolls the whole transaction back."""
    with connect(admin_conninfo) as conn:
        cursor = conn.cursor(row_factory=tuple_row)
        # Exclusive: waits for data key creators that read the keyring before it changed.
        cursor.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (_ROTATION_LOCK,))
        rows = cursor.execute(
            "SELECT org_id, id, wrapped, master_key_id FROM data_keys WHERE master_key_id <> %s "
            "ORDER BY org_id, id FOR UPDATE",
            (new_id,),
        ).fetchall()
        updates = []
        for org_id, data_key_id, wrapped, master_id in rows:
            aad = _data_key_aad(org_id, data_key_id)
            try:
                data_key = keyring.unwrap(master_id, bytes(wrapped), aad)
            except DecryptionFailed as exc:
                raise DecryptionFailed(org_id, f"data key {data_key_id}", exc.reason) from None
            _, rewrapped = keyring.wrap(data_key, aad, key_id=new_id)
            updates.append((rewrapped, new_id, org_id, data_key_id))
        if updates:
            cursor.executemany(
                "UPDATE data_keys SET wrapped = %s, master_key_id = %s WHERE org_id = %s AND id = %s", updates
            )
        in_use = {row[0] for row in cursor.execute("SELECT DISTINCT master_key_id FROM data_keys").fetchall()}
    return len(rows), in_use


@contextlib.contextmanager
def _rotation_guard(admin_conninfo: str) -> Iterator[None]:
    """Hold a session advisory lock for the whole rotation, refusing a second concurrent one."""
    with connect(admin_conninfo, autocommit=True) as conn:
        acquired = conn.execute("SELECT pg_try_advisory_lock(%s::bigint)", (_ROTATION_RUN_LOCK,)).fetchone()[0]
        if not acquired:
            raise KeyRotationRefused("another master key rotation is running")
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s::bigint)", (_ROTATION_RUN_LOCK,))

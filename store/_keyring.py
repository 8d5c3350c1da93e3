"""The master keyring: the keys that wrap every organization's data key.

One key comes from the ``SWITCHBOARD_MASTER_KEY`` setting, or a JSON keyring file
(``{"active": id, "keys": {id: base64}}``, mode 0600) is generated on the first local run. A
file readable by group or others is refused. Key bytes never appear in a ``repr``, an exception
or a log line. ``store._crypto`` uses the keyring to wrap data keys and to rotate them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import stat
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from store.errors import DecryptionFailed, KeyringInsecure, KeyRotationRefused, MasterKeyInvalid, MasterKeyMissing

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MASTER_KEY_SETTING = "SWITCHBOARD_MASTER_KEY"
NEW_MASTER_KEY_SETTING = "SWITCHBOARD_NEW_MASTER_KEY"
KEYRING_MODE = 0o600
_GENERATE_HINT = "generate one with: openssl rand -base64 32"

def master_key_id(key: bytes) -> str:
    """The id of master key ``key``: ``mk_`` and 12 hex digits of its SHA-256 (not reversible)."""
    return "mk_" + hashlib.sha256(key).hexdigest()[:12]


def _decode_key(text: str, source: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        # `from None`: the decoder's error could quote the offending input.
        raise MasterKeyInvalid(source, f"not standard base64; {_GENERATE_HINT}") from None
    if len(raw) != KEY_BYTES:
        raise MasterKeyInvalid(source, f"decodes to {len(raw)} bytes, expected {KEY_BYTES}; {_GENERATE_HINT}")
    return raw


def _secret_text(value: Any) -> str:
    # Accept pydantic's SecretStr without importing pydantic into the store.
    getter = getattr(value, "get_secret_value", None)
    return getter() if callable(getter) else str(value)



@dataclass(frozen=True)
class _Ring:
    """One consistent snapshot of a keyring, swapped as a whole so readers never see half an update."""

    raw: Mapping[str, bytes]
    aead: Mapping[str, AESGCM]
    active: str


def _ring(keys: Mapping[str, bytes], active: str, source: str) -> _Ring:
    if active not in keys:
        raise MasterKeyInvalid(source, f"active key {active!r} is not among the keys")
    for key_id, key in keys.items():
        if len(key) != KEY_BYTES:
            raise MasterKeyInvalid(source, f"key {key_id!r} is {len(key)} bytes, expected {KEY_BYTES}")
    return _Ring(dict(keys), {key_id: AESGCM(key) for key_id, key in keys.items()}, active)


class MasterKeyring:
    """Named 32-byte master keys, one of them active (the one new data keys are wrapped under).

    Built by ``from_settings``, ``from_key`` or ``load``. A keyring loaded from a file re-reads it
    when asked for a key it lacks (another process rotated) and before wrapping a new data key.
    """

    def __init__(self, keys: Mapping[str, bytes], active: str, *, source: str, path: Path | None = None) -> None:
        """Hold ``keys`` (id -> 32 bytes) with ``active`` among them; ``source`` names where they came
        from in error messages; ``path`` is the keyring file, if any. Raises ``MasterKeyInvalid``."""
        self._source = source
        self._path = path
        self._lock = threading.Lock()
        self._ring = _ring(keys, active, source)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, master_key: Any | None, path: Path, *, production: bool) -> MasterKeyring:
        """The keyring a process uses: ``master_key`` (base64 of 32 bytes; str or SecretStr) when set,
        else the keyring file at ``path``, generated there (mode 0600) when missing unless ``production``.

        Raises ``MasterKeyInvalid`` (malformed key or file), ``KeyringInsecure`` (file readable by
        group or others) and ``MasterKeyMissing`` (production without a key).
        """
        if master_key is not None and _secret_text(master_key).strip():
            return cls.from_key(master_key)
        if path.exists():
            return cls.load(path)
        if production:
            raise MasterKeyMissing(
                MASTER_KEY_SETTING,
                hint=f"production mode does not generate master keys; {_GENERATE_HINT}",
            )
        return cls.create(path)

    @classmethod
    def from_key(cls, master_key: Any, *, source: str = MASTER_KEY_SETTING) -> MasterKeyring:
        """A keyring of the one key ``master_key`` (base64 of 32 bytes). Raises ``MasterKeyInvalid``
        naming ``source`` when it is malformed."""
        raw = _decode_key(_secret_text(master_key), source)
        key_id = master_key_id(raw)
        return cls({key_id: raw}, key_id, source=source)

    @classmethod
    def load(cls, path: Path) -> MasterKeyring:
        """Read the keyring file at ``path`` (``{"active": id, "keys": {id: base64}}``).

        Raises ``MasterKeyMissing`` (no file), ``KeyringInsecure`` (mode allows group or others)
        and ``MasterKeyInvalid`` (malformed).
        """
        keys, active = _read_keyring(path)
        return cls(keys, active, source=str(path), path=path)

    @classmethod
    def create(cls, path: Path) -> MasterKeyring:
        """Generate a keyring with one random key at ``path`` (parent directories created, mode 0600).

        When another process creates the file first, its keyring is loaded instead, so two first
        runs never end up with different keys.
        """
        raw = os.urandom(KEY_BYTES)
        key_id = master_key_id(raw)
        try:
            _write_keyring(path, key_id, {key_id: raw}, exclusive=True)
        except FileExistsError:
            return cls.load(path)
        return cls({key_id: raw}, key_id, source=str(path), path=path)

    # -- state ----------------------------------------------------------------------------------

    @property
    def active_key_id(self) -> str:
        """Id of the key new data keys are wrapped under."""
        return self._ring.active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Ids of every key held, sorted."""
        return tuple(sorted(self._ring.raw))

    @property
    def path(self) -> Path | None:
        """The keyring file, or None for a key from settings."""
        return self._path

    @property
    def source(self) -> str:
        """Where the keys come from (a setting name or a file path), for messages."""
        return self._source

    def refresh(self) -> None:
        """Re-read the keyring file (no-op for a key from settings). Raises what ``load`` raises."""
        if self._path is None:
            return
        keys, active = _read_keyring(self._path)
        ring = _ring(keys, active, self._source)
        with self._lock:
            self._ring = ring

    def __repr__(self) -> str:
        return f"MasterKeyring(source={self._source!r}, active={self.active_key_id!r}, key_ids={list(self.key_ids)!r})"

    __str__ = __repr__

    # -- wrapping -------------------------------------------------------------------------------

    def wrap(self, data_key: bytes, aad: bytes, *, key_id: str | None = None) -> tuple[str, bytes]:
        """Encrypt ``data_key`` bound to ``aad`` under the active key (or ``key_id``).

        Returns ``(master_key_id, wrapped)`` where ``wrapped`` is nonce + ciphertext + tag.
        Raises ``MasterKeyMissing`` when ``key_id`` is not held.
        """
        ring = self._ring
        key_id = key_id or ring.active
        aead = ring.aead.get(key_id)
        if aead is None:
            raise MasterKeyMissing(self._source, key_id)
        nonce = os.urandom(NONCE_BYTES)
        return key_id, nonce + aead.encrypt(nonce, bytes(data_key), aad)

    def unwrap(self, master_key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """Decrypt a data key wrapped by ``wrap``. A file-backed keyring re-reads its file once when
        it lacks ``master_key_id`` (another process may have rotated).

        Raises ``MasterKeyMissing`` (key not held) and ``DecryptionFailed`` (authentication failed).
        """
        aead = self._ring.aead.get(master_key_id)
        if aead is None and self._path is not None:
            self.refresh()
            aead = self._ring.aead.get(master_key_id)
        if aead is None:
            raise MasterKeyMissing(self._source, master_key_id)
        wrapped = bytes(wrapped)
        what = f"data key wrapped under {master_key_id}"
        if len(wrapped) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionFailed(None, what, "wrapped key is truncated")
        try:
            return aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionFailed(None, what, "authentication failed") from None

    # -- changes (used by rotation) -------------------------------------------------------------

    def _raw_keys(self) -> dict[str, bytes]:
        return dict(self._ring.raw)

    def _saved(self, keys: Mapping[str, bytes], active: str) -> None:
        """Write ``keys`` with ``active`` to this keyring's file, then hold them."""
        if self._path is None:
            raise KeyRotationRefused(f"the master key comes from {self._source}, not a keyring file")
        ring = _ring(keys, active, self._source)
        _write_keyring(self._path, active, keys)
        with self._lock:
            self._ring = ring


def _read_keyring(path: Path) -> tuple[dict[str, bytes], str]:
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise MasterKeyMissing(source, hint="the keyring file does not exist") from None
    except OSError as exc:
        raise MasterKeyInvalid(source, f"cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        # fstat of the opened file, not stat of the path, so the checked file is the one read.
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyInvalid(source, "not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise KeyringInsecure(path, mode)
        content = handle.read()
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        # JSONDecodeError's message names a position, never the text.
        reason = f"not JSON ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise MasterKeyInvalid(source, reason) from None
    if not isinstance(document, dict):
        raise MasterKeyInvalid(source, 'expected an object {"active": id, "keys": {id: base64}}')
    active, entries = document.get("active"), document.get("keys")
    if not isinstance(active, str) or not isinstance(entries, dict) or not entries:
        raise MasterKeyInvalid(source, 'expected "active" (a key id) and "keys" (an object of id: base64 key)')
    keys: dict[str, bytes] = {}
    for key_id, text in entries.items():
        if not isinstance(text, str):
            raise MasterKeyInvalid(source, f"key {key_id!r} is not a base64 string")
        keys[key_id] = _decode_key(text, f"{source} (key {key_id!r})")
    if active not in keys:
        raise MasterKeyInvalid(source, f"active key {active!r} is not among the keys")
    return keys, active


def _write_keyring(path: Path, active: str, keys: Mapping[str, bytes], *, exclusive: bool = False) -> None:
    """Write the keyring atomically: a 0600 temporary file in the same directory, then ``os.replace``
    (or ``os.link`` when ``exclusive``, which raises ``FileExistsError`` instead of replacing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = {key_id: base64.b64encode(key).decode("ascii") for key_id, key in keys.items()}
    document = {"active": active, "keys": encoded}
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 already; fchmod guards against an unusual umask removing owner bits.
        os.fchmod(fd, KEYRING_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(document, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(temp_name, path)
        else:
            os.replace(temp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


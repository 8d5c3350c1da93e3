"""Envelope encryption against real Postgres: values, master keyrings, rotation and its crash safety.

Each test gets its own database holding just ``organizations`` and ``data_keys`` (the shape m002
creates, with its row-level security policy), because rotation re-wraps every data key in a database.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

import store
from store._crypto import Encryptor, MasterKeyring, RotationReport, master_key_id, rotate_master_key
from store.errors import (
    DecryptionFailed,
    EncryptionError,
    KeyringInsecure,
    KeyRotationRefused,
    MasterKeyInvalid,
    MasterKeyMissing,
    StoreError,
)
from switchboard.commands.keys import keys as keys_command

SCHEMA = """
CREATE TABLE organizations (id text PRIMARY KEY);
CREATE TABLE data_keys (org_id text NOT NULL REFERENCES organizations(id), id text NOT NULL, wrapped bytea NOT NULL,
  master_key_id text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (org_id, id));
ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY data_keys_tenant ON data_keys USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
"""

ORG_A, ORG_B, ORG_C = "org_aaaaaaaaaaaaaaaaaaaaaaaa", "org_bbbbbbbbbbbbbbbbbbbbbbbb", "org_cccccccccccccccccccccccc"


# Parametrize values are computed in every test process: a random one would differ between them.
FIXED_KEY_B64 = base64.b64encode(bytes(range(32))).decode()


def _key_b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def db(database_url: str) -> Iterator[str]:
    name = f"crypto_{uuid.uuid4().hex[:16]}"
    url = store.create_database(database_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        for org in (ORG_A, ORG_B, ORG_C):
            conn.execute("INSERT INTO organizations (id) VALUES (%s)", (org,))
    yield url
    store.drop_database(database_url, name)


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "master-key.json"


@contextmanager
def tenant(url: str, org_id: str) -> Iterator[psycopg.Connection]:
    """A tenant transaction the way store.Database.tenant makes one: dict rows, GUC set locally."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('app.org_id', %s, true)", (org_id,))
        yield conn


def _data_keys(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT org_id, id, master_key_id FROM data_keys ORDER BY org_id, id").fetchall()


def _file_keys(path: Path) -> dict:
    return json.loads(path.read_text())


# -- values -------------------------------------------------------------------------------------


def test_roundtrip_bytes_and_json_with_one_data_key_per_org(db: str, keyring_path: Path) -> None:
    encryptor = Encryptor(MasterKeyring.from_settings(None, keyring_path, production=False))
    with tenant(db, ORG_A) as tx:
        first = encryptor.encrypt(tx, ORG_A, b"hunter2-plaintext", "secret:sec_1")
        second = encryptor.encrypt(tx, ORG_A, b"hunter2-plaintext", "secret:sec_1")
        creds = encryptor.encrypt_json(tx, ORG_A, {"access_token": "tok-Ümlaut", "n": 1}, "connection:con_1")
    assert first != second  # fresh nonce each time
    for blob in (first, second, creds):
        assert b"hunter2" not in blob and b"tok-" not in blob
    # A cold cache reads and unwraps the data key from the table.
    fresh = Encryptor(MasterKeyring.load(keyring_path))
    with tenant(db, ORG_A) as tx:
        assert fresh.decrypt(tx, ORG_A, first, "secret:sec_1") == b"hunter2-plaintext"
        assert fresh.decrypt(tx, ORG_A, memoryview(second), "secret:sec_1") == b"hunter2-plaintext"
        assert fresh.decrypt_json(tx, ORG_A, creds, "connection:con_1") == {"access_token": "tok-Ümlaut", "n": 1}
        assert fresh.encrypt(tx, ORG_A, b"", "empty") != b""
    rows = _data_keys(db)
    assert [(org, mk) for org, _, mk in rows] == [(ORG_A, MasterKeyring.load(keyring_path).active_key_id)]
    assert rows[0][1].startswith("dk_")


def test_wrong_org_wrong_purpose_and_tampering_fail(db: str, keyring_path: Path) -> None:
    encryptor = Encryptor(MasterKeyring.from_settings(None, keyring_path, production=False))
    with tenant(db, ORG_A) as tx:
        blob = encryptor.encrypt(tx, ORG_A, b"s3cr3t-value", "secret:sec_1")
    with tenant(db, ORG_B) as tx:
        encryptor.encrypt(tx, ORG_B, b"b's own", "secret:sec_1")  # B has a data key too

    with tenant(db, ORG_A) as tx:
        with pytest.raises(DecryptionFailed, match="authentication failed") as wrong_purpose:
            encryptor.decrypt(tx, ORG_A, blob, "secret:sec_2")
        assert wrong_purpose.value.code == "decryption_failed" and wrong_purpose.value.http_status == 500
        assert "s3cr3t" not in str(wrong_purpose.value)
        with pytest.raises(DecryptionFailed, match="authentication failed"):
            encryptor.decrypt(tx, ORG_A, blob, "oauth_app:sec_1")
    # Copied into organization B: B has no data key of that id (and the AAD names A).
    with tenant(db, ORG_B) as tx:
        with pytest.raises(DecryptionFailed, match="not found"):
            encryptor.decrypt(tx, ORG_B, blob, "secret:sec_1")

    header_len = 2 + blob[1]
    with tenant(db, ORG_A) as tx:
        # One flipped bit anywhere in the nonce, ciphertext or tag.
        for index in (header_len, header_len + 12, len(blob) - 1):
            tampered = bytearray(blob)
            tampered[index] ^= 0x01
            with pytest.raises(DecryptionFailed, match="authentication failed"):
                encryptor.decrypt(tx, ORG_A, bytes(tampered), "secret:sec_1")
        with pytest.raises(DecryptionFailed, match="format version 2"):
            encryptor.decrypt(tx, ORG_A, b"\x02" + blob[1:], "secret:sec_1")
        renamed = bytearray(blob)
        renamed[5] = ord("f") if renamed[5] != ord("f") else ord("e")
        with pytest.raises(DecryptionFailed, match="not found"):
            encryptor.decrypt(tx, ORG_A, bytes(renamed), "secret:sec_1")
        with pytest.raises(DecryptionFailed, match="malformed data key id"):
            encryptor.decrypt(tx, ORG_A, blob[:2] + b"dk;drop" + blob[9:], "secret:sec_1")
        for truncated in (b"", b"\x01", blob[: header_len + 20]):
            with pytest.raises(DecryptionFailed, match="truncated"):
                encryptor.decrypt(tx, ORG_A, truncated, "secret:sec_1")
        plain = encryptor.encrypt(tx, ORG_A, b"not json", "p")
        with pytest.raises(DecryptionFailed, match="not JSON"):
            encryptor.decrypt_json(tx, ORG_A, plain, "p")
        with pytest.raises(TypeError):
            encryptor.encrypt(tx, ORG_A, "text, not bytes", "p")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            encryptor.encrypt(tx, ORG_A, b"x", "")
        with pytest.raises(ValueError):
            encryptor.encrypt_json(tx, ORG_A, {"x": float("nan")}, "p")
        assert encryptor.decrypt(tx, ORG_A, blob, "secret:sec_1") == b"s3cr3t-value"


def test_app_role_under_row_level_security(db: str, keyring_path: Path) -> None:
    role = f"crypto_app_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{password}'")
            conn.execute(f"GRANT SELECT, INSERT ON data_keys TO {role}")
    except psycopg.errors.InsufficientPrivilege:
        pytest.skip("the test database user cannot create roles")
    try:
        app_url = make_conninfo(db, user=role, password=password)
        encryptor = Encryptor(MasterKeyring.from_settings(None, keyring_path, production=False))
        with tenant(app_url, ORG_A) as tx:
            blob_a = encryptor.encrypt(tx, ORG_A, b"a-value", "secret:1")
        with tenant(app_url, ORG_B) as tx:
            encryptor.encrypt(tx, ORG_B, b"b-value", "secret:1")
            # Naming org A in code while the transaction is B's: RLS hides A's data key.
            cold = Encryptor(encryptor.keyring)
            with pytest.raises(DecryptionFailed, match="not found"):
                cold.decrypt(tx, ORG_A, blob_a, "secret:1")
        with tenant(app_url, ORG_B) as tx, pytest.raises(StoreError):
            # Creating a data key for another organization is refused by the policy's WITH CHECK.
            cold.encrypt(tx, ORG_C, b"x", "secret:1")
        with tenant(app_url, ORG_A) as tx:
            assert Encryptor(encryptor.keyring).decrypt(tx, ORG_A, blob_a, "secret:1") == b"a-value"
        assert [org for org, _, _ in _data_keys(db)] == [ORG_A, ORG_B]
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_encryptor_on_the_migrated_schema_as_the_app_role(migrated_database_url: str, keyring_path: Path) -> None:
    # Only encrypts: the session database is shared, so no rotation here.
    orgs = [f"org_{uuid.uuid4().hex[:24]}" for _ in range(2)]
    with psycopg.connect(migrated_database_url) as conn:
        for org in orgs:
            conn.execute("INSERT INTO organizations (id, name) VALUES (%s, 'crypto test')", (org,))
    encryptor = Encryptor(MasterKeyring.from_settings(None, keyring_path, production=False))
    with store.Database.from_conn_string(store.app_conninfo(migrated_database_url)) as database:
        with database.tenant(orgs[0]) as tx:
            blob = encryptor.encrypt_json(tx, orgs[0], {"token": "t0"}, "connection:con_1")
        with database.tenant(orgs[1]) as tx:
            with pytest.raises(DecryptionFailed, match="not found"):
                Encryptor(encryptor.keyring).decrypt_json(tx, orgs[0], blob, "connection:con_1")
            visible = tx.execute("SELECT count(*) AS n FROM data_keys").fetchone()
            assert (visible["n"] if isinstance(visible, dict) else visible[0]) == 0
        with database.tenant(orgs[0]) as tx:
            assert Encryptor(encryptor.keyring).decrypt_json(tx, orgs[0], blob, "connection:con_1") == {"token": "t0"}


# -- master keyrings ----------------------------------------------------------------------------


def test_keyring_file_is_generated_0600_and_reused(keyring_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        ring = MasterKeyring.from_settings(None, keyring_path, production=False)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(keyring_path.stat().st_mode) == 0o600
    document = _file_keys(keyring_path)
    assert document["active"] == ring.active_key_id and list(document["keys"]) == [ring.active_key_id]
    raw = base64.b64decode(document["keys"][ring.active_key_id])
    assert ring.active_key_id == master_key_id(raw) and len(raw) == 32
    assert [p.name for p in keyring_path.parent.iterdir()] == [keyring_path.name]  # no temp file left
    again = MasterKeyring.from_settings(None, keyring_path, production=False)
    assert again.active_key_id == ring.active_key_id
    # create() never replaces an existing keyring: it loads it.
    assert MasterKeyring.create(keyring_path).active_key_id == ring.active_key_id
    for text in (repr(ring), str(ring)):
        assert document["keys"][ring.active_key_id] not in text and raw.hex() not in text


def test_keyring_file_readable_by_others_is_refused(keyring_path: Path) -> None:
    MasterKeyring.from_settings(None, keyring_path, production=False)
    keyring_path.chmod(0o644)
    with pytest.raises(KeyringInsecure, match="chmod 600") as excinfo:
        MasterKeyring.from_settings(None, keyring_path, production=False)
    assert excinfo.value.mode == 0o644 and excinfo.value.code == "keyring_insecure"
    keyring_path.chmod(0o640)
    with pytest.raises(KeyringInsecure):
        MasterKeyring.load(keyring_path)
    keyring_path.chmod(0o600)
    MasterKeyring.load(keyring_path)


def test_production_without_a_key_is_refused(keyring_path: Path) -> None:
    with pytest.raises(MasterKeyMissing, match="SWITCHBOARD_MASTER_KEY") as excinfo:
        MasterKeyring.from_settings(None, keyring_path, production=True)
    assert excinfo.value.code == "master_key_missing"
    assert not keyring_path.exists() and not keyring_path.parent.exists()
    with pytest.raises(MasterKeyMissing):
        MasterKeyring.from_settings("  ", keyring_path, production=True)


def test_master_key_from_settings(keyring_path: Path) -> None:
    from pydantic import SecretStr

    value = _key_b64()
    ring = MasterKeyring.from_settings(SecretStr(value), keyring_path, production=True)
    assert ring.active_key_id == master_key_id(base64.b64decode(value))
    assert ring.key_ids == (ring.active_key_id,) and ring.path is None
    assert value not in repr(ring)
    assert not keyring_path.exists()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not base64 at all!", "not standard base64"),
        (base64.b64encode(b"short").decode(), "decodes to 5 bytes"),
        (base64.b64encode(bytes(range(64))).decode(), "decodes to 64 bytes"),
        ("ünïcode", "not standard base64"),
    ],
)
def test_malformed_master_key_names_the_setting_not_the_value(value: str, reason: str, keyring_path: Path) -> None:
    with pytest.raises(MasterKeyInvalid, match=reason) as excinfo:
        MasterKeyring.from_settings(value, keyring_path, production=False)
    assert "SWITCHBOARD_MASTER_KEY" in str(excinfo.value) and value not in str(excinfo.value)
    assert isinstance(excinfo.value, EncryptionError) and excinfo.value.code == "master_key_invalid"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected an object"),
        ('{"active": "mk_1", "keys": {}}', '"active"'),
        ('{"active": "mk_2", "keys": {"mk_1": "%s"}}' % FIXED_KEY_B64, "not among the keys"),
        ('{"active": "mk_1", "keys": {"mk_1": "c2hvcnQ="}}', "decodes to 5 bytes"),
        ('{"active": "mk_1", "keys": {"mk_1": 7}}', "not a base64 string"),
    ],
)
def test_malformed_keyring_file_is_refused(content: str, reason: str, keyring_path: Path) -> None:
    keyring_path.parent.mkdir(parents=True)
    keyring_path.write_text(content)
    keyring_path.chmod(0o600)
    with pytest.raises(MasterKeyInvalid, match=reason) as excinfo:
        MasterKeyring.from_settings(None, keyring_path, production=False)
    assert str(keyring_path) in str(excinfo.value)


def test_unwrap_names_a_missing_master_key(db: str) -> None:
    first = MasterKeyring.from_key(_key_b64())
    with tenant(db, ORG_A) as tx:
        blob = Encryptor(first).encrypt(tx, ORG_A, b"v", "p")
    other = MasterKeyring.from_key(_key_b64())
    with tenant(db, ORG_A) as tx, pytest.raises(MasterKeyMissing, match=first.active_key_id):
        Encryptor(other).decrypt(tx, ORG_A, blob, "p")


# -- rotation -----------------------------------------------------------------------------------


def _encrypt_samples(db: str, encryptor: Encryptor) -> dict[tuple[str, str], bytes]:
    samples = {}
    for org in (ORG_A, ORG_B):
        with tenant(db, org) as tx:
            for purpose in ("secret:one", "connection:two"):
                samples[(org, purpose)] = encryptor.encrypt(tx, org, f"{org}/{purpose}".encode(), purpose)
    return samples


def _assert_all_decrypt(db: str, encryptor: Encryptor, samples: dict[tuple[str, str], bytes]) -> None:
    for (org, purpose), blob in samples.items():
        with tenant(db, org) as tx:
            assert encryptor.decrypt(tx, org, blob, purpose) == f"{org}/{purpose}".encode()


def test_rotation_rewraps_data_keys_and_retires_the_old_key(db: str, keyring_path: Path) -> None:
    stale_ring = MasterKeyring.from_settings(None, keyring_path, production=False)
    creating_ring = MasterKeyring.load(keyring_path)
    old_id = stale_ring.active_key_id
    samples = _encrypt_samples(db, Encryptor(stale_ring))

    report = rotate_master_key(db, keyring_path)

    assert isinstance(report, RotationReport)
    assert report.rewrapped == 2 and report.old_key_ids == (old_id,) and report.new_key_id != old_id
    document = _file_keys(keyring_path)
    assert document["active"] == report.new_key_id and list(document["keys"]) == [report.new_key_id]
    assert stat.S_IMODE(keyring_path.stat().st_mode) == 0o600
    assert {mk for _, _, mk in _data_keys(db)} == {report.new_key_id}
    _assert_all_decrypt(db, Encryptor(MasterKeyring.load(keyring_path)), samples)
    # A process still holding a pre-rotation keyring wraps a new organization's data key under the
    # new active key, not the retired one, and re-reads the file for a key it lacks.
    with tenant(db, ORG_C) as tx:
        blob_c = Encryptor(creating_ring).encrypt(tx, ORG_C, b"c", "secret:one")
    assert {mk for _, _, mk in _data_keys(db)} == {report.new_key_id}
    assert stale_ring.key_ids == (old_id,)
    _assert_all_decrypt(db, Encryptor(stale_ring), samples)
    assert stale_ring.key_ids == (report.new_key_id,)

    second = rotate_master_key(db, keyring_path)
    assert second.rewrapped == 3 and second.old_key_ids == (report.new_key_id,)
    assert list(_file_keys(keyring_path)["keys"]) == [second.new_key_id]
    fresh = Encryptor(MasterKeyring.load(keyring_path))
    _assert_all_decrypt(db, fresh, samples)
    with tenant(db, ORG_C) as tx:
        assert fresh.decrypt(tx, ORG_C, blob_c, "secret:one") == b"c"


def test_failed_rewrap_loses_nothing_and_a_rerun_completes(db: str, keyring_path: Path) -> None:
    ring = MasterKeyring.from_settings(None, keyring_path, production=False)
    old_id = ring.active_key_id
    samples = _encrypt_samples(db, Encryptor(ring))
    before = _data_keys(db)
    # A data key that does not authenticate makes step (2), the re-wrap transaction, fail.
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO data_keys (org_id, id, wrapped, master_key_id) VALUES (%s, 'dk_broken', %s, %s)",
            (ORG_C, os.urandom(60), old_id),
        )

    with pytest.raises(DecryptionFailed, match="dk_broken") as excinfo:
        rotate_master_key(db, keyring_path)
    assert excinfo.value.org_id == ORG_C

    # Step (1) happened: the file holds the new key too, but the old one is still active and every
    # data key is still wrapped under it (the transaction rolled back).
    document = _file_keys(keyring_path)
    assert document["active"] == old_id and len(document["keys"]) == 2
    assert [row for row in _data_keys(db) if row[1] != "dk_broken"] == before
    _assert_all_decrypt(db, Encryptor(MasterKeyring.load(keyring_path)), samples)

    with psycopg.connect(db) as conn:
        conn.execute("DELETE FROM data_keys WHERE id = 'dk_broken'")
    report = rotate_master_key(db, keyring_path)
    # The key left over from the failed attempt is retired with the old one.
    assert report.rewrapped == 2 and len(report.old_key_ids) == 2 and old_id in report.old_key_ids
    assert list(_file_keys(keyring_path)["keys"]) == [report.new_key_id]
    _assert_all_decrypt(db, Encryptor(MasterKeyring.load(keyring_path)), samples)


def _wait_until_a_lock_is_awaited(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(400):
            waiting = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            if waiting.fetchone()[0]:
                return
            time.sleep(0.025)
    pytest.fail("rotation never waited for the open transaction that created a data key")


def test_data_key_created_while_rotation_starts_is_rewrapped(db: str, keyring_path: Path) -> None:
    ring = MasterKeyring.from_settings(None, keyring_path, production=False)
    samples = _encrypt_samples(db, Encryptor(ring))
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with tenant(db, ORG_C) as tx:
            # Wrapped under the old key; the transaction is still open when rotation begins.
            blob_c = Encryptor(MasterKeyring.load(keyring_path)).encrypt(tx, ORG_C, b"c", "secret:one")
            rotation = pool.submit(rotate_master_key, db, keyring_path)
            _wait_until_a_lock_is_awaited(db)
            assert not rotation.done()
        report = rotation.result(timeout=60)
    finally:
        pool.shutdown()
    assert report.rewrapped == 3 and report.old_key_ids == (ring.active_key_id,)
    assert {mk for _, _, mk in _data_keys(db)} == {report.new_key_id}
    fresh = Encryptor(MasterKeyring.load(keyring_path))
    _assert_all_decrypt(db, fresh, samples)
    with tenant(db, ORG_C) as tx:
        assert fresh.decrypt(tx, ORG_C, blob_c, "secret:one") == b"c"


def test_rotation_without_a_keyring_file_is_refused(db: str, keyring_path: Path) -> None:
    with pytest.raises(MasterKeyMissing, match="does not exist"):
        rotate_master_key(db, keyring_path)
    assert not keyring_path.exists()
    with pytest.raises(KeyRotationRefused, match="only accepted"):
        rotate_master_key(db, keyring_path, new_key=_key_b64())


def test_rotation_of_a_settings_key_needs_the_new_key(db: str, keyring_path: Path) -> None:
    old_value, new_value = _key_b64(), _key_b64()
    samples = _encrypt_samples(db, Encryptor(MasterKeyring.from_key(old_value)))

    with pytest.raises(KeyRotationRefused, match="SWITCHBOARD_NEW_MASTER_KEY") as excinfo:
        rotate_master_key(db, keyring_path, master_key=old_value)
    assert old_value not in str(excinfo.value) and excinfo.value.code == "key_rotation_refused"
    with pytest.raises(KeyRotationRefused, match="current master key"):
        rotate_master_key(db, keyring_path, master_key=old_value, new_key=old_value)
    with pytest.raises(MasterKeyInvalid, match="SWITCHBOARD_NEW_MASTER_KEY"):
        rotate_master_key(db, keyring_path, master_key=old_value, new_key="bad")

    report = rotate_master_key(db, keyring_path, master_key=old_value, new_key=new_value)
    assert report.rewrapped == 2 and report.new_key_id == master_key_id(base64.b64decode(new_value))
    assert report.old_key_ids == (master_key_id(base64.b64decode(old_value)),)
    assert not keyring_path.exists()
    _assert_all_decrypt(db, Encryptor(MasterKeyring.from_key(new_value)), samples)
    with tenant(db, ORG_A) as tx, pytest.raises(MasterKeyMissing):
        Encryptor(MasterKeyring.from_key(old_value)).decrypt(tx, ORG_A, samples[(ORG_A, "secret:one")], "secret:one")
    # Idempotent: running it again re-wraps nothing.
    assert rotate_master_key(db, keyring_path, master_key=old_value, new_key=new_value).rewrapped == 0


def test_concurrent_rotation_is_refused(db: str, keyring_path: Path) -> None:
    MasterKeyring.from_settings(None, keyring_path, production=False)
    from store._crypto import _ROTATION_RUN_LOCK

    with psycopg.connect(db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s::bigint)", (_ROTATION_RUN_LOCK,))
        with pytest.raises(KeyRotationRefused, match="another master key rotation"):
            rotate_master_key(db, keyring_path)
    assert len(_file_keys(keyring_path)["keys"]) == 1


# -- the command --------------------------------------------------------------------------------


def test_keys_rotate_command(db: str, keyring_path: Path, tmp_path: Path) -> None:
    ring = MasterKeyring.from_settings(None, keyring_path, production=False)
    samples = _encrypt_samples(db, Encryptor(ring))
    env = {
        "DATABASE_URL": db,
        "SWITCHBOARD_MASTER_KEY_FILE": str(keyring_path),
        "SWITCHBOARD_DATA": str(tmp_path / "data"),
        "SWITCHBOARD_MASTER_KEY": None,
        "SWITCHBOARD_NEW_MASTER_KEY": None,
    }
    result = CliRunner().invoke(keys_command, ["rotate"], env=env)
    assert result.exit_code == 0, result.output
    document = _file_keys(keyring_path)
    new_id = document["active"]
    assert f"re-wrapped 2 data key(s) under master key {new_id}" in result.output
    assert f"retired master key(s): {ring.active_key_id}" in result.output
    assert document["keys"][new_id] not in result.output
    _assert_all_decrypt(db, Encryptor(MasterKeyring.load(keyring_path)), samples)

    # With the key in SWITCHBOARD_MASTER_KEY and no new key: a one-line refusal, exit status 1.
    result = CliRunner().invoke(keys_command, ["rotate"], env={**env, "SWITCHBOARD_MASTER_KEY": _key_b64()})
    assert result.exit_code == 1
    assert "SWITCHBOARD_NEW_MASTER_KEY" in result.output and "[key_rotation_refused]" in result.output

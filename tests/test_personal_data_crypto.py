"""accounts.personal_data: masks as the SQL ones, SM4-GCM sealing, rotation, blind indexes, key files.

No database: plain data in, plain data out. The expected masks are written from the SQL of
migration 0011 (published.mask_name, published.mask_phone), not computed by the Python ones; the
byte layouts and HMACs are computed here the way the module docstring says, with the standard
library where it can, so a change of the stored format fails these tests.
"""
from __future__ import annotations

import hmac
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from accounts.personal_data import (
    OVERHEAD,
    DecryptionError,
    Keyring,
    KeyringError,
    SealingKey,
    blind_index,
    decrypt,
    encrypt,
    key_id_of,
    mask_id_number,
    mask_name,
    mask_phone,
    normalise,
    reencrypt,
)
from core.errors import InvalidInput, QiwangError

pytestmark = pytest.mark.nodb

SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
INDEX_KEY = bytes(range(32))
WHEN = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
FIXED = Keyring((SealingKey("0000a1b2", SM4_KEY, WHEN),), INDEX_KEY, WHEN)
COLUMN = "customer_personal.id_number"


# ---- masks: what the SQL of 0011 gives, read off its text

@pytest.mark.parametrize("given, masked", [
    ("张三", "张**"),
    ("欧阳修", "欧**"),
    ("李", "李**"),          # left(name, 1) || '**': one character still gets the two stars
    ("", "**"),             # '' is not NULL in PostgreSQL: left('', 1) || '**'
    ("Li Lei", "L**"),
    (" 王五", " **"),        # nothing trimmed
    ("𠮷野家", "𠮷**"),      # a character outside the BMP is one character, as PostgreSQL counts
])
def test_mask_name_as_sql(given: str, masked: str) -> None:
    assert mask_name(given) == masked


@pytest.mark.parametrize("given, masked", [
    ("13800000000", "138****0000"),
    ("13844310624", "138****0624"),
    ("0412-5550001", "041****0001"),      # not digits only: left 3 || '****' || right 4 of the text
    ("138 0000 0000", "138****0000"),
    ("+8613800000000", "+86****0000"),
    ("12345678", "123****5678"),          # length 8: the CASE's first branch, 7 of 8 shown
    ("1234567", "*******"),               # length 7: repeat('*', 7)
    ("110", "***"),
    ("", ""),                             # repeat('*', 0)
    ("１３８００００００００", "１３８****００００"),  # full-width digits: characters, not bytes
])
def test_mask_phone_as_sql(given: str, masked: str) -> None:
    assert mask_phone(given) == masked


@pytest.mark.parametrize("given, masked", [
    ("210302199001011234", "2103**********1234"),
    ("21030219900101123x", "2103**********123x"),   # case kept: the mask shows what it is given
    ("210302900101123", "2103*******1123"),         # the 15-character old form
    ("E12345678", "*********"),                     # shorter than 15: starred whole (fails closed)
    ("21030219900101", "**************"),
    ("", ""),
])
def test_mask_id_number(given: str, masked: str) -> None:
    assert mask_id_number(given) == masked


def test_masks_give_none_for_none() -> None:
    assert (mask_name(None), mask_phone(None), mask_id_number(None)) == (None, None, None)


# ---- sealing

def test_sm4_gcm_of_the_platform_is_the_rfc_8998_cipher() -> None:
    """The library's SM4-GCM against the test vector of RFC 8998, appendix A.1."""
    nonce = bytes.fromhex("00001234567800000000abcd")
    plaintext = bytes.fromhex("aa" * 8 + "bb" * 8 + "cc" * 8 + "dd" * 8 + "ee" * 8 + "ff" * 8 + "ee" * 8 + "aa" * 8)
    encryptor = Cipher(algorithms.SM4(SM4_KEY), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2"))
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    assert ciphertext.hex() == ("17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
                                "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d")
    assert encryptor.tag.hex() == "83de3541e4c2b58177e065a9bf7b62ec"


@pytest.mark.parametrize("plaintext", ["210302199001011234", "13800000000", "张三 0412-5550001", "", "𠮷"])
def test_round_trip_and_layout(plaintext: str) -> None:
    blob = encrypt(FIXED, plaintext, associated=COLUMN)
    assert OVERHEAD == 33
    assert len(blob) == 1 + 4 + 12 + len(plaintext.encode()) + 16
    assert blob[:5] == b"\x01\x00\x00\xa1\xb2"
    assert key_id_of(blob) == "0000a1b2"
    assert decrypt(FIXED, blob, associated=COLUMN) == plaintext
    assert decrypt(FIXED, memoryview(blob), associated=COLUMN) == plaintext  # as a driver may give bytea


def test_layout_is_the_documented_one() -> None:
    """A value sealed by hand as the module docstring says opens; so the format is what it says."""
    nonce = bytes(range(12))
    header = b"\x01\x00\x00\xa1\xb2"
    encryptor = Cipher(algorithms.SM4(SM4_KEY), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(header + COLUMN.encode())
    body = encryptor.update(b"210302199001011234") + encryptor.finalize()
    assert decrypt(FIXED, header + nonce + body + encryptor.tag, associated=COLUMN) == "210302199001011234"


def test_sealing_twice_gives_two_values() -> None:
    first, second = encrypt(FIXED, "13800000000"), encrypt(FIXED, "13800000000")
    assert first != second and first[5:17] != second[5:17]  # fresh nonces
    assert decrypt(FIXED, first) == decrypt(FIXED, second) == "13800000000"


def test_every_changed_byte_is_refused() -> None:
    blob = encrypt(FIXED, "210302199001011234", associated=COLUMN)
    assert len(blob) == 51
    for position in range(len(blob)):
        altered = bytearray(blob)
        altered[position] ^= 0x01
        with pytest.raises(DecryptionError):
            decrypt(FIXED, bytes(altered), associated=COLUMN)


def test_tampered_tag_names_the_column_not_the_value() -> None:
    blob = bytearray(encrypt(FIXED, "210302199001011234", associated=COLUMN))
    blob[-1] ^= 0x80
    with pytest.raises(DecryptionError) as raised:
        decrypt(FIXED, bytes(blob), associated=COLUMN)
    assert str(raised.value) == ("customer_personal.id_number: does not authenticate under key 0000a1b2: "
                                 "altered, or sealed for another column")
    assert isinstance(raised.value, QiwangError) and raised.value.http_status == 500


def test_wrong_associated_data_is_refused() -> None:
    blob = encrypt(FIXED, "13800000000", associated="valve.responsible_phone")
    with pytest.raises(DecryptionError, match="does not authenticate"):
        decrypt(FIXED, blob, associated="hazard.inspector_phone")
    with pytest.raises(DecryptionError, match="does not authenticate"):
        decrypt(FIXED, blob)
    assert decrypt(FIXED, blob, associated="valve.responsible_phone") == "13800000000"


def test_short_unknown_version_and_unknown_key_are_refused() -> None:
    with pytest.raises(DecryptionError, match=r"^x\.y: 32 bytes, shorter than any sealed value \(33\)$"):
        decrypt(FIXED, bytes(32), associated="x.y")
    blob = encrypt(FIXED, "13800000000")
    with pytest.raises(DecryptionError, match="format version 2, not 1"):
        decrypt(FIXED, b"\x02" + blob[1:])
    other = Keyring.generate()
    with pytest.raises(DecryptionError) as raised:
        decrypt(other, blob)
    assert str(raised.value) == (f"sealed value: sealed under key 0000a1b2, which the keyring does not hold "
                                 f"(it holds {other.active.id})")


def test_lone_surrogate_is_refused_with_the_column() -> None:
    with pytest.raises(InvalidInput) as raised:
        encrypt(FIXED, "138\ud800", associated="valve.responsible_phone")
    assert raised.value.field == "valve.responsible_phone"


# ---- rotation

def test_rotation_keeps_old_values_readable_and_moves_them() -> None:
    old = Keyring.generate()
    blob = encrypt(old, "210302199001011234", associated=COLUMN)
    index = blind_index(old, "210302199001011234", "id_number")

    new = old.rotated()
    assert [k.id for k in new.keys] == [old.active.id, new.active.id] and new.active.id != old.active.id
    assert old.keys == (old.active,)  # the old keyring is unchanged
    assert decrypt(new, blob, associated=COLUMN) == "210302199001011234"
    assert blind_index(new, "210302199001011234", "id_number") == index
    assert new.index_key == old.index_key

    moved = reencrypt(new, blob, associated=COLUMN)
    assert key_id_of(moved) == new.active.id != key_id_of(blob) == old.active.id
    assert len(moved) == len(blob) == 51
    assert decrypt(new, moved, associated=COLUMN) == "210302199001011234"
    assert reencrypt(new, moved, associated=COLUMN) is moved  # already under the active key: unchanged

    finished = new.without_old_keys()
    assert finished.keys == (new.active,)
    assert decrypt(finished, moved, associated=COLUMN) == "210302199001011234"
    with pytest.raises(DecryptionError, match=f"sealed under key {old.active.id}"):
        decrypt(finished, blob, associated=COLUMN)


def test_reencrypt_refuses_an_altered_value_even_under_the_active_key() -> None:
    blob = bytearray(encrypt(FIXED, "13800000000"))
    blob[20] ^= 0x01
    with pytest.raises(DecryptionError):
        reencrypt(FIXED, bytes(blob))


# ---- blind indexes

def expected_index(kind: str, canonical: str, key: bytes = INDEX_KEY) -> bytes:
    """HMAC-SM3 of kind, NUL, the canonical value: with the standard library, not the module's code."""
    return hmac.new(key, kind.encode() + b"\x00" + canonical.encode(), "sm3").digest()


@pytest.mark.parametrize("kind, written, canonical", [
    ("phone", "13800000000", "13800000000"),
    ("phone", "138 0000 0000", "13800000000"),
    ("phone", "138-0000-0000", "13800000000"),
    ("phone", "+86 138 0000 0000", "13800000000"),
    ("phone", "0086 13800000000", "13800000000"),
    ("phone", "１３８００００００００", "13800000000"),   # full-width
    ("phone", "0412-5550001", "04125550001"),
    ("phone", "+86 412 555 0001", "04125550001"),       # area code without its trunk 0
    ("phone", "+86 10 1234 5678", "01012345678"),
    ("id_number", "21030219900101123x", "21030219900101123X"),
    ("id_number", " 2103 0219 9001 0112 3X ", "21030219900101123X"),
])
def test_blind_index_of_every_writing(kind: str, written: str, canonical: str) -> None:
    assert normalise(written, kind) == canonical
    index = blind_index(FIXED, written, kind)
    assert len(index) == 32
    assert index == expected_index(kind, canonical)


def test_blind_index_separates_kinds_and_keys() -> None:
    as_phone = blind_index(FIXED, "13800000000", "phone")
    as_id = blind_index(FIXED, "13800000000", "id_number")
    assert as_phone != as_id
    assert as_phone.hex() == expected_index("phone", "13800000000").hex()
    assert blind_index(Keyring.generate(), "13800000000", "phone") != as_phone
    assert blind_index(FIXED, "13800000000", "phone") != blind_index(FIXED, "13800000001", "phone")


def test_blind_index_refuses_nothing_and_unknown_kinds() -> None:
    with pytest.raises(InvalidInput) as raised:
        blind_index(FIXED, "n/a", "phone")
    assert str(raised.value) == "phone: nothing to look up: no digits"
    with pytest.raises(InvalidInput):
        blind_index(FIXED, "  ", "id_number")
    with pytest.raises(ValueError, match="unknown kind 'name'"):
        blind_index(FIXED, "张三", "name")


# ---- key files

def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_writes_mode_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "var" / "keys" / "personal_data.json"
    keyring = Keyring.create(path)
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert os.listdir(path.parent) == ["personal_data.json"]  # no temporary file left
    assert Keyring.load(path) == keyring
    data = json.loads(path.read_text())
    assert (data["format"], data["version"], data["cipher"], data["index"]["algorithm"]) == (
        "qiwang-personal-data-keyring", 1, "SM4-GCM", "HMAC-SM3")
    [entry] = data["keys"]
    assert entry["id"] == keyring.active.id and len(entry["id"]) == 8
    assert bytes.fromhex(entry["key"]) == keyring.active.secret and len(entry["key"]) == 32
    assert bytes.fromhex(data["index"]["key"]) == keyring.index_key and len(data["index"]["key"]) == 64
    assert datetime.fromisoformat(entry["created_at"]).tzinfo is not None


def test_create_never_replaces_a_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    Keyring.create(path)
    before = path.read_bytes()
    with pytest.raises(KeyringError) as raised:
        Keyring.create(path)
    assert str(raised.value).startswith(f"{path}: already exists")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keys.json"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700 | 0o001])
def test_load_refuses_a_file_others_may_open(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    Keyring.create(path)
    path.chmod(mode)
    with pytest.raises(KeyringError) as raised:
        Keyring.load(path)
    assert str(raised.value) == (f"{path}: mode {mode:04o} lets the group or others at the keys; "
                                 f"run chmod 600 {path}")
    assert raised.value.field == str(path)


def test_load_accepts_0400(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keyring = Keyring.create(path)
    path.chmod(0o400)
    assert Keyring.load(path) == keyring


def test_save_after_rotation_replaces_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keyring = Keyring.create(path)
    blob = encrypt(keyring, "13800000000")
    rotated = keyring.rotated()
    rotated.save(path)
    assert mode_of(path) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["keys.json"]
    loaded = Keyring.load(path)
    assert loaded == rotated and loaded.active.id == rotated.active.id != keyring.active.id
    assert decrypt(loaded, blob) == "13800000000"


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    with pytest.raises(KeyringError) as raised:
        Keyring.load(missing)
    assert str(raised.value) == f"{missing}: no such key file"
    bad = tmp_path / "bad.json"
    for text, reason in [
        ("{", "is not JSON"),
        ('{"format": "other"}', "is not a keyring"),
        (FIXED.to_json().replace('"version": 1', '"version": 2'), "is a keyring of version 2"),
        (FIXED.to_json().replace(SM4_KEY.hex(), SM4_KEY.hex()[:30]), "SM4 key 0000a1b2 has 15 bytes, not 16"),
        (FIXED.to_json().replace(INDEX_KEY.hex(), "zz"), '"key" is not hex digits'),
    ]:
        bad.write_text(text)
        bad.chmod(0o600)
        with pytest.raises(KeyringError) as raised:
            Keyring.load(bad)
        message = str(raised.value)
        assert message.startswith(f"{bad}: {reason}"), message
        assert SM4_KEY.hex()[:16] not in message and INDEX_KEY.hex()[:16] not in message


def test_keyring_from_a_setting_and_no_secrets_in_repr() -> None:
    assert Keyring.from_json(FIXED.to_json(), source="QIWANG_PERSONAL_DATA_KEYS") == FIXED
    with pytest.raises(KeyringError, match=r"^QIWANG_PERSONAL_DATA_KEYS: is not JSON"):
        Keyring.from_json("not json", source="QIWANG_PERSONAL_DATA_KEYS")
    text = repr(FIXED.rotated())
    assert "0000a1b2" in text and SM4_KEY.hex() not in text and INDEX_KEY.hex() not in text

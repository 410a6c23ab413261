"""Personal data: masks, SM4 encryption at rest and blind indexes; plain data in, plain data out.

Why: PIPL (个人信息保护法 art. 51, 73) wants personal information encrypted or de-identified and
shown to no more people than need it; 密评 (GB/T 39786-2021) wants the confidentiality of important
data at rest protected with commercial cryptography. So ID numbers and phone numbers are sealed with
SM4 (GB/T 32907-2016) in GCM mode, found by an HMAC-SM3 (GB/T 32905-2016) blind index, and the keys
live in a file outside the database (`Keyring`, mode 0600 under ``var/keys/``).

What the database holds in clear is only the masked form (`mask_name`, `mask_phone`,
`mask_id_number`, computed here at write time; the first two give exactly what the SQL functions
``published.mask_name`` and ``published.mask_phone`` of migration 0011 give). Beside it: the value
sealed by `encrypt` (bytea) and its `blind_index` (bytea, for ``WHERE phone_index = :index``).
Neither tells the value without the key file.

Which columns: `PERSONAL_COLUMNS`, one declaration. For each column ``x`` of it the table has
``x`` (the mask), ``x_sealed`` and ``x_index`` (migration 0018), and CHECKs that no clear number
can be stored by any path: ``x_is_masked`` (no run of 5 digits in ``x``) and ``x_is_sealed`` (``x``
and ``x_sealed`` null together). Every writer goes through `seal_frame`, which also checks ID
numbers (core.codes.ID_NUMBER: the database cannot check a sealed value).

Sealed value, version 1 (``OVERHEAD`` = 33 bytes more than the UTF-8 plaintext)::

    byte 0        version (1)
    bytes 1-4     id of the SM4 key (the keyring's 8 hex digits)
    bytes 5-16    nonce, 12 random bytes
    bytes 17-     SM4-GCM ciphertext, then the 16-byte tag; authenticated data: bytes 0-4 and the
                  `associated` text (``table.column``), so a value cannot move to another column

Keyring file (JSON, keys in hex; the last of ``keys`` is the active one)::

    {"format": "qiwang-personal-data-keyring", "version": 1, "cipher": "SM4-GCM",
     "keys": [{"id": "1f0c9a2e", "created_at": "2026-12-04T08:00:00+00:00", "key": "<32 hex>"}, ...],
     "index": {"algorithm": "HMAC-SM3", "created_at": "2026-12-04T08:00:00+00:00", "key": "<64 hex>"}}
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pandas as pd
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.codes import ID_NUMBER
from core.errors import InvalidInput, QiwangError

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = ["INDEX_SUFFIX", "KEYRING_FILE", "KINDS", "OVERHEAD", "PERSONAL_COLUMNS", "SEALED_SUFFIX",
           "DecryptionError", "Keyring", "KeyringError", "SealingKey", "associated_with", "blind_index",
           "companion_columns", "decrypt", "encrypt", "index_column", "key_id_of", "load_keyring", "mask",
           "mask_id_number", "mask_name", "mask_phone", "normalise", "reencrypt", "row_key", "seal_frame",
           "seal_values", "sealed_column", "stored_form_constraints"]

KEYRING_FILE = Path("var/keys/personal_data.json")  # relative to the project root
KINDS = ("phone", "id_number")  # the kinds of value `normalise` and `blind_index` know

# Every column of the schema holding an ID number or a phone number, and its kind: the one
# declaration the migration (0018), the writers (`seal_frame`), the import and export (which never
# map the companions), the pii endpoint and the key rotation read. tests/test_personal_data_at_rest.py
# checks it against the catalog (every column named like a phone or an ID number).
PERSONAL_COLUMNS: dict[str, dict[str, str]] = {
    "customer_personal": {"id_number": "id_number", "contact_phone": "phone", "meter_reader_phone": "phone"},
    "valve": {"responsible_phone": "phone"},
    "regulator": {"responsible_phone": "phone"},
    "sentry": {"responsible_phone": "phone"},
    "device": {"responsible_phone": "phone"},
    "hazard": {"inspector_phone": "phone"},
    "inspection": {"inspector_phone": "phone"},
    "crew_base": {"phone": "phone"},
}
SEALED_SUFFIX, INDEX_SUFFIX = "_sealed", "_index"   # x_sealed (bytea), x_index (bytea) beside x
_ROW_KEYS = {"customer_personal": "customer_id"}     # primary keys that are not `id`

FORMAT_VERSION = 1
KEY_BYTES = 16         # SM4: 128-bit keys
INDEX_KEY_BYTES = 32   # HMAC-SM3: a key as long as the digest
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + KEY_ID_BYTES
OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES

FILE_FORMAT = "qiwang-personal-data-keyring"
FILE_VERSION = 1
CIPHER = "SM4-GCM"
INDEX_ALGORITHM = "HMAC-SM3"


class KeyringError(InvalidInput):
    """The key file (or setting) cannot be used: missing, too open, malformed, already there.

    `field` is the file's path (or the setting's name), so ``str(exc)`` reads
    ``var/keys/personal_data.json: mode 0644 lets the group or others at the keys; …``.
    Messages never quote key material.
    """


class DecryptionError(QiwangError):
    """A sealed value cannot be opened: altered, truncated, sealed for another column, or under a
    key this keyring does not hold. The server's data or keys are at fault, not the request's."""

    http_status = 500
    ogc_code = "NoApplicableCode"


# ---------------------------------------------------------------------------------------------- masks

@overload
def mask_name(text: str) -> str: ...
@overload
def mask_name(text: None) -> None: ...
def mask_name(text: str | None) -> str | None:
    """A person's name masked: its first character and ``**`` (张三 → 张**).

    Guarantees the output of ``published.mask_name`` (0011: ``left(name, 1) || '**'``) for the
    same text: characters counted as code points, nothing trimmed, ``''`` → ``'**'``.

    Parameters
    ----------
    text
        The name as stored; None (SQL NULL) gives None.
    """
    if text is None:
        return None
    return text[:1] + "**"


@overload
def mask_phone(text: str) -> str: ...
@overload
def mask_phone(text: None) -> None: ...
def mask_phone(text: str | None) -> str | None:
    """A phone number masked: first 3 and last 4 characters around ``****`` (138****0000).

    Guarantees the output of ``published.mask_phone`` (0011) for the same text: with 8 characters
    or more, ``left 3 || '****' || right 4`` whatever the characters are (``0412-5550001`` →
    ``041****0001``, spaces and ``+`` count like digits); shorter values are starred whole, one
    ``*`` per character (``110`` → ``***``, ``''`` → ``''``). Mask what `normalise` gives to get one
    mask for every way of writing a number.

    Parameters
    ----------
    text
        The number; None (SQL NULL) gives None.
    """
    if text is None:
        return None
    if len(text) >= 8:
        return text[:3] + "****" + text[-4:]
    return "*" * len(text)


@overload
def mask_id_number(text: str) -> str: ...
@overload
def mask_id_number(text: None) -> None: ...
def mask_id_number(text: str | None) -> str | None:
    """An ID number masked: first 4 and last 4 characters kept, one ``*`` for each between.

    ``210302199001011234`` → ``2103**********1234``; the 15-character old form keeps 4 + 4 too
    (birth date hidden). Fails closed: a value shorter than 15 characters (not a resident ID; a
    passport or permit number) is starred whole, since 4 + 4 would show most of it. No SQL
    function exists (the database never holds the number in clear); the SQL equivalent is
    ``CASE WHEN length(x) >= 15 THEN left(x, 4) || repeat('*', length(x) - 8) || right(x, 4)
    ELSE repeat('*', length(x)) END``. Case and spaces are kept: mask what `normalise` gives.

    Parameters
    ----------
    text
        The number; None gives None.
    """
    if text is None:
        return None
    if len(text) >= 15:
        return text[:4] + "*" * (len(text) - 8) + text[-4:]
    return "*" * len(text)


# -------------------------------------------------------------------------------------------- keyring

@dataclass(frozen=True)
class SealingKey:
    """One SM4 key of a keyring.

    Attributes
    ----------
    id
        8 lower-case hex digits, random, unique in the keyring; written in every value it seals.
    secret
        The 16 key bytes (never in a repr).
    created_at
        When it was made (UTC).
    """

    id: str
    secret: bytes = field(repr=False)
    created_at: datetime

    def __post_init__(self) -> None:
        if len(self.id) != 2 * KEY_ID_BYTES or self.id != self.id.lower() or not _is_hex(self.id):
            raise ValueError(f"key id {self.id!r} is not {2 * KEY_ID_BYTES} lower-case hex digits")
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"SM4 key {self.id} has {len(self.secret)} bytes, not {KEY_BYTES}")


@dataclass(frozen=True)
class Keyring:
    """The keys of personal data: SM4 keys to seal and open, one HMAC-SM3 key for blind indexes.

    Immutable: `rotated` and `without_old_keys` return new keyrings; `save` writes one.

    Attributes
    ----------
    keys
        Oldest first; the last is `active`, the one `encrypt` uses. The older ones stay so that
        values sealed under them still open until `reencrypt` has moved every value, after which
        `without_old_keys` drops them.
    index_key
        The HMAC-SM3 key of `blind_index` (32 bytes, never in a repr). Rotation keeps it: an index
        is looked up by equality, so a new index key would mean recomputing every index from the
        decrypted values in the same step. Replace it only that way, with a new keyring.
    index_created_at
        When the index key was made (UTC).
    """

    keys: tuple[SealingKey, ...]
    index_key: bytes = field(repr=False)
    index_created_at: datetime

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a keyring holds at least one SM4 key")
        ids = [key.id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError(f"key ids repeat: {ids}")
        if len(self.index_key) != INDEX_KEY_BYTES:
            raise ValueError(f"the index key has {len(self.index_key)} bytes, not {INDEX_KEY_BYTES}")

    @property
    def active(self) -> SealingKey:
        """The newest key: what `encrypt` and `reencrypt` seal with."""
        return self.keys[-1]

    def key(self, key_id: str) -> SealingKey | None:
        """The key of id `key_id` (8 hex digits), or None when this keyring does not hold it."""
        return next((key for key in self.keys if key.id == key_id), None)

    @classmethod
    def generate(cls) -> Keyring:
        """A new keyring in memory: one SM4 key and one index key from the OS's random source."""
        now = _now()
        return cls((_new_key(set(), now),), secrets.token_bytes(INDEX_KEY_BYTES), now)

    def rotated(self) -> Keyring:
        """This keyring with a new active SM4 key; the old keys and the index key kept.

        Save it before sealing anything with it (a value sealed under a key that is in no file is
        lost).
        """
        new = _new_key({key.id for key in self.keys}, _now())
        return Keyring((*self.keys, new), self.index_key, self.index_created_at)

    def without_old_keys(self) -> Keyring:
        """This keyring with only its active SM4 key: once `reencrypt` has moved every value."""
        return Keyring((self.active,), self.index_key, self.index_created_at)

    # ---- files and text

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Keyring:
        """A new keyring (`generate`) written to `path`, which must not exist yet.

        The file is written as `save` does (mode 0600, atomically; a missing parent directory is
        made with mode 0700). An existing file is never replaced: it holds the keys of what is
        already sealed (rotate it instead).

        Raises
        ------
        KeyringError
            The file exists, or cannot be written.
        """
        keyring = cls.generate()
        keyring._write(Path(path), replace=False)
        return keyring

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyring:
        """The keyring of the file `path`, refused unless only its owner may read and write it.

        Raises
        ------
        KeyringError
            The file is missing, not a regular file, unreadable, readable or writable by the group
            or others (any of mode 0077: the message names the mode and the ``chmod``), or not a
            keyring (`from_json`).
        """
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KeyringError(str(path), "no such key file") from None
        except OSError as exc:
            raise KeyringError(str(path), f"cannot be read ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as file:
            status = os.fstat(file.fileno())  # of the file opened, not of the name: no race
            if not stat.S_ISREG(status.st_mode):
                raise KeyringError(str(path), "is not a regular file")
            mode = stat.S_IMODE(status.st_mode)
            if mode & 0o077:
                raise KeyringError(str(path), f"mode {mode:04o} lets the group or others at the keys; "
                                              f"run chmod 600 {path}")
            raw = file.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyringError(str(path), "is not UTF-8 text") from None
        return cls.from_json(text, source=str(path))

    @classmethod
    def from_json(cls, text: str, *, source: str) -> Keyring:
        """The keyring written as `to_json` writes it (the file's text, or a setting holding it).

        Parameters
        ----------
        text
            The JSON document (module docstring).
        source
            Where it came from (a path, a setting's name), for the message of an error.

        Raises
        ------
        KeyringError
            Not JSON, not a keyring of this format and version, or a key of the wrong length.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KeyringError(source, f"is not JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise KeyringError(source, f'is not a keyring (no "format": "{FILE_FORMAT}")')
        if data.get("version") != FILE_VERSION or data.get("cipher") != CIPHER:
            raise KeyringError(source, f"is a keyring of version {data.get('version')!r}, cipher "
                                       f"{data.get('cipher')!r}; this Qiwang reads version {FILE_VERSION}, {CIPHER}")
        try:
            entries = _member(data, "keys", list)
            keys = tuple(SealingKey(_member(e, "id", str), _hex_member(e, "key"), _time_member(e, "created_at"))
                         for e in entries)
            index = _member(data, "index", dict)
            if index.get("algorithm") != INDEX_ALGORITHM:
                raise ValueError(f'index: "algorithm" is not "{INDEX_ALGORITHM}"')
            return cls(keys, _hex_member(index, "key"), _time_member(index, "created_at"))
        except ValueError as exc:
            raise KeyringError(source, str(exc)) from None

    def to_json(self) -> str:
        """The keyring as the JSON of the key file (module docstring), keys in hex."""
        return json.dumps({
            "format": FILE_FORMAT, "version": FILE_VERSION, "cipher": CIPHER,
            "keys": [{"id": key.id, "created_at": key.created_at.isoformat(), "key": key.secret.hex()}
                     for key in self.keys],
            "index": {"algorithm": INDEX_ALGORITHM, "created_at": self.index_created_at.isoformat(),
                      "key": self.index_key.hex()},
        }, indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the keyring to `path`, replacing the file atomically.

        A temporary file of mode 0600 in the same directory is written, flushed to disk and renamed
        over `path`, so a reader sees the old keyring or the new one, never a part. A missing
        parent directory is made with mode 0700 (an existing one is left as it is).

        Raises
        ------
        KeyringError
            The directory or the file cannot be written.
        """
        self._write(Path(path), replace=True)

    def _write(self, path: Path, *, replace: bool) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise KeyringError(str(path), f"cannot be written ({exc.strerror})") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                os.fchmod(file.fileno(), 0o600)
                file.write(self.to_json())
                file.flush()
                os.fsync(file.fileno())
            if replace:
                os.replace(temporary, path)
            else:
                os.link(temporary, path)  # fails if `path` exists, atomically
                os.unlink(temporary)
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except FileExistsError:
            raise KeyringError(str(path), "already exists: it holds the keys of what is sealed; "
                                          "rotate it rather than create another") from None
        except OSError as exc:
            raise KeyringError(str(path), f"cannot be written ({exc.strerror})") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


# ------------------------------------------------------------------------------- sealing and opening

def encrypt(keyring: Keyring, plaintext: str, *, associated: str = "") -> bytes:
    """`plaintext` sealed with SM4-GCM under the keyring's active key (format: module docstring).

    Guarantees: a fresh random nonce every call (sealing a value twice gives two different
    results); ``len(result) == OVERHEAD + len(plaintext.encode())``; only `decrypt` with a keyring
    holding the key and the same `associated` opens it, and any changed byte is detected.

    Parameters
    ----------
    keyring
        Its `Keyring.active` key seals.
    plaintext
        The value, as it is to be given back (`normalise` it first for a canonical form).
    associated
        Bound to the result without being stored in it: the place it belongs, ``table.column``.

    Raises
    ------
    InvalidInput
        `plaintext` holds a lone surrogate (not Unicode); the field is `associated`.
    """
    key = keyring.active
    header = bytes([FORMAT_VERSION]) + bytes.fromhex(key.id)
    nonce = secrets.token_bytes(NONCE_BYTES)
    encryptor = Cipher(algorithms.SM4(key.secret), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(header + associated.encode("utf-8"))
    body = encryptor.update(_utf8(plaintext, associated or "plaintext")) + encryptor.finalize()
    return header + nonce + body + encryptor.tag


def decrypt(keyring: Keyring, blob: bytes | bytearray | memoryview, *, associated: str = "") -> str:
    """The plaintext of a value sealed by `encrypt` with the same `associated`.

    Parameters
    ----------
    keyring
        Must hold the key the value was sealed under (old keys included).
    blob
        The sealed value (a bytea as the driver gives it).
    associated
        As given to `encrypt` (``table.column``).

    Raises
    ------
    DecryptionError
        Too short, an unknown format version, a key id the keyring does not hold, or a value that
        does not authenticate (a byte changed, or sealed with another `associated`).
    """
    data = bytes(blob)
    key = keyring.key(key_id_of(data, associated=associated))
    if key is None:
        raise DecryptionError(f"{associated or 'sealed value'}: sealed under key {key_id_of(data)}, which the "
                              f"keyring does not hold (it holds {', '.join(k.id for k in keyring.keys)})")
    nonce, tag = data[HEADER_BYTES:HEADER_BYTES + NONCE_BYTES], data[-TAG_BYTES:]
    body = data[HEADER_BYTES + NONCE_BYTES:-TAG_BYTES]
    decryptor = Cipher(algorithms.SM4(key.secret), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(data[:HEADER_BYTES] + associated.encode("utf-8"))
    try:
        plain = decryptor.update(body) + decryptor.finalize()
    except InvalidTag:
        raise DecryptionError(f"{associated or 'sealed value'}: does not authenticate under key {key.id}: "
                              "altered, or sealed for another column") from None
    return plain.decode("utf-8")


def reencrypt(keyring: Keyring, blob: bytes | bytearray | memoryview, *, associated: str = "") -> bytes:
    """The value sealed under the keyring's active key: `blob` itself when it already is.

    The value is opened (and so authenticated) either way, so a rotation run also finds altered
    values. Compare the result with `blob` to know whether the row needs writing.

    Raises
    ------
    DecryptionError
        As `decrypt`.
    """
    data = bytes(blob)
    plaintext = decrypt(keyring, data, associated=associated)
    if key_id_of(data) == keyring.active.id:
        return data
    return encrypt(keyring, plaintext, associated=associated)


def key_id_of(blob: bytes | bytearray | memoryview, *, associated: str = "") -> str:
    """The id of the key a sealed value names (8 hex digits), without opening it.

    For counting what a rotation has still to move (in SQL: ``encode(substring(col from 2 for 4),
    'hex')``). `associated` only names the value in an error.

    Raises
    ------
    DecryptionError
        Shorter than `OVERHEAD` or of an unknown format version.
    """
    data = bytes(blob)
    where = associated or "sealed value"
    if len(data) < OVERHEAD:
        raise DecryptionError(f"{where}: {len(data)} bytes, shorter than any sealed value ({OVERHEAD})")
    if data[0] != FORMAT_VERSION:
        raise DecryptionError(f"{where}: format version {data[0]}, not {FORMAT_VERSION}")
    return data[1:HEADER_BYTES].hex()


# ----------------------------------------------------------------------------------- blind indexes

def normalise(value: str, kind: str) -> str:
    """The canonical form of a value for look-up: what `blind_index` hashes.

    Both kinds: Unicode NFKC first (full-width digits and spaces become ASCII).

    - ``phone``: digits only (``138 0000 0000``, ``138-0000-0000`` → ``13800000000``). A leading
      China country code (``+86``, ``0086``, ``86``) before a full number is dropped before a
      mobile (``+86 138 0000 0000`` → ``13800000000``) and becomes the trunk ``0`` before an area
      code (``+86 412 555 0001`` → ``04125550001``); no domestic number of 12-13 digits starts
      with 86, so nothing else changes.
    - ``id_number``: without whitespace, upper case (the check character ``x`` → ``X``).

    Raises
    ------
    ValueError
        `kind` is not one of `KINDS`.
    """
    text = unicodedata.normalize("NFKC", value)
    if kind == "phone":
        digits = "".join(c for c in text if c in "0123456789")
        if digits.startswith("0086"):
            digits = digits[2:]
        if digits.startswith("86") and len(digits) in (12, 13):
            rest = digits[2:]
            return rest if len(rest) == 11 and rest.startswith("1") else "0" + rest
        return digits
    if kind == "id_number":
        return "".join(text.split()).upper()
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")


def blind_index(keyring: Keyring, value: str, kind: str) -> bytes:
    """A keyed index of a value for exact look-up: HMAC-SM3 of ``kind``, NUL, `normalise` (value).

    Guarantees: 32 bytes; equal for every way of writing the same value (``138 0000 0000`` and
    ``13800000000``); different across kinds for the same characters (domain separated by
    `kind`) and across index keys; unchanged by `Keyring.rotated` (the index key is not rotated).
    Without the key it tells nothing, not even on a guessed value (unlike a plain hash of an
    11-digit phone, which anyone can enumerate).

    Parameters
    ----------
    keyring
        Its `Keyring.index_key` keys the HMAC.
    value
        As the user typed it, or as stored.
    kind
        One of `KINDS`: ``phone``, ``id_number``.

    Raises
    ------
    InvalidInput
        Nothing is left after normalising (a phone without digits): the field is `kind`.
    ValueError
        An unknown `kind`.
    """
    canonical = normalise(value, kind)
    if not canonical:
        raise InvalidInput(kind, "nothing to look up: no digits" if kind == "phone" else "nothing to look up")
    mac = hmac.HMAC(keyring.index_key, hashes.SM3())
    mac.update(kind.encode("ascii") + b"\x00" + _utf8(canonical, kind))
    return mac.finalize()


# ------------------------------------------------------------------------------------------ helpers

def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _new_key(taken: set[str], now: datetime) -> SealingKey:
    while (key_id := secrets.token_hex(KEY_ID_BYTES)) in taken:
        pass
    return SealingKey(key_id, secrets.token_bytes(KEY_BYTES), now)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _utf8(text: str, field_name: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field_name, "contains a lone UTF-16 surrogate (not valid Unicode)") from None


def _member(data: Any, name: str, kind: type) -> Any:
    if not isinstance(data, dict) or not isinstance(data.get(name), kind):
        raise ValueError(f'"{name}" is missing or not a JSON {_JSON_TYPES[kind]}')
    return data[name]


_JSON_TYPES: dict[type, str] = {list: "array", dict: "object", str: "string"}


def _hex_member(data: dict[str, Any], name: str) -> bytes:
    text = _member(data, name, str)
    if len(text) % 2 or not _is_hex(text):
        raise ValueError(f'"{name}" is not hex digits')
    return bytes.fromhex(text)


def _time_member(data: dict[str, Any], name: str) -> datetime:
    try:
        return datetime.fromisoformat(_member(data, name, str))
    except ValueError:
        raise ValueError(f'"{name}" is not an ISO 8601 date and time') from None


# ------------------------------------------------------------------------ the columns of the schema

def sealed_column(column: str) -> str:
    """The name of the column holding `column` sealed: ``phone`` → ``phone_sealed``."""
    return column + SEALED_SUFFIX


def index_column(column: str) -> str:
    """The name of the column holding the blind index of `column`: ``phone`` → ``phone_index``."""
    return column + INDEX_SUFFIX


def associated_with(table: str, column: str) -> str:
    """The authenticated data a value of `table`.`column` is sealed with: ``table.column``."""
    return f"{table}.{column}"


def companion_columns(table: str) -> frozenset[str]:
    """The sealed and index columns of `table` (empty for a table without personal columns): never
    exported, imported, mapped or published."""
    return frozenset(name for column in PERSONAL_COLUMNS.get(table, {})
                     for name in (sealed_column(column), index_column(column)))


def stored_form_constraints(table: str) -> dict[str, str]:
    """The CHECK constraints of `table` about the stored form of its personal columns (name →
    column): ``x_is_masked`` and ``x_is_sealed``. `seal_frame` satisfies them by construction; they
    say nothing about a clear value before sealing (ingest/value_checks.py leaves them out)."""
    return {name: column for column in PERSONAL_COLUMNS.get(table, {})
            for name in (f"{column}_is_masked", f"{column}_is_sealed")}


def row_key(table: str) -> str:
    """The primary key column of a table of `PERSONAL_COLUMNS` (``customer_id`` or ``id``)."""
    return _ROW_KEYS.get(table, "id")


def mask(value: str | None, kind: str) -> str | None:
    """`value` masked as its kind is: `mask_phone` or `mask_id_number` (None stays None).

    The value is masked as given, not normalised: a mask masked again is the same mask, so a layer
    exported (masked) and imported again keeps its masks.
    """
    if kind == "phone":
        return mask_phone(value)
    if kind == "id_number":
        return mask_id_number(value)
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")


# --------------------------------------------------------------------------------- writing frames

def seal_values(keyring: Keyring, values: list[str | None], kind: str, *, associated: str
                ) -> tuple[list[str | None], list[bytes | None], list[bytes | None]]:
    """The stored form of `values` (one column's): masks, sealed values, blind indexes.

    None stays None in all three; a value with nothing to index (a phone without a digit) gets no
    index. Blind indexes are computed once per distinct value. The values are not checked here
    (`seal_frame` does, for ID numbers).

    Parameters
    ----------
    keyring
        Seals with its active key, indexes with its index key.
    values
        Clear values, as they are to be given back.
    kind
        One of `KINDS`.
    associated
        ``table.column`` (`associated_with`).
    """
    indexes: dict[str, bytes | None] = {}

    def index(value: str) -> bytes | None:
        if value not in indexes:
            indexes[value] = blind_index(keyring, value, kind) if normalise(value, kind) else None
        return indexes[value]

    masks = [None if v is None else mask(v, kind) for v in values]
    sealed = [None if v is None else encrypt(keyring, v, associated=associated) for v in values]
    return masks, sealed, [None if v is None else index(v) for v in values]


def seal_frame(table: str, frame: pd.DataFrame, keyring: Keyring) -> pd.DataFrame:
    """`frame` (rows for `table`) as they are to be stored: personal columns masked and sealed.

    For each column ``x`` of `PERSONAL_COLUMNS` [`table`] the frame holds: ``x`` becomes its mask,
    and ``x_sealed`` and ``x_index`` are added (overwritten if present) as PostgreSQL's hex text of
    a bytea (``\\x0100…``), which COPY and a text parameter of an INSERT both take. Other columns and
    tables without personal columns are returned as they are. Missing values (None, NaN, NA) stay
    missing in all three. `frame` itself is not changed.

    Guarantees: the result satisfies the CHECKs ``x_is_masked`` and ``x_is_sealed`` of migration
    0018; ``decrypt(keyring, x_sealed, associated="table.x")`` of the stored bytea gives back the
    value as given.
    About 8 µs per value and column (an SM4-GCM sealing and an HMAC-SM3 each): 300,000 rows of
    three distinct columns in about 8 s.

    Raises
    ------
    InvalidInput
        A value that is not text, or an ID number that is not one (core.codes.ID_NUMBER, GB 11643:
        the check the database made before the values were sealed). The field is ``table.column``;
        the message counts and locates the bad values (1-based rows) but never quotes one.
    """
    columns = {c: kind for c, kind in PERSONAL_COLUMNS.get(table, {}).items() if c in frame.columns}
    if not columns:
        return frame
    out = frame.copy(deep=False)
    for column, kind in columns.items():
        where = associated_with(table, column)
        raw = frame[column].to_numpy(dtype=object)
        missing = pd.isna(raw)
        not_text = np.flatnonzero(~missing & ~np.array([isinstance(v, str) for v in raw], dtype=bool))
        if len(not_text):
            raise InvalidInput(where, f"row {not_text[0] + 1}: not text{_more(len(not_text))}")
        values: list[str | None] = [None if gone else str(v) for v, gone in zip(raw, missing, strict=True)]
        if kind == "id_number":
            bad = np.flatnonzero([v is not None and not ID_NUMBER.is_valid(v) for v in values])
            if len(bad):
                raise InvalidInput(where, f"row {bad[0] + 1}: not {ID_NUMBER.article} {ID_NUMBER.name} "
                                          f"({ID_NUMBER.description}){_more(len(bad))}")
        masks, sealed, indexes = seal_values(keyring, values, kind, associated=where)
        out[column] = pd.Series(masks, index=frame.index, dtype=object)
        out[sealed_column(column)] = pd.Series([_bytea_text(b) for b in sealed], index=frame.index, dtype=object)
        out[index_column(column)] = pd.Series([_bytea_text(b) for b in indexes], index=frame.index, dtype=object)
    return out


def _more(bad: int) -> str:
    return "" if bad == 1 else f"; {bad - 1:,} more rows like it"


def _bytea_text(data: bytes | None) -> str | None:
    return None if data is None else "\\x" + data.hex()


# ------------------------------------------------------------------------ the deployment's keyring

def load_keyring(settings: Settings | None = None, *, create: bool = True) -> Keyring:
    """The keyring of the deployment: the file of the `personal_data_key_file` setting.

    Parameters
    ----------
    settings
        Default: read from the environment now (core.settings.load_settings).
    create
        Make the file (`Keyring.create`) when it does not exist: what the migration and the
        writers do, so that a new deployment needs no step of its own. Readers (the pii endpoint,
        the key rotation) pass False: a missing keyring there means the data cannot be opened, and
        a new one would not open it either.

    Raises
    ------
    KeyringError
        The file cannot be read, is too open or is no keyring (`Keyring.load`), or is missing and
        `create` is False, or cannot be made.
    """
    if settings is None:
        from core.settings import load_settings

        settings = load_settings()
    path = Path(settings.personal_data_key_file)
    if create and not os.path.lexists(path):
        try:
            return Keyring.create(path)
        except KeyringError:
            if not os.path.lexists(path):
                raise
            # made by another process meanwhile (two migrations at once): theirs is the keyring
    return Keyring.load(path)

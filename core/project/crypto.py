"""Keys and ciphers for a project.

- The passphrase gives a key-encryption key through Argon2id (cryptography's `Argon2id`).
- A random 256-bit data key is stored wrapped under it with AES-256-GCM. The associated data is the
  canonical JSON of the header (format version and KDF parameters), so a downgraded header fails.
- Subkeys for fields, dedupe hashes, the audit chain and artifacts come from the data key by HKDF, so
  one key is never used for two purposes.
- Fields: AES-256-GCM, fresh 96-bit nonce, associated data = "table|column|row" so a ciphertext moved
  to another row or column fails to decrypt.
- Artifacts: Cobblestone-256 streaming AEAD (cryptography >= 50), which detects truncation and reordering.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import IntegrityError, UserError, WrongPassphrase

FORMAT_VERSION = 1
HEADER_MAGIC = "rlhf-studio-key"
# RFC 9106 "second recommended" (low-memory) profile. Never accept weaker parameters from a header.
KDF_DEFAULTS = {"name": "argon2id", "iterations": 3, "memory_kib": 64 * 1024, "lanes": 4}
KDF_MINIMUM = {"iterations": 3, "memory_kib": 64 * 1024, "lanes": 1}
FIELD_VERSION = b"\x01"
NONCE_BYTES = 12


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def derive_kek(passphrase: str, salt: bytes, kdf: dict) -> bytes:
    return Argon2id(
        salt=salt,
        length=32,
        iterations=int(kdf["iterations"]),
        lanes=int(kdf["lanes"]),
        memory_cost=int(kdf["memory_kib"]),
    ).derive(passphrase.encode("utf-8"))


def _header_ad(header: dict) -> bytes:
    return _canonical({k: v for k, v in header.items() if k != "wrapped_key"})


def new_key_header(passphrase: str, data_key: bytes, project_id: str, kdf: dict | None = None) -> dict:
    """A fresh header wrapping `data_key` under `passphrase` (new salt, new nonce)."""
    if not passphrase:
        raise UserError("The passphrase must not be empty.")
    kdf = dict(kdf or KDF_DEFAULTS)
    salt = os.urandom(16)
    header = {
        "magic": HEADER_MAGIC,
        "format_version": FORMAT_VERSION,
        "project_id": project_id,
        "kdf": {**kdf, "salt": salt.hex()},
        "cipher": "aes-256-gcm",
    }
    nonce = os.urandom(NONCE_BYTES)
    kek = derive_kek(passphrase, salt, kdf)
    header["wrapped_key"] = (nonce + AESGCM(kek).encrypt(nonce, data_key, _header_ad(header))).hex()
    return header


def unwrap_data_key(header: dict, passphrase: str, where: str = "key.json") -> bytes:
    """The data key, or WrongPassphrase / IntegrityError with a message naming the problem."""
    try:
        if header.get("magic") != HEADER_MAGIC:
            raise IntegrityError(f"{where}: not an RLHF Studio key file.")
        if header.get("format_version") != FORMAT_VERSION:
            raise IntegrityError(
                f"{where}: format version {header.get('format_version')!r} is not supported "
                f"(this app reads version {FORMAT_VERSION})."
            )
        kdf = header["kdf"]
        if kdf.get("name") != "argon2id":
            raise IntegrityError(f"{where}: unknown key derivation {kdf.get('name')!r}.")
        for field, minimum in KDF_MINIMUM.items():
            if int(kdf[field]) < minimum:
                raise IntegrityError(
                    f"{where}: key-derivation parameter {field}={kdf[field]} is below the minimum "
                    f"{minimum}; the header was altered (downgrade rejected)."
                )
        if int(kdf["memory_kib"]) > 4 * 1024 * 1024 or int(kdf["iterations"]) > 64:
            raise IntegrityError(f"{where}: key-derivation parameters are out of range.")
        salt = bytes.fromhex(kdf["salt"])
        blob = bytes.fromhex(header["wrapped_key"])
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"{where}: the key file is damaged ({exc.__class__.__name__}).") from None
    kek = derive_kek(passphrase, salt, kdf)
    try:
        return AESGCM(kek).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _header_ad(header))
    except InvalidTag:
        raise WrongPassphrase(
            "Wrong passphrase (or the project's key file was altered). Nothing was changed."
        ) from None


def _hkdf(data_key: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(data_key)


@dataclass(frozen=True)
class Keys:
    """Subkeys derived from the data key; each has one purpose."""

    field: bytes
    dedupe: bytes
    audit: bytes
    artifact: bytes

    @classmethod
    def from_data_key(cls, data_key: bytes) -> "Keys":
        return cls(
            field=_hkdf(data_key, "rlhf-studio field v1"),
            dedupe=_hkdf(data_key, "rlhf-studio dedupe v1"),
            audit=_hkdf(data_key, "rlhf-studio audit v1"),
            artifact=_hkdf(data_key, "rlhf-studio artifact v1"),
        )


class FieldCipher:
    """AES-256-GCM for one content field, bound to its table, column and row."""

    def __init__(self, keys: Keys):
        self._aead = AESGCM(keys.field)
        self._dedupe_key = keys.dedupe
        self._pool = threading.local()

    @staticmethod
    def _ad(table: str, column: str, row: Any) -> bytes:
        return f"{table}|{column}|{row}".encode()

    def _nonce(self) -> bytes:
        # Random nonces drawn from the OS in blocks: one syscall per 4096 fields, not one per field.
        pool = getattr(self._pool, "data", b"")
        pos = getattr(self._pool, "pos", 0)
        if pos + NONCE_BYTES > len(pool):
            pool, pos = os.urandom(NONCE_BYTES * 4096), 0
            self._pool.data = pool
        self._pool.pos = pos + NONCE_BYTES
        return pool[pos : pos + NONCE_BYTES]

    def encrypt(self, table: str, column: str, row: Any, value: str | None) -> bytes | None:
        if value is None:
            return None
        nonce = self._nonce()
        return (
            FIELD_VERSION + nonce + self._aead.encrypt(nonce, value.encode("utf-8"), f"{table}|{column}|{row}".encode())
        )

    def decrypt(self, table: str, column: str, row: Any, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        blob = bytes(blob)
        if blob[:1] != FIELD_VERSION:
            raise IntegrityError(f"Damaged data in {table}.{column} (row {row}): unknown field format.")
        try:
            plain = self._aead.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], self._ad(table, column, row))
        except InvalidTag:
            raise IntegrityError(
                f"Damaged or tampered data in {table}.{column} (row {row}): authentication failed."
            ) from None
        return plain.decode("utf-8")

    def encrypt_json(self, table: str, column: str, row: Any, value: Any) -> bytes | None:
        return None if value is None else self.encrypt(table, column, row, json.dumps(value))

    def decrypt_json(self, table: str, column: str, row: Any, blob: bytes | None) -> Any:
        text = self.decrypt(table, column, row, blob)
        return None if text is None else json.loads(text)

    def keyed_hash(self, *parts: str) -> bytes:
        """HMAC-SHA256 for dedupe: equal inputs match, nothing about the text is revealed."""
        # Parts are a fixed purpose tag then values; NUL cannot occur in the tags, so joining is unambiguous
        # for the (tag, text) pairs we hash.
        return hmac.digest(self._dedupe_key, "\0".join(parts).encode("utf-8"), "sha256")


# ---- artifacts: streaming AEAD -------------------------------------------------------------------

ARTIFACT_MAGIC = b"RLHFART1"
_CHUNK = 1 << 20


def _artifact_context(project_id: str, artifact_id: int) -> bytes:
    return f"rlhf-studio artifact v1 {project_id} {artifact_id}".encode()


def encrypt_files(keys: Keys, project_id: str, artifact_id: int, files: dict[str, bytes], out: BinaryIO) -> int:
    """Write `files` as one encrypted stream: a JSON index, then the contents. Returns bytes written."""
    from cryptography.cobblestone import Cobblestone256Encryptor

    index = _canonical({"files": [[name, len(data)] for name, data in files.items()]})
    enc = Cobblestone256Encryptor(keys.artifact, context=_artifact_context(project_id, artifact_id))
    written = out.write(ARTIFACT_MAGIC)
    written += out.write(enc.update(len(index).to_bytes(8, "big") + index))
    for data in files.values():
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            written += out.write(enc.update(view[start : start + _CHUNK]))
    written += out.write(enc.finalize())
    return written


def decrypt_files(keys: Keys, project_id: str, artifact_id: int, src: BinaryIO, where: str) -> dict[str, bytes]:
    from cryptography.cobblestone import Cobblestone256Decryptor

    if src.read(len(ARTIFACT_MAGIC)) != ARTIFACT_MAGIC:
        raise IntegrityError(f"{where}: not an artifact of this app, or damaged.")
    dec = Cobblestone256Decryptor(keys.artifact, context=_artifact_context(project_id, artifact_id))
    parts: list[bytes] = []
    try:
        while chunk := src.read(_CHUNK):
            parts.append(dec.update(chunk))
        parts.append(dec.finalize())
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(
            f"{where}: the artifact is truncated, damaged or tampered with ({exc.__class__.__name__})."
        ) from None
    plain = b"".join(parts)
    n = int.from_bytes(plain[:8], "big")
    index = json.loads(plain[8 : 8 + n])
    files, pos = {}, 8 + n
    for name, size in index["files"]:
        files[name] = plain[pos : pos + size]
        pos += size
    return files


def audit_mac(keys: Keys, previous: bytes, fields: Iterator[str] | list[str]) -> bytes:
    mac = hmac.new(keys.audit, previous, hashlib.sha256)
    for part in fields:
        data = str(part).encode("utf-8")
        mac.update(len(data).to_bytes(8, "big") + data)
    return mac.digest()

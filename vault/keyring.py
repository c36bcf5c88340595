"""The vault's keys: AES-256-GCM keys named by id; the first encrypts, every one decrypts. They wrap bot
tokens and users' data keys. The token id (the data key id) is the associated data, so a ciphertext copied
onto another row does not decrypt."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from settings import Settings
from vault.errors import KeyRingError

log = logging.getLogger(__name__)

NONCE_BYTES = 12
KEY_FILE_NAME = "token-keys"


@dataclass(frozen=True)
class VaultKey:
    key_id: str
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


def _associated_data(token_id: UUID) -> bytes:
    return b"deep-bot-token:" + token_id.bytes


class KeyRing:
    """The vault's keys: the first encrypts, every one decrypts."""

    def __init__(self, keys: Sequence[VaultKey]) -> None:
        if not keys:
            raise KeyRingError("the key ring needs at least one key")
        ids = [key.key_id for key in keys]
        duplicates = sorted({key_id for key_id in ids if ids.count(key_id) > 1})
        if duplicates:
            raise KeyRingError(f"key id(s) {', '.join(duplicates)} appear more than once")
        self._keys = {key.key_id: key for key in keys}
        self.current = keys[0]

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """`kid:base64key,kid2:base64key` (DEEP_TOKEN_KEYS). Errors name the key id, never the key."""
        keys = []
        for position, item in enumerate(part.strip() for part in spec.split(",") if part.strip()):
            key_id, sep, encoded = item.partition(":")
            if not sep or not key_id:
                raise KeyRingError(f"token key #{position + 1} must be written kid:base64key")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise KeyRingError(f"token key {key_id!r} is not valid base64") from None
            if len(raw) != 32:
                raise KeyRingError(f"token key {key_id!r} must be 32 bytes (AES-256), got {len(raw)}")
            keys.append(VaultKey(key_id, raw))
        return cls(keys)

    def encrypt(self, token_id: UUID, token: SecretStr) -> Sealed:
        return self.wrap(token.get_secret_value().encode(), _associated_data(token_id))

    def decrypt(self, token_id: UUID, sealed: Sealed) -> SecretStr:
        return SecretStr(self.unwrap(sealed, _associated_data(token_id), f"token {token_id}").decode())

    def wrap(self, plaintext: bytes, associated_data: bytes) -> Sealed:
        """Encrypt under the current key; the associated data names what the ciphertext belongs to."""
        nonce = os.urandom(NONCE_BYTES)
        key = self.current
        return Sealed(key.key_id, nonce, AESGCM(key.key).encrypt(nonce, plaintext, associated_data))

    def unwrap(self, sealed: Sealed, associated_data: bytes, what: str) -> bytes:
        """Decrypt under the key named by its id; `what` names the secret in errors, never its value."""
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise KeyRingError(f"{what} is sealed under key id {sealed.key_id!r}, not in the key ring")
        try:
            return AESGCM(key.key).decrypt(sealed.nonce, sealed.ciphertext, associated_data)
        except InvalidTag:
            raise KeyRingError(
                f"{what} does not decrypt under key {sealed.key_id!r} (wrong key or tampered row)"
            ) from None


def generate_key_spec(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def load_keyring(settings: Settings) -> KeyRing:
    """Keys from DEEP_TOKEN_KEYS; without them a local key generated once under the state directory."""
    if settings.token_keys:
        return KeyRing.parse(settings.token_keys)
    path = settings.state_dir / KEY_FILE_NAME
    if not path.exists():
        _create_local_keys(path)
    return KeyRing.parse(path.read_text())


def _create_local_keys(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key_id = f"local-{secrets.token_hex(3)}"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first; use theirs
    with os.fdopen(descriptor, "w") as handle:
        handle.write(generate_key_spec(key_id) + "\n")
    log.warning(
        "token vault: DEEP_TOKEN_KEYS is empty; generated local key %s in %s (set it in production)",
        key_id,
        path,
    )

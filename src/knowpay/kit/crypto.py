"""Hashing, key derivation and the secret box: argon2id for secrets people choose, SHA-256
for random keys, AES-256-GCM for secrets knowpay must read back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from knowpay.kit.config import PasswordHashSettings, Settings


class SecretHasher:
    """argon2id hashing of passwords and payment passwords."""

    def __init__(self, settings: PasswordHashSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost_kib,
            parallelism=settings.parallelism,
        )
        # Verifying against this keeps the time of an unknown-user login like a known one.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, stored_hash: str | None, secret: str) -> bool:
        """True when `secret` matches; a missing hash still costs one verification."""
        try:
            return (
                self._hasher.verify(stored_hash or self._decoy, secret) and stored_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def sha256_hex(value: str) -> str:
    """Hex SHA-256 of a UTF-8 string (for high-entropy keys, where a slow hash buys nothing)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def derive_key(master_key: str, purpose: str) -> bytes:
    """A 32-byte subkey of the master key for one purpose (HMAC-SHA256 as a KDF)."""
    return hmac.new(master_key.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).digest()


def random_token(prefix: str, entropy_bytes: int = 32) -> str:
    """A random secret such as an API key, e.g. `kp_live_…`."""
    return prefix + secrets.token_urlsafe(entropy_bytes)


class SecretBoxError(Exception):
    """A sealed value cannot be opened: wrong master key, wrong context, or tampered with.
    The message never contains the value."""


_ENVELOPE = "v2"
_NONCE_BYTES = 12
_KEY_ID_CHARS = 8


def _aead_key(master_key: str) -> bytes:
    """The AES-256 key of the secret box: HKDF-SHA256 of the master key."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"knowpay/secret-box/v2"
    ).derive(master_key.encode("utf-8"))


def _key_id(key: bytes) -> str:
    """A short public name of a box key (which master key sealed a value), not the key."""
    return hashlib.sha256(b"knowpay/secret-box/key-id\x00" + key).hexdigest()[:_KEY_ID_CHARS]


class SecretBox:
    """Encrypts secrets knowpay must read back (webhook signing secrets, gateway keys) under a
    key derived from the master key: AES-256-GCM, a random 96-bit nonce per value, and the
    value's purpose and row (`context`, e.g. `webhook_endpoint:we_…`) as associated data, so
    a sealed value moved to another row or purpose no longer opens.

    Envelope: `v2:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`; the key id names the master
    key that sealed it. Values sealed before this format (Fernet, `gAAAA…`) still open, with
    no context check, until `knowpay secrets rotate` re-seals them. `previous_keys` lets a box
    also open values sealed under other master keys (rotation reads with old and new)."""

    def __init__(self, master_key: str, *, previous_keys: Sequence[str] = ()) -> None:
        key = _aead_key(master_key)
        self.key_id = _key_id(key)
        self._sealer = AESGCM(key)
        self._openers: dict[str, AESGCM] = {self.key_id: self._sealer}
        self._legacy = [_fernet(master_key)]
        for other in previous_keys:
            other_key = _aead_key(other)
            self._openers.setdefault(_key_id(other_key), AESGCM(other_key))
            self._legacy.append(_fernet(other))

    def seal(self, plaintext: str, *, context: str) -> str:
        """Encrypt `plaintext` for the row and purpose named by `context`."""
        return self.seal_bytes(plaintext.encode("utf-8"), context=context)

    def open(self, sealed: str, *, context: str) -> str:
        """The plaintext of a value sealed for `context`; SecretBoxError otherwise."""
        if not sealed.startswith(_ENVELOPE + ":"):
            return self._open_legacy(sealed)
        return self.open_bytes(sealed, context=context).decode("utf-8")

    def seal_bytes(self, data: bytes, *, context: str) -> str:
        """Encrypt raw bytes (e.g. a stored response body) into the same envelope."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._sealer.encrypt(nonce, data, context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{_ENVELOPE}:{self.key_id}:{body}"

    def open_bytes(self, sealed: str, *, context: str) -> bytes:
        """The bytes sealed by `seal_bytes` (or `seal`) for `context`; SecretBoxError otherwise."""
        try:
            envelope, key_id, body = sealed.split(":", 2)
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError as exc:
            raise SecretBoxError("the sealed value is malformed") from exc
        if envelope != _ENVELOPE or len(raw) < _NONCE_BYTES + 16:
            raise SecretBoxError("the sealed value is malformed")
        opener = self._openers.get(key_id)
        if opener is None:
            raise SecretBoxError(
                f"the value was sealed under another master key (key id {key_id}; "
                f"this box has {', '.join(self._openers)})"
            )
        try:
            return opener.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
        except InvalidTag as exc:
            raise SecretBoxError(
                f"the sealed value does not open for {context!r} (tampered, or moved from "
                "another row)"
            ) from exc

    def _open_legacy(self, sealed: str) -> str:
        for fernet in self._legacy:
            try:
                return fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
            except (InvalidToken, UnicodeEncodeError):
                continue
        raise SecretBoxError("the value is neither a v2 envelope nor a Fernet token of these keys")

    def is_current(self, sealed: str) -> bool:
        """Whether `sealed` is already in this box's format under its own key."""
        return sealed.startswith(f"{_ENVELOPE}:{self.key_id}:")

    def reseal(self, sealed: str, *, context: str, into: SecretBox) -> str:
        """Open with this box and seal again with `into` (rotation)."""
        return into.seal(self.open(sealed, context=context), context=context)


def _fernet(master_key: str) -> Fernet:
    """The legacy box (before v2): Fernet under an HMAC-derived key."""
    return Fernet(base64.urlsafe_b64encode(derive_key(master_key, "knowpay/secret-box/v1")))


def secret_box(settings: Settings) -> SecretBox:
    """The deployment's box: seals under `secret_key`, also opens what is still sealed under a
    `previous_secret_keys` entry (a rotation under way)."""
    return SecretBox(
        settings.secret_key.get_secret_value(),
        previous_keys=[key.get_secret_value() for key in settings.previous_secret_keys],
    )

"""Hashing and key derivation: argon2id for secrets people choose, SHA-256 for random keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from knowpay.kit.config import PasswordHashSettings


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


class SecretBox:
    """Encrypts secrets knowpay must read back (webhook signing secrets, gateway keys) with a
    key derived from the master key (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, master_key: str) -> None:
        import base64

        from cryptography.fernet import Fernet

        self._fernet = Fernet(
            base64.urlsafe_b64encode(derive_key(master_key, "knowpay/secret-box/v1"))
        )

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")

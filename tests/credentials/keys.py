"""Throwaway RSA keys for credential tests."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str

    @property
    def body_lines(self) -> list[str]:
        """The base64 lines of the private key: none may be found in the database."""
        return [line for line in self.private_pem.splitlines() if not line.startswith("-----")]


def _pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private.strip(), public.strip())


@lru_cache(maxsize=2)
def key_pair(name: str) -> KeyPair:
    """One key pair per name for the test run (generating RSA keys is slow)."""
    return _pair()

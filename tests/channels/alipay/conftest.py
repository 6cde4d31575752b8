"""Keys for the Alipay unit tests: generated once per run (an app key and Alipay's key)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    @property
    def private_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def pkcs1_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()

    @property
    def public_pem(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


def _pair() -> KeyPair:
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def app_key() -> KeyPair:
    """The merchant's app key pair (the app signs requests with it)."""
    return _pair()


@pytest.fixture(scope="session")
def alipay_key() -> KeyPair:
    """Alipay's key pair (Alipay signs answers and notifications with it)."""
    return _pair()

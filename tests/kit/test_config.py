"""Settings follow API.md: KNOWPAY_ prefix, __ nesting, a TOML file, PEM inline or as a path."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from knowpay.kit.config import DEFAULT_DATABASE_URL, Settings


@pytest.fixture
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_defaults_to_an_sqlite_file_under_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KNOWPAY_DATABASE_URL", raising=False)
    assert Settings().database_url == DEFAULT_DATABASE_URL == "sqlite:///./var/knowpay.db"


def test_reads_prefixed_and_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("KNOWPAY_PUBLIC_URL", "https://pay.example.com/")
    monkeypatch.setenv("KNOWPAY_ALIPAY__APP_ID", "2021000000000001")
    monkeypatch.setenv("KNOWPAY_ALIPAY__SELLER_ID", "2088000000000001")
    monkeypatch.setenv("KNOWPAY_WECHATPAY__MCHID", "1900000001")
    monkeypatch.setenv("KNOWPAY_STRIPE__SECRET_KEY", "sk_test_123")
    settings = Settings()
    assert settings.database_url.startswith("postgresql://")
    assert settings.public_url == "https://pay.example.com"
    assert settings.alipay.app_id == "2021000000000001"
    assert settings.alipay.seller_id == "2088000000000001"
    assert settings.wechatpay.mchid == "1900000001"
    assert settings.stripe.secret_key is not None
    assert settings.stripe.secret_key.get_secret_value() == "sk_test_123"


def test_reads_a_toml_file_named_by_knowpay_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pem: str
) -> None:
    key_file = tmp_path / "merchant.pem"
    key_file.write_text(pem)
    config = tmp_path / "knowpay.toml"
    config.write_text(
        'public_url = "https://pay.example.org"\n'
        "[alipay]\n"
        'app_id = "2021000000000002"\n'
        f'private_key = "{key_file}"\n'
    )
    monkeypatch.setenv("KNOWPAY_CONFIG", str(config))
    monkeypatch.setenv("KNOWPAY_ALIPAY__GATEWAY_URL", "http://127.0.0.1:8100/alipay/gateway.do")
    settings = Settings()
    assert settings.public_url == "https://pay.example.org"
    assert settings.alipay.app_id == "2021000000000002"
    assert settings.alipay.private_key == pem.strip()
    # The environment wins over the file and merges with it.
    assert settings.alipay.gateway_url == "http://127.0.0.1:8100/alipay/gateway.do"


def test_pem_inline_with_escaped_newlines(monkeypatch: pytest.MonkeyPatch, pem: str) -> None:
    monkeypatch.setenv("KNOWPAY_WECHATPAY__MERCHANT_PRIVATE_KEY", pem.strip().replace("\n", "\\n"))
    assert Settings().wechatpay.merchant_private_key == pem.strip()


def test_a_pem_that_is_neither_text_nor_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWPAY_ALIPAY__PRIVATE_KEY", "/no/such/key.pem")
    with pytest.raises(ValidationError, match="no such file"):
        Settings()


def test_an_unknown_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", "mysql://root@localhost/x")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("zone", ["Asia/Shangai", "UTC+8", "", "../etc/passwd"])
def test_a_limits_time_zone_that_does_not_exist_is_refused(
    monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    """Found in an audit: a misspelt KNOWPAY_LIMITS__TIMEZONE was taken, the service said it
    was ready, and every payment a day or month limit applied to failed with a 500."""
    monkeypatch.setenv("KNOWPAY_LIMITS__TIMEZONE", zone)
    with pytest.raises(ValidationError, match="time zone"):
        Settings()


def test_a_limits_time_zone_is_an_iana_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWPAY_LIMITS__TIMEZONE", "Europe/Berlin")
    assert Settings().limits.timezone == "Europe/Berlin"

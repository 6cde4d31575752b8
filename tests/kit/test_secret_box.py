"""The secret box: AES-256-GCM with the row as associated data; old Fernet values still open."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet

from knowpay.kit.crypto import SecretBox, SecretBoxError, derive_key

MASTER = "test-master-key-0123456789-abcdefghijklmnop"
OTHER = "another-master-key-0123456789-abcdefghijklm"


def test_round_trip_in_a_versioned_envelope_with_a_fresh_nonce() -> None:
    box = SecretBox(MASTER)
    first = box.seal("whsec_abc", context="webhook_endpoint:we_1")
    second = box.seal("whsec_abc", context="webhook_endpoint:we_1")
    assert first.startswith(f"v2:{box.key_id}:")
    assert len(box.key_id) == 8
    assert first != second  # a random 96-bit nonce each time
    assert "whsec_abc" not in first
    assert box.open(first, context="webhook_endpoint:we_1") == "whsec_abc"
    assert box.open(second, context="webhook_endpoint:we_1") == "whsec_abc"
    assert box.is_current(first)


def test_unicode_and_long_values_survive() -> None:
    box = SecretBox(MASTER)
    value = "-----BEGIN PRIVATE KEY-----\n" + "密钥" * 2000 + "\n-----END PRIVATE KEY-----"
    assert box.open(box.seal(value, context="c"), context="c") == value


def test_a_tampered_value_does_not_open() -> None:
    box = SecretBox(MASTER)
    sealed = box.seal("secret", context="c")
    prefix, key_id, body = sealed.split(":")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 0x01
    tampered = f"{prefix}:{key_id}:" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(SecretBoxError, match="does not open"):
        box.open(tampered, context="c")
    with pytest.raises(SecretBoxError, match="malformed"):
        box.open(f"v2:{key_id}:AAAA", context="c")


def test_a_value_moved_to_another_row_does_not_open() -> None:
    box = SecretBox(MASTER)
    sealed = box.seal("secret", context="webhook_endpoint:we_1")
    with pytest.raises(SecretBoxError, match="webhook_endpoint:we_2") as caught:
        box.open(sealed, context="webhook_endpoint:we_2")
    assert "secret'" not in str(caught.value)


def test_another_master_key_cannot_open_it_but_a_box_that_knows_both_can() -> None:
    sealed = SecretBox(MASTER).seal("secret", context="c")
    with pytest.raises(SecretBoxError, match="another master key"):
        SecretBox(OTHER).open(sealed, context="c")
    both = SecretBox(OTHER, previous_keys=[MASTER])
    assert both.open(sealed, context="c") == "secret"
    assert not both.is_current(sealed)
    moved = SecretBox(MASTER).reseal(sealed, context="c", into=SecretBox(OTHER))
    assert SecretBox(OTHER).open(moved, context="c") == "secret"


def test_values_sealed_with_the_old_fernet_box_still_open() -> None:
    legacy = Fernet(base64.urlsafe_b64encode(derive_key(MASTER, "knowpay/secret-box/v1")))
    old = legacy.encrypt(b"whsec_legacy").decode("ascii")
    assert SecretBox(MASTER).open(old, context="anything") == "whsec_legacy"
    assert not SecretBox(MASTER).is_current(old)
    with pytest.raises(SecretBoxError):
        SecretBox(OTHER).open(old, context="anything")
    assert SecretBox(OTHER, previous_keys=[MASTER]).open(old, context="x") == "whsec_legacy"


def test_bytes_round_trip() -> None:
    box = SecretBox(MASTER)
    data = bytes(range(256))
    assert box.open_bytes(box.seal_bytes(data, context="c"), context="c") == data

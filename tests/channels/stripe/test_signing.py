"""Stripe-Signature: our verification against the rules in PROTOCOLS.md §4, and against the
official stripe-python's own helpers in both directions (and the simulator's signer)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from knowpay.channels.errors import SignatureInvalid
from knowpay.channels.stripe import signing
from knowpay.sandbox.stripe import signing as simulated

SECRET = "whsec_test_secret_0123456789abcdef"
OLD_SECRET = "whsec_old_secret_fedcba9876543210"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "ping"}, indent=2).encode()


def verify(header: str | None, body: bytes = BODY, secrets: tuple[str, ...] = (SECRET,),
           now: datetime = NOW, tolerance_s: int = 300) -> int:  # fmt: skip
    return signing.verify(header, body, list(secrets), now=now, tolerance_s=tolerance_s)


def test_the_signature_is_the_hmac_of_timestamp_dot_body_keyed_with_the_whole_secret() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signing.compute_signature(SECRET, T, BODY) == expected
    assert verify(f"t={T},v1={expected}") == T


def test_a_tampered_or_reserialised_body_fails() -> None:
    header = signing.signature_header([SECRET], BODY, T)
    with pytest.raises(SignatureInvalid, match="no v1 signature matches"):
        verify(header, BODY.replace(b"ping", b"pong"))
    compact = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    with pytest.raises(SignatureInvalid):
        verify(header, compact)  # the same JSON, other bytes


def test_a_wrong_secret_fails() -> None:
    with pytest.raises(SignatureInvalid):
        verify(signing.signature_header(["whsec_someone_else"], BODY, T))


def test_any_v1_may_match_during_a_secret_roll() -> None:
    both = signing.signature_header(["whsec_new_one", SECRET], BODY, T)
    assert both.count("v1=") == 2
    assert verify(both) == T  # we still hold only the old secret
    assert verify(both, secrets=("whsec_new_one",)) == T  # or only the new one


def test_previous_secrets_are_accepted_alongside_the_current_one() -> None:
    signed_with_old = signing.signature_header([OLD_SECRET], BODY, T)
    assert verify(signed_with_old, secrets=(SECRET, OLD_SECRET)) == T
    with pytest.raises(SignatureInvalid):
        verify(signed_with_old, secrets=(SECRET,))


def test_v0_and_unknown_schemes_are_ignored() -> None:
    v1 = signing.compute_signature(SECRET, T, BODY)
    assert verify(f"t={T},v0=deadbeef,v1={v1},v9=zz") == T
    with pytest.raises(SignatureInvalid, match="no v1 signature"):
        verify(f"t={T},v0={v1}")  # the right HMAC under the wrong scheme does not count


def test_the_tolerance_refuses_old_signatures_only() -> None:
    header = signing.signature_header([SECRET], BODY, T)
    assert verify(header, now=NOW + timedelta(seconds=300)) == T
    with pytest.raises(SignatureInvalid, match="more than 300 s ago"):
        verify(header, now=NOW + timedelta(seconds=301))
    assert verify(header, now=NOW + timedelta(seconds=900), tolerance_s=1000) == T
    assert verify(header, now=NOW - timedelta(hours=1)) == T  # a gateway clock ahead of ours


@pytest.mark.parametrize(
    "header",
    [None, "", "v1=abc", f"t={T}", "t=abc,v1=00", f"t={T},t={T},v1=00", "garbage"],
    ids=["missing", "empty", "no-t", "no-v1", "t-not-a-number", "t-twice", "garbage"],
)
def test_malformed_headers_fail(header: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        verify(header)


def test_no_configured_secret_verifies_nothing() -> None:
    with pytest.raises(SignatureInvalid, match="no webhook secret"):
        verify(signing.signature_header([""], BODY, T), secrets=("",))


# The official library --------------------------------------------------------------------------


def test_a_header_from_stripe_python_verifies_with_ours() -> None:
    payload = BODY.decode()
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=T)
    assert verify(header) == T
    assert stripe.WebhookSignature._compute_signature(f"{T}.{payload}", SECRET) == (
        signing.compute_signature(SECRET, T, BODY)
    )


def test_our_header_verifies_with_stripe_python() -> None:
    now = int(time.time())
    header = signing.signature_header(["whsec_new_one", SECRET], BODY, now)
    assert stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=300)
    event = stripe.Webhook.construct_event(BODY, header, "whsec_new_one")
    assert event.id == "evt_1"
    old = signing.signature_header([SECRET], BODY, now - 301)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(BODY, old, SECRET, tolerance=300)
    with pytest.raises(SignatureInvalid):  # and ours agrees
        verify(old, now=datetime.fromtimestamp(now, UTC))


def test_the_simulators_signer_agrees_with_both() -> None:
    now = int(time.time())
    header = simulated.header(["whsec_new_one", SECRET], BODY, now)
    assert header == signing.signature_header(["whsec_new_one", SECRET], BODY, now)
    assert stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=300)
    assert verify(header, now=datetime.fromtimestamp(now, UTC)) == now

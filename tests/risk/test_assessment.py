"""assess(): each rule kind matching and not, deny beating review, a decision stored for every
attempt, and the attempts log that velocity, streak and anomaly rules count."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.risk import service
from knowpay.risk.models import RiskAttemptRecord, RiskDecision, RiskRule
from knowpay.risk.schemas import BlacklistCreate
from tests.builders import Builders
from tests.risk.conftest import Risk

pytestmark = pytest.mark.db


def _blacklist(database: Database, clock: FrozenClock, kind: str, value: str) -> None:
    with database.session_scope() as session:
        service.add_to_blacklist(
            session, BlacklistCreate(kind=kind, value=value), "usr_admin", clock.now()
        )


def _attempt(database: Database, payment_id: str) -> RiskAttemptRecord:
    with database.session_scope(read_only=True) as session:
        row = session.scalars(
            select(RiskAttemptRecord).where(RiskAttemptRecord.payment_id == payment_id)
        ).one()
        session.expunge(row)
        return row


# Decisions are stored for every attempt


def test_without_rules_an_attempt_is_allowed_and_the_decision_and_attempt_are_stored(
    risk: Risk, database: Database
) -> None:
    decision = risk.assess(amount_minor=12345, client_ip="::ffff:203.0.113.9", device_id="dev-1")

    assert decision.decision == "allow"
    assert decision.reasons == []
    assert decision.review_status is None
    assert decision.id.startswith("risk_")
    with database.session_scope(read_only=True) as session:
        stored = service.decision_for_payment(session, decision.payment_id)
        assert stored is not None
        assert (stored.id, stored.decision, stored.amount_minor) == (decision.id, "allow", 12345)
        assert stored.client_ip == "203.0.113.9"  # one canonical form for IPv4-mapped IPv6
    logged = _attempt(database, decision.payment_id)
    assert (logged.outcome, logged.client_ip, logged.device_id) == (
        "pending",
        "203.0.113.9",
        "dev-1",
    )


def test_a_disabled_rule_is_not_applied_and_a_changed_rule_applies_at_once(
    risk: Risk, database: Database, clock: FrozenClock
) -> None:
    rule = risk.rule("blacklist", "deny")
    _blacklist(database, clock, "buyer", "usr_buyer")
    assert risk.assess().decision == "deny"

    with database.session_scope() as session:
        service.disable_rule(session, rule.id, clock.now())
    assert risk.assess().decision == "allow"


def test_a_rule_whose_stored_params_were_broken_behind_the_api_is_skipped(
    risk: Risk, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    broken = risk.rule("velocity", "deny", {"subject": "buyer", "max_attempts": 1, "window_s": 60})
    with database.session_scope() as session:
        session.execute(
            update(RiskRule).where(RiskRule.id == broken.id).values(params_json='{"subject": 1}')
        )
    assert risk.assess().decision == "allow"
    assert risk.assess().decision == "allow", "a one-attempt velocity limit would deny this"
    assert broken.id in caplog.text


# Velocity


@pytest.mark.parametrize(
    ("subject", "vary"),
    [
        # the same buyer from different IPs and devices
        ("buyer", lambda n: {"client_ip": f"198.51.100.{n}", "device_id": f"dev-{n}"}),
        # different buyers behind one IP
        ("ip", lambda n: {"user_id": f"usr_buyer{n}", "device_id": f"dev-{n}"}),
        # different buyers and IPs on one device
        ("device", lambda n: {"user_id": f"usr_buyer{n}", "client_ip": f"198.51.100.{n}"}),
    ],
)
def test_a_velocity_burst_is_denied_per_subject(
    risk: Risk, clock: FrozenClock, subject: str, vary: Callable[[int], dict[str, str]]
) -> None:
    risk.rule("velocity", "deny", {"subject": subject, "max_attempts": 5, "window_s": 60})
    same = {"user_id": "usr_buyer", "client_ip": "203.0.113.7", "device_id": "dev-shared"}
    fields = {"buyer": ["user_id"], "ip": ["client_ip"], "device": ["device_id"]}[subject]

    def attempt(n: int) -> RiskDecision:
        return risk.assess(**{**vary(n), **{f: same[f] for f in fields}})

    for n in range(1, 6):
        assert attempt(n).decision == "allow", f"attempt {n} of 5 is allowed"
        clock.advance(timedelta(seconds=5))
    sixth = attempt(6)
    assert sixth.decision == "deny"
    assert [r["kind"] for r in sixth.reasons] == ["velocity"]
    assert "5 attempts in the last 60 s" in sixth.reasons[0]["detail"]
    # Denied attempts still count: the burst stays denied while it lasts.
    assert attempt(7).decision == "deny"

    clock.advance(timedelta(seconds=61))  # the window has passed
    assert attempt(8).decision == "allow"


def test_velocity_ignores_other_subjects_and_attempts_without_that_subject(risk: Risk) -> None:
    risk.rule("velocity", "deny", {"subject": "device", "max_attempts": 1, "window_s": 60})

    assert risk.assess(device_id="dev-a").decision == "allow"
    assert risk.assess(device_id="dev-b").decision == "allow"
    assert risk.assess(device_id=None).decision == "allow"
    assert risk.assess(device_id=None).decision == "allow"
    assert risk.assess(device_id="dev-a").decision == "deny"


# Blacklist


def test_a_blacklisted_ip_is_denied(risk: Risk, database: Database, clock: FrozenClock) -> None:
    rule = risk.rule("blacklist", "deny")
    _blacklist(database, clock, "ip", "203.0.113.66")

    denied = risk.assess(client_ip="203.0.113.66")
    assert denied.decision == "deny"
    assert denied.reasons == [
        {
            "rule_id": rule.id,
            "kind": "blacklist",
            "action": "deny",
            "detail": "blacklisted ip 203.0.113.66",
        }
    ]
    assert _attempt(database, denied.payment_id).outcome == "denied"
    assert risk.assess(client_ip="203.0.113.67").decision == "allow"


@pytest.mark.parametrize(
    ("kind", "value", "attempt"),
    [
        ("buyer", "usr_fraud", {"user_id": "usr_fraud"}),
        ("device", "dev-fraud", {"device_id": "dev-fraud"}),
        ("ip", "2001:db8::1", {"client_ip": "2001:0db8:0:0::1"}),
    ],
)
def test_blacklisted_buyers_devices_and_ips_match(
    risk: Risk,
    database: Database,
    clock: FrozenClock,
    kind: str,
    value: str,
    attempt: dict[str, str],
) -> None:
    risk.rule("blacklist", "review")
    _blacklist(database, clock, kind, value)

    assert risk.assess(**attempt).decision == "review"
    assert risk.assess().decision == "allow"


def test_payer_accounts_are_looked_up_for_the_capture_path(
    risk: Risk, database: Database, clock: FrozenClock
) -> None:
    _blacklist(database, clock, "payer_account", "2088102146225135")
    with database.session_scope(read_only=True) as session:
        assert service.payer_account_blacklisted(session, "2088102146225135")
        assert not service.payer_account_blacklisted(session, "2088102146225136")
        assert not service.payer_account_blacklisted(session, "  ")


# Failed streak


def test_a_streak_of_failures_matches_and_a_success_or_the_window_breaks_it(
    risk: Risk, clock: FrozenClock
) -> None:
    risk.rule("failed_streak", "deny", {"max_failures": 3, "window_s": 600})

    def attempt() -> RiskDecision:
        clock.advance(timedelta(seconds=1))
        return risk.assess()

    for _ in range(2):
        assert risk.outcome(attempt(), succeeded=False)
    in_flight = attempt()  # pending: neither breaks nor extends the streak
    assert attempt().decision == "allow", "two failures are not a streak of three"
    assert risk.outcome(attempt(), succeeded=False)
    streak = attempt()
    assert streak.decision == "deny"
    assert "last 3 attempts in the last 600 s all failed" in streak.reasons[0]["detail"]
    assert risk.assess(user_id="usr_other").decision == "allow"

    assert risk.outcome(in_flight, succeeded=True)
    assert attempt().decision == "allow", "a success among the last three breaks the streak"

    for _ in range(2):
        assert risk.outcome(attempt(), succeeded=False)
    assert attempt().decision == "deny"
    clock.advance(timedelta(seconds=601))
    assert risk.assess().decision == "allow", "failures older than the window do not count"


# Amount anomaly


def test_an_amount_far_above_the_buyers_history_goes_to_review(risk: Risk) -> None:
    rule = risk.rule("amount_anomaly", "review", {"multiplier": 3, "min_history": 3})
    risk.paid(amount_minor=9900)
    risk.paid(amount_minor=9900)
    assert risk.assess(amount_minor=99000).decision == "allow", "too little history yet"
    risk.paid(amount_minor=9900)
    risk.paid(amount_minor=1000, currency="USD")  # another currency's history is not mixed in

    assert risk.assess(amount_minor=29700).decision == "allow", "exactly 3 × the average"
    held = risk.assess(amount_minor=29701)
    assert held.decision == "review"
    assert held.review_status == "open"
    assert held.reasons[0]["rule_id"] == rule.id
    assert "average of 9900 over 3" in held.reasons[0]["detail"]
    assert risk.assess(amount_minor=99000, user_id="usr_new").decision == "allow"
    assert risk.assess(amount_minor=50000, currency="USD").decision == "allow"


def test_a_fractional_multiplier_is_compared_exactly(risk: Risk) -> None:
    risk.rule("amount_anomaly", "review", {"multiplier": 1.5, "min_history": 1})
    risk.paid(amount_minor=3)
    risk.paid(amount_minor=4)  # average 3.5; 1.5 × 3.5 = 5.25

    assert risk.assess(amount_minor=5).decision == "allow"
    assert risk.assess(amount_minor=6).decision == "review"


# New account


def test_a_new_account_paying_much_is_matched_until_it_ages(
    risk: Risk, build: Builders, clock: FrozenClock
) -> None:
    buyer = build.buyer(build.app())
    risk.rule(
        "new_account",
        "review",
        {"max_account_age_s": 86400, "max_amount_minor": 10000, "currency": "cny"},
    )

    assert risk.assess(user_id=buyer.id, amount_minor=10000).decision == "allow"
    assert risk.assess(user_id=buyer.id, amount_minor=20000, currency="USD").decision == "allow"
    held = risk.assess(user_id=buyer.id, amount_minor=20000)
    assert held.decision == "review"
    assert "younger than 86400 s" in held.reasons[0]["detail"]

    clock.advance(timedelta(days=1))
    assert risk.assess(user_id=buyer.id, amount_minor=20000).decision == "allow"


# Combining rules


def test_deny_beats_review_and_every_matching_rule_is_a_reason(
    risk: Risk, database: Database, clock: FrozenClock
) -> None:
    review = risk.rule(
        "new_account",
        "review",
        {"max_account_age_s": 3600, "max_amount_minor": 0, "currency": "CNY"},
        priority=10,
    )
    deny = risk.rule("blacklist", "deny", priority=20)
    risk.rule("velocity", "deny", {"subject": "buyer", "max_attempts": 100, "window_s": 60})
    _blacklist(database, clock, "device", "dev-bad")

    decision = risk.assess(user_id="usr_unknown", device_id="dev-bad")

    assert decision.decision == "deny"
    assert decision.review_status is None
    assert decision.rule_ids == [review.id, deny.id]
    assert [r["action"] for r in decision.reasons] == ["review", "deny"]
    assert risk.assess(user_id="usr_unknown").decision == "review"


# Outcomes


def test_recorded_outcomes_follow_their_transitions(risk: Risk, database: Database) -> None:
    decision = risk.assess()
    assert risk.outcome(decision, succeeded=False)
    assert risk.outcome(decision, succeeded=True), "a late success overrides a failure"
    assert not risk.outcome(decision, succeeded=False), "a success is final"
    assert _attempt(database, decision.payment_id).outcome == "succeeded"

    with database.session_scope() as session:
        assert not service.record_outcome(session, "pay_unknown", True, decision.created_at)


def test_a_denied_attempt_keeps_its_outcome(
    risk: Risk, database: Database, clock: FrozenClock
) -> None:
    risk.rule("blacklist", "deny")
    _blacklist(database, clock, "buyer", "usr_buyer")
    denied = risk.assess()

    assert not risk.outcome(denied, succeeded=False)
    assert _attempt(database, denied.payment_id).outcome == "denied"

"""Two attempts by one buyer at the same moment cannot both pass a velocity limit: the second
assessment waits for the first's transaction (PostgreSQL: an advisory lock per counted
subject; SQLite: one writing transaction at a time) and then counts its attempt."""

from __future__ import annotations

import threading

import pytest

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.risk import service
from tests.risk.conftest import Risk

pytestmark = pytest.mark.db


def _attempt(number: int) -> service.RiskAttempt:
    return service.RiskAttempt(
        payment_id=f"pay_concurrent{number}",
        order_id=f"ord_concurrent{number}",
        app_id="app_test",
        user_id="usr_racer",
        amount_minor=9900,
        currency="CNY",
        channel="test",
        client_ip=f"198.51.100.{number}",
        device_id=None,
    )


def test_concurrent_attempts_cannot_both_pass_a_velocity_limit(
    risk: Risk, database: Database, clock: FrozenClock
) -> None:
    risk.rule("velocity", "deny", {"subject": "buyer", "max_attempts": 1, "window_s": 60})
    first = database.new_session()
    try:
        assert service.assess(first, _attempt(1), clock.now()).decision == "allow"
        outcome: dict[str, str] = {}

        def second() -> None:
            with database.session_scope() as session:
                outcome["decision"] = service.assess(session, _attempt(2), clock.now()).decision

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the second assessment waits for the first transaction"
        first.commit()
    finally:
        first.close()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert outcome == {"decision": "deny"}

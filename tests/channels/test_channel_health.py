"""The gateway's circuit breaker guards calls without queueing them: calls to one gateway from
one process run side by side, and failures still open the breaker."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from knowpay.alerts.models import Alert
from knowpay.alerts.service import breaker_alerts
from knowpay.channels.errors import ChannelDeclined
from knowpay.channels.health import ChannelCircuitOpen, ChannelHealth
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import ChannelHealthSettings
from knowpay.kit.db import Database


def _health(**settings: float) -> ChannelHealth:
    return ChannelHealth(ChannelHealthSettings(**settings))  # type: ignore[arg-type]


def test_calls_to_one_gateway_run_at_the_same_time_not_one_after_another() -> None:
    health = _health()
    both_inside = threading.Barrier(2, timeout=5)

    def slow_gateway_call() -> str:
        # Returns only once the other call is inside the gateway too: a breaker that held
        # its lock across the call would keep the second one out and break the barrier.
        both_inside.wait()
        return "ok"

    with ThreadPoolExecutor(max_workers=2) as pool:
        calls = [
            pool.submit(health.call, channel, "alipay", "create_payment", slow_gateway_call)
            for channel in ("alipay_qr", "alipay_page")
        ]
        assert [call.result(timeout=10) for call in calls] == ["ok", "ok"]
    assert health.state("alipay") == "closed"


def test_consecutive_failures_open_the_breaker_and_the_next_call_is_not_made() -> None:
    health = _health(breaker_fail_max=3, breaker_reset_timeout_s=60)
    made: list[str] = []

    def failing_call() -> None:
        made.append("call")
        raise ConnectionError("gateway down")

    for _ in range(3):
        with pytest.raises(ConnectionError):
            health.call("alipay_qr", "alipay", "create_payment", failing_call)
    assert health.state("alipay") == "open"

    with pytest.raises(ChannelCircuitOpen) as refused:
        health.call("alipay_qr", "alipay", "create_payment", failing_call)
    assert made == ["call"] * 3
    assert refused.value.retry_after_s > 0
    assert health.view("alipay_qr", "alipay").error_rate == 1.0


def test_calls_under_way_when_the_breaker_opens_report_one_change_not_one_each() -> None:
    """Seen by a refund audit: 25 refunds failing at once alerted `open to open` ten times."""
    changes: list[tuple[str, str, str]] = []
    health = ChannelHealth(
        ChannelHealthSettings(breaker_fail_max=1, breaker_reset_timeout_s=60),
        on_state_change=lambda gateway, old, new: changes.append((gateway, old, new)),
    )
    all_inside = threading.Barrier(4, timeout=5)

    def failing_together() -> None:
        all_inside.wait()  # all four started while the breaker was closed
        raise ConnectionError("gateway down")

    with ThreadPoolExecutor(max_workers=4) as pool:
        calls = [
            pool.submit(health.call, "alipay_qr", "alipay", "refund", failing_together)
            for _ in range(4)
        ]
        for call in calls:
            with pytest.raises(ConnectionError):
                call.result(timeout=10)
    assert health.state("alipay") == "open"
    assert changes == [("alipay", "closed", "open")]


def test_staff_are_alerted_when_an_outage_begins_and_ends_not_at_each_failed_trial(
    database: Database,
) -> None:
    on_change = breaker_alerts(database, FrozenClock())
    outage = ["closed", "open", "half_open", "open", "half_open", "open", "half_open", "closed"]
    for old, new in itertools.pairwise(outage):
        on_change("alipay", old, new)  # type: ignore[arg-type]
    for thread in threading.enumerate():
        if thread.name.startswith("breaker-alert-"):
            thread.join(timeout=10)
    with database.session_scope(read_only=True) as session:
        kinds = session.scalars(select(Alert.kind).order_by(Alert.created_at, Alert.id)).all()
    assert sorted(kinds) == ["channel.breaker_closed", "channel.breaker_opened"]


def test_a_decline_is_the_gateway_working_and_does_not_count_as_a_failure() -> None:
    health = _health(breaker_fail_max=2)

    def declined_call() -> None:
        raise ChannelDeclined("ACQ.TRADE_HAS_CLOSE", "the trade is closed")

    for _ in range(4):
        with pytest.raises(ChannelDeclined):
            health.call("alipay_qr", "alipay", "refund", declined_call)
    assert health.state("alipay") == "closed"


def test_a_successful_trial_call_after_the_timeout_closes_the_breaker() -> None:
    health = _health(breaker_fail_max=1, breaker_reset_timeout_s=0.05)

    def failing_call() -> None:
        raise TimeoutError("gateway timed out")

    with pytest.raises(TimeoutError):
        health.call("wechat_native", "wechatpay", "query_payment", failing_call)
    assert health.state("wechatpay") == "open"

    threading.Event().wait(0.1)
    assert health.call("wechat_native", "wechatpay", "query_payment", lambda: "paid") == "paid"
    assert health.state("wechatpay") == "closed"


def test_after_the_timeout_one_trial_call_goes_and_the_others_are_refused_at_once() -> None:
    health = _health(breaker_fail_max=1, breaker_reset_timeout_s=0.05)
    with pytest.raises(ConnectionError):
        health.call("alipay_qr", "alipay", "create_payment", _raise(ConnectionError("down")))
    threading.Event().wait(0.1)

    trial_inside, trial_may_finish = threading.Event(), threading.Event()

    def slow_trial() -> str:
        trial_inside.set()
        assert trial_may_finish.wait(5)
        return "ok"

    made: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        trial = pool.submit(health.call, "alipay_qr", "alipay", "query_payment", slow_trial)
        assert trial_inside.wait(5)
        with pytest.raises(ChannelCircuitOpen) as refused:
            health.call("alipay_page", "alipay", "create_payment", lambda: made.append("call"))
        assert refused.value.retry_after_s >= 1
        # Routing leaves the gateway's channels out meanwhile: no attempt is opened only to
        # be refused.
        assert not health.is_available("alipay")
        assert not health.view("alipay_page", "alipay").available
        trial_may_finish.set()
        assert trial.result(timeout=5) == "ok"

    assert made == []
    assert health.state("alipay") == "closed"
    assert health.is_available("alipay")
    health.call("alipay_page", "alipay", "create_payment", lambda: made.append("call"))
    assert made == ["call"]


def _raise(error: Exception) -> Callable[[], None]:
    def call() -> None:
        raise error

    return call

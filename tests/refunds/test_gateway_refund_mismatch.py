"""A gateway's word about another of its refunds does not settle ours (F2, refund half).

A refund that carries its gateway's refund id is that refund at the gateway: a result (answer,
notification or query) naming another id keeps the recorded one, changes nothing of the
refund, and tells staff once per (refund, other id): the other refund may have moved money
that knowpay's books do not show."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from knowpay.alerts.models import Alert
from knowpay.auth.principals import Role
from knowpay.channels.errors import ChannelUnavailable, ProtocolError
from knowpay.channels.types import ChannelStatus, RefundRequest, RefundResult
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import RefundSettings, Settings
from knowpay.kit.db import Database
from knowpay.refunds import service as refunds_service
from knowpay.refunds.models import Refund
from knowpay.worker.runner import Worker
from tests import books
from tests.builders import Builders, Shop

OURS = "rf_ours"
OTHER, THIRD = "rf_other", "rf_third"


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


@pytest.fixture
def worker(app: FastAPI, settings: Settings, database: Database, clock: FrozenClock) -> Worker:
    return Worker(settings, database, clock, app.state.channel_registry)


def _channel(shop: Shop) -> Any:
    return shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]


def _refund(shop: Shop) -> dict[str, Any]:
    """A refund of a paid order, as POST /v1/refunds answers it."""
    order = shop.order()
    shop.confirm(shop.pay(order))
    body = {"order_id": order["id"], "amount": 3000, "reason": "other"}
    created = shop.client.post("/v1/refunds", json=body, headers=shop.app.headers)
    assert created.status_code == 201, created.text
    refund: dict[str, Any] = created.json()
    return refund


def _processing_refund(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A refund the gateway accepted as OURS and has not settled yet."""
    accepted = RefundResult(ChannelStatus.PENDING, gateway_refund_no=OURS)
    monkeypatch.setattr(_channel(shop), "refund", lambda _request: accepted)
    refund = _refund(shop)
    assert refund["status"] == "processing"
    return refund


def _apply(database: Database, clock: FrozenClock, refund_id: str, result: RefundResult) -> None:
    """The gateway's result for the refund's current number, as a notification brings it."""
    with database.session_scope() as session:
        number = refunds_service.get(session, refund_id).out_refund_no
        refunds_service.apply_result(
            session, refund_id, result, clock.now(), "gateway", RefundSettings(), number
        )


def _recorded(database: Database, refund_id: str) -> tuple[str, str | None]:
    with database.session_scope(read_only=True) as session:
        refund = refunds_service.get(session, refund_id)
        return refund.status, refund.gateway_refund_no


def _alerts(database: Database) -> list[tuple[str, str | None]]:
    with database.session_scope(read_only=True) as session:
        rows = session.execute(select(Alert.kind, Alert.subject_id).order_by(Alert.id)).all()
    return [(kind, subject) for kind, subject in rows]


def _ledger_kinds(database: Database) -> list[str]:
    return sorted(entry.kind for entry in books.entries(database))


@pytest.mark.parametrize(
    "other_status", [ChannelStatus.SUCCEEDED, ChannelStatus.FAILED, ChannelStatus.CLOSED]
)
def test_a_processing_refund_keeps_its_id_and_status_when_the_gateway_names_another(
    shop: Shop,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    other_status: ChannelStatus,
) -> None:
    refund = _processing_refund(shop, monkeypatch)
    ledger = _ledger_kinds(database)
    other = RefundResult(other_status, gateway_refund_no=OTHER, failure_code="other_refund")
    for _ in range(2):  # the other refund's notification, sent twice
        _apply(database, clock, refund["id"], other)

    assert _recorded(database, refund["id"]) == ("processing", OURS)
    assert _ledger_kinds(database) == ledger
    assert _alerts(database) == [("gateway_refund_mismatch", f"{refund['id']}:{OTHER}")]
    assert shop.get(f"/v1/orders/{refund['order_id']}")["amount_refunded"] == 0
    assert books.events(database, "refund.succeeded") == []
    assert books.events(database, "refund.failed") == []

    # Its own refund's word still settles it.
    _apply(database, clock, refund["id"], RefundResult(ChannelStatus.SUCCEEDED, OURS))
    assert _recorded(database, refund["id"]) == ("succeeded", OURS)
    assert shop.get(f"/v1/orders/{refund['order_id']}")["amount_refunded"] == 3000
    assert books.violations(database) == []


@pytest.mark.parametrize("other_status", [ChannelStatus.SUCCEEDED, ChannelStatus.FAILED])
def test_a_succeeded_refund_keeps_its_id_and_another_refunds_failure_is_no_reversal(
    shop: Shop, database: Database, clock: FrozenClock, other_status: ChannelStatus
) -> None:
    refund = _refund(shop)  # the test gateway refunds at once
    status, ours = _recorded(database, refund["id"])
    assert (status, ours) == ("succeeded", f"testrf_{refund['id']}")
    ledger = _ledger_kinds(database)
    other = RefundResult(other_status, gateway_refund_no=OTHER, failure_code="expired_card")
    for _ in range(2):
        _apply(database, clock, refund["id"], other)

    assert _recorded(database, refund["id"]) == ("succeeded", ours)
    assert _ledger_kinds(database) == ledger
    # Not `refund_reversed`: it is another refund at the gateway that failed, not ours.
    assert _alerts(database) == [("gateway_refund_mismatch", f"{refund['id']}:{OTHER}")]
    assert books.violations(database) == []


def test_staff_are_told_once_per_other_id(
    shop: Shop, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = _processing_refund(shop, monkeypatch)
    for other in (OTHER, OTHER, THIRD):
        _apply(database, clock, refund["id"], RefundResult(ChannelStatus.SUCCEEDED, other))
    assert _alerts(database) == [
        ("gateway_refund_mismatch", f"{refund['id']}:{OTHER}"),
        ("gateway_refund_mismatch", f"{refund['id']}:{THIRD}"),
    ]
    with database.session_scope(read_only=True) as session:
        messages = session.scalars(select(Alert.message)).all()
    assert all(OURS in message and refund["id"] in message for message in messages)
    assert _recorded(database, refund["id"]) == ("processing", OURS)


def test_a_refund_without_an_id_yet_takes_the_one_the_gateway_names(
    shop: Shop, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(_request: object) -> RefundResult:
        raise ChannelUnavailable("connection refused")

    monkeypatch.setattr(_channel(shop), "refund", unreachable)
    refund = _refund(shop)
    assert _recorded(database, refund["id"]) == ("processing", None)
    _apply(database, clock, refund["id"], RefundResult(ChannelStatus.SUCCEEDED, OTHER))
    assert _recorded(database, refund["id"]) == ("succeeded", OTHER)
    assert _alerts(database) == []
    assert books.violations(database) == []


def test_the_refund_query_naming_another_refund_settles_nothing(
    shop: Shop,
    worker: Worker,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refund = _processing_refund(shop, monkeypatch)
    asked: list[str | None] = []

    def query(*_args: object, gateway_refund_no: str | None = None, **_kw: object) -> RefundResult:
        asked.append(gateway_refund_no)
        return RefundResult(ChannelStatus.SUCCEEDED, gateway_refund_no=OTHER)

    monkeypatch.setattr(_channel(shop), "query_refund", query)
    for _ in range(2):
        clock.advance(timedelta(hours=1))
        worker.run_jobs_once()
    assert asked == [OURS, OURS]  # the gateway is asked about our refund every time
    assert _recorded(database, refund["id"]) == ("processing", OURS)
    assert _alerts(database) == [("gateway_refund_mismatch", f"{refund['id']}:{OTHER}")]
    assert books.violations(database) == []


def test_a_retried_refund_takes_its_new_attempts_id(
    shop: Shop,
    build: Builders,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retry is a new refund at the gateway (a new number): the failed attempt's id names
    no refund of the new one, so the new one's id is taken, not refused as another's."""
    refund = _processing_refund(shop, monkeypatch)
    _apply(database, clock, refund["id"], RefundResult(ChannelStatus.FAILED, OURS))
    assert _recorded(database, refund["id"]) == ("failed", OURS)

    def answered(request: RefundRequest) -> RefundResult:
        return RefundResult(ChannelStatus.SUCCEEDED, f"rf_new_{request.out_refund_no}")

    monkeypatch.setattr(_channel(shop), "refund", answered)
    finance = build.staff(Role.FINANCE)
    retried = shop.client.post(f"/v1/refunds/{refund['id']}/retry", headers=finance.headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "succeeded"
    with database.session_scope(read_only=True) as session:
        number = session.scalars(
            select(Refund.out_refund_no).where(Refund.id == refund["id"])
        ).one()
    assert number == f"{refund['id']}-2"
    assert _recorded(database, refund["id"]) == ("succeeded", f"rf_new_{number}")
    assert _alerts(database) == []
    assert books.violations(database) == []


@pytest.mark.parametrize("step", ["send", "query"])
def test_an_answer_against_the_gateways_protocol_settles_nothing_and_tells_staff_once(
    shop: Shop,
    worker: Worker,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    """A signed answer about another trade, request or amount (Alipay's check_refund_trade)
    used to be only a warning in the log while the job asked again for ever."""
    calls: list[str] = []

    def unbelievable(*_args: object, **_kw: object) -> RefundResult:
        calls.append(step)
        raise ProtocolError("the refund answer names trade T2, not T1")

    if step == "send":  # the gateway cannot be reached at the request; the job sends
        monkeypatch.setattr(_channel(shop), "refund", _unreachable)
        refund = _refund(shop)
        monkeypatch.setattr(_channel(shop), "refund", unbelievable)
    else:
        refund = _processing_refund(shop, monkeypatch)
        monkeypatch.setattr(_channel(shop), "query_refund", unbelievable)
    ledger = _ledger_kinds(database)
    for _ in range(3):
        clock.advance(timedelta(hours=2))
        worker.run_jobs_once()
    assert calls == [step] * 3  # asked again each time, with the same refund
    status, _ = _recorded(database, refund["id"])
    assert status == "processing"
    assert _alerts(database) == [("gateway_refund_unbelievable", refund["id"])]
    assert _ledger_kinds(database) == ledger
    assert shop.get(f"/v1/orders/{refund['order_id']}")["amount_refunded"] == 0
    assert books.violations(database) == []


def _unreachable(_request: RefundRequest) -> RefundResult:
    raise ChannelUnavailable("connection refused")

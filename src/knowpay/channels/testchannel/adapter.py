"""The `test` channel: like Stripe's test cards, the caller decides the outcome.

`options["test_outcome"]` is one of `succeeded` (paid at once), `failed` (declined),
`pending` (waits for POST /sandbox/test/payments/{id}/confirm) or `unavailable` (the gateway
cannot be reached). Without it the amount decides: minor units ending in 666 are declined,
in 777 paid at once; anything else waits for confirmation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

from knowpay.channels.errors import ChannelUnavailable, ProtocolError, SignatureInvalid
from knowpay.channels.testchannel import signing
from knowpay.channels.testchannel.store import TestGatewayRefund, TestGatewayStore, TestGatewayTrade
from knowpay.channels.types import (
    Bill,
    BillLine,
    ChannelProfile,
    ChannelStatus,
    CreatePaymentRequest,
    CreatePaymentResult,
    Notification,
    NotificationAck,
    PaymentAction,
    PaymentQueryResult,
    RefundRequest,
    RefundResult,
)
from knowpay.kit.clock import Clock
from knowpay.kit.jsontext import parse_json
from knowpay.kit.money import Money, MoneyError, known_currencies
from knowpay.kit.request_threads import lending_turn

OUTCOMES = ("succeeded", "failed", "pending", "unavailable")
_STATUS_OF_TRADE = {
    "waiting": ChannelStatus.PENDING,
    "paid": ChannelStatus.SUCCEEDED,
    "failed": ChannelStatus.FAILED,
    "closed": ChannelStatus.CLOSED,
}
MAX_DELAY_MS = 5000


def outcome_for(amount: Money, options: Mapping[str, Any]) -> str:
    """The outcome a test payment will have."""
    chosen = options.get("test_outcome")
    if chosen in OUTCOMES:
        return str(chosen)
    if amount.amount_minor % 1000 == 666:
        return "failed"
    if amount.amount_minor % 1000 == 777:
        return "succeeded"
    return "pending"


class TestChannel:
    """The built-in development gateway."""

    __test__ = False
    name = "test"
    gateway = "test"
    profile = ChannelProfile(currencies=known_currencies(), bill_ready_after=timedelta(0))

    def __init__(self, store: TestGatewayStore, signing_key: bytes, clock: Clock) -> None:
        self._store = store
        self._key = signing_key
        self._clock = clock

    # Payments ----------------------------------------------------------------------

    def create_payment(self, request: CreatePaymentRequest) -> CreatePaymentResult:
        delay_ms = int(request.options.get("test_delay_ms") or 0)
        if delay_ms > 0:
            with lending_turn():  # a gateway that answers slowly keeps no request waiting
                time.sleep(min(delay_ms, MAX_DELAY_MS) / 1000)
        outcome = outcome_for(request.amount, request.options)
        if outcome == "unavailable":
            raise ChannelUnavailable("the test gateway was asked to be unreachable")
        now = self._clock.now()
        status = {"succeeded": "paid", "failed": "failed", "pending": "waiting"}[outcome]
        trade = self._store.open_trade(
            TestGatewayTrade(
                out_trade_no=request.out_trade_no,
                gateway_trade_no="test_" + request.out_trade_no,
                amount_minor=request.amount.amount_minor,
                currency=request.amount.currency,
                status=status,
                failure_code="test_declined" if outcome == "failed" else None,
                refunded_minor=0,
                created_at=now,
                paid_at=now if outcome == "succeeded" else None,
            )
        )
        return CreatePaymentResult(
            status=_STATUS_OF_TRADE[trade.status],
            action=PaymentAction(type="none"),
            gateway_trade_no=trade.gateway_trade_no,
            failure_code=trade.failure_code,
            failure_message="The test gateway declined this payment."
            if trade.failure_code
            else None,
            paid_amount=Money(trade.amount_minor, trade.currency)
            if trade.status == "paid"
            else None,
        )

    def query_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        trade = self._store.get(out_trade_no)
        if trade is None:
            return PaymentQueryResult(status=ChannelStatus.PENDING)
        return self._query_result(trade)

    def close_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        trade = self._store.settle(out_trade_no, "closed", self._clock.now())
        if trade is None:
            return PaymentQueryResult(status=ChannelStatus.CLOSED)
        return self._query_result(trade)

    def _query_result(self, trade: TestGatewayTrade) -> PaymentQueryResult:
        return PaymentQueryResult(
            status=_STATUS_OF_TRADE.get(trade.status, ChannelStatus.PENDING),
            gateway_trade_no=trade.gateway_trade_no,
            amount=Money(trade.amount_minor, trade.currency),
            paid_at=trade.paid_at,
            failure_code=trade.failure_code,
        )

    # Refunds -----------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        outcome = self._store.refund(
            request.out_trade_no,
            request.out_refund_no,
            request.amount.amount_minor,
            self._clock.now(),
        )
        if isinstance(outcome, str):
            return RefundResult(
                status=ChannelStatus.FAILED,
                failure_code=outcome,
                failure_message=f"The test gateway refused the refund: {outcome}.",
            )
        return self._refund_result(outcome)

    def query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        *,
        gateway_trade_no: str | None = None,
        gateway_refund_no: str | None = None,
    ) -> RefundResult:
        refund = self._store.get_refund(out_refund_no)
        if refund is None:
            return RefundResult(status=ChannelStatus.PENDING)
        return self._refund_result(refund)

    @staticmethod
    def _refund_result(refund: TestGatewayRefund) -> RefundResult:
        return RefundResult(
            status=ChannelStatus.SUCCEEDED, gateway_refund_no="testrf_" + refund.out_refund_no
        )

    # Notifications -----------------------------------------------------------------

    def verify_and_parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> Notification:
        header = {k.lower(): v for k, v in headers.items()}.get(signing.SIGNATURE_HEADER, "")
        if not signing.verify(self._key, header, body, int(self._clock.now().timestamp())):
            raise SignatureInvalid("the test notification's signature does not verify")
        try:
            data = parse_json(body)
            status = {
                "payment.succeeded": ChannelStatus.SUCCEEDED,
                "payment.failed": ChannelStatus.FAILED,
            }[data["type"]]
            paid_at = datetime.fromisoformat(data["paid_at"]) if data.get("paid_at") else None
            if not data["id"] or (paid_at is not None and paid_at.utcoffset() is None):
                raise ValueError("an empty id, or a paid_at without its offset")
            return Notification(
                kind="payment",
                external_id=str(data["id"]),
                out_trade_no=str(data["out_trade_no"]),
                status=status,
                gateway_trade_no=str(data["gateway_trade_no"]),
                amount=Money.parse(str(data["amount"]), str(data["currency"])),
                paid_at=paid_at,
            )
        except (ValueError, KeyError, TypeError, MoneyError) as exc:  # NotJson is a ValueError
            raise ProtocolError(f"malformed test notification: {exc}") from exc

    def notification_ack(self, accepted: bool) -> NotificationAck:
        body = json.dumps({"received": accepted}).encode()
        return NotificationAck(200 if accepted else 400, body, "application/json")

    def settle(self, out_trade_no: str, outcome: str, now: datetime) -> TestGatewayTrade | None:
        """The gateway's side: the buyer pays (`succeeded`) or the payment fails."""
        status = "paid" if outcome == "succeeded" else "failed"
        code = None if status == "paid" else "test_declined"
        return self._store.settle(out_trade_no, status, now, failure_code=code)

    def build_notification(self, out_trade_no: str) -> tuple[dict[str, str], bytes]:
        """The gateway's side: the signed notification for a settled trade (for the sandbox)."""
        trade = self._store.get(out_trade_no)
        if trade is None or trade.status not in ("paid", "failed"):
            raise ProtocolError(f"trade {out_trade_no} is not settled")
        amount = Money(trade.amount_minor, trade.currency)
        body = json.dumps(
            {
                "id": f"evt_test_{trade.gateway_trade_no}_{trade.status}",
                "type": "payment.succeeded" if trade.status == "paid" else "payment.failed",
                "out_trade_no": trade.out_trade_no,
                "gateway_trade_no": trade.gateway_trade_no,
                "amount": amount.to_decimal_string(),
                "currency": trade.currency,
                "paid_at": trade.paid_at.isoformat() if trade.paid_at else None,
            }
        ).encode()
        timestamp = int(self._clock.now().timestamp())
        return {
            signing.SIGNATURE_HEADER: signing.sign(self._key, timestamp, body),
            "content-type": "application/json",
        }, body

    # Bills -------------------------------------------------------------------------

    def fetch_bill(self, bill_date: date) -> Bill:
        start = datetime.combine(bill_date, clock_time(0), tzinfo=UTC)
        trades = self._store.paid_between(start, start + timedelta(days=1))
        return Bill(
            bill_date,
            [
                BillLine(
                    t.out_trade_no,
                    t.gateway_trade_no,
                    Money(t.amount_minor, t.currency),
                    "payment",
                    t.paid_at or start,
                )
                for t in trades
            ],
        )

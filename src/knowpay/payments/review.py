"""Staff decide an attempt risk control held: released, it goes to the gateway; rejected,
it fails. Risk control calls this through its ReviewReleaser protocol (it sits below
payments), inside the staff request's transaction."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from knowpay.channels.errors import ChannelError
from knowpay.kit.clock import Clock
from knowpay.orders.states import OrderStatus
from knowpay.payments import service
from knowpay.payments.states import PaymentStatus
from knowpay.risk.models import RiskDecision

logger = logging.getLogger(__name__)


class HeldPaymentReleaser:
    """Fills `knowpay.risk.service.ReviewReleaser`."""

    def __init__(self, ctx: service.PaymentsContext, clock: Clock) -> None:
        self._ctx = ctx
        self._clock = clock

    def release(self, session: Session, decision: RiskDecision) -> None:
        """Open the held attempt at its gateway (unless the order moved on meanwhile)."""
        order, payment = service.lock_order_then_payment(session, decision.payment_id)
        if not payment.held_for_review:
            return
        payment.held_for_review = False  # decided: it waits for nobody now, whatever follows
        now = self._clock.now()
        if payment.status != PaymentStatus.PENDING:  # closed meanwhile: nothing to send
            payment.updated_at = now
            return
        if order.status != OrderStatus.CREATED or order.expires_at <= now:
            service.record_failure(session, payment.id, "order_not_payable", order.status, now)
            return
        try:
            result = service.call_gateway_create(
                self._ctx, payment, order.subject, order.expires_at
            )
        except ChannelError as exc:
            logger.warning("released payment %s could not be opened: %s", payment.id, exc)
            service.fail_unreachable(session, payment.id, str(exc), now)
            return
        service.apply_create_result(session, payment.id, result, now)

    def reject(self, session: Session, decision: RiskDecision) -> None:
        """The held attempt fails; the buyer may try again (risk control will look again)."""
        payment = service.lock_order_then_payment(session, decision.payment_id)[1]
        payment.held_for_review = False
        service.record_failure(
            session, payment.id, "risk_rejected", "Rejected in risk review.", self._clock.now()
        )

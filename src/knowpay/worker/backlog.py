"""What is waiting for the background work, read from the database when Prometheus scrapes:
the same in every process, so it is right however many processes serve /metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from knowpay.kit.db import Database
from knowpay.kit.outbox_models import OutboxEvent
from knowpay.payments.models import Payment
from knowpay.payments.states import PaymentStatus
from knowpay.refunds.models import Refund
from knowpay.refunds.states import RefundStatus
from knowpay.webhooks.models import WebhookDelivery

logger = logging.getLogger("knowpay.metrics")


class BacklogCollector(Collector):
    """Outbox events not yet dispatched, webhook deliveries and refunds not yet settled,
    payments still pending: a backlog that grows means the worker is not keeping up."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self._counts()
        except SQLAlchemyError:
            # The scrape still gets the process's own figures, which matter most right now.
            logger.warning("the backlog could not be read for /metrics", exc_info=True)
            return
        gauge = GaugeMetricFamily(
            "knowpay_backlog",
            "Work not yet done, by kind: outbox events not dispatched, webhook deliveries, "
            "refunds waiting for approval or the gateway, payments still pending.",
            labels=["kind"],
        )
        for kind, count in counts.items():
            gauge.add_metric([kind], float(count or 0))
        yield gauge

    def _counts(self) -> dict[str, int | None]:
        with self._database.session_scope(read_only=True) as session:
            return {
                "outbox_events": session.scalar(
                    select(func.count()).where(OutboxEvent.dispatched_at.is_(None))
                ),
                "webhook_deliveries": session.scalar(
                    select(func.count()).where(WebhookDelivery.status == "pending")
                ),
                "refunds": session.scalar(
                    select(func.count()).where(
                        Refund.status.in_(
                            [RefundStatus.PROCESSING.value, RefundStatus.PENDING_APPROVAL.value]
                        )
                    )
                ),
                "payments": session.scalar(
                    select(func.count()).where(Payment.status == PaymentStatus.PENDING.value)
                ),
            }

    def describe(self) -> Iterator[Metric]:
        return iter(())

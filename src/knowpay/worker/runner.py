"""The background loops, run by `knowpay worker` or inside `knowpay serve`.

Every loop can run in any number of processes at once: work is claimed in the database
(SKIP LOCKED, conditional updates, leases), never by a process-local lock. APScheduler
times the jobs; what the jobs do lives in each domain's tasks module."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from knowpay.audit import tasks as audit_tasks
from knowpay.channels.registry import ChannelRegistry
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import secret_box
from knowpay.kit.db import Database
from knowpay.kit.idempotency import purge_expired
from knowpay.kit.outbox import OutboxDispatcher
from knowpay.limits.service import LimitPolicy
from knowpay.payments import tasks
from knowpay.payments.service import PaymentsContext
from knowpay.reconciliation import tasks as reconciliation_tasks
from knowpay.refunds import tasks as refund_tasks
from knowpay.refunds.service import RefundsContext
from knowpay.settlements import tasks as settlement_tasks
from knowpay.subscriptions import tasks as subscription_tasks
from knowpay.subscriptions.service import SubscriptionsContext
from knowpay.webhooks.delivery import DeliveryPolicy, WebhookDeliverer, WebhookFanout
from knowpay.webhooks.targets import private_targets_allowed

logger = logging.getLogger("knowpay.worker")


class Worker:
    """Outbox dispatch and webhook delivery in threads, jobs on a schedule."""

    def __init__(
        self, settings: Settings, database: Database, clock: Clock, registry: ChannelRegistry
    ) -> None:
        options = settings.worker
        self._options = options
        self._database = database
        self._clock = clock
        self.dispatcher = OutboxDispatcher(database, WebhookFanout(clock), clock)
        self.deliverer = WebhookDeliverer(
            database,
            clock,
            secret_box(settings),
            DeliveryPolicy(
                timeout_s=options.webhook_timeout_s,
                retry_window=timedelta(seconds=options.webhook_retry_window_s),
                public_targets_only=not private_targets_allowed(
                    settings.environment, settings.webhook_private_targets
                ),
            ),
        )
        payments_context = PaymentsContext(
            registry=registry,
            public_url=settings.public_url,
            preference=tuple(settings.channels.preference),
            limit_policy=LimitPolicy(settings.limits.timezone, settings.limits.near_percent),
        )
        self.refund_jobs = refund_tasks.RefundJobContext(
            database=database,
            refunds=RefundsContext(
                payments=payments_context, policy=settings.refunds, wallet=settings.wallet
            ),
            clock=clock,
        )
        self.jobs = tasks.JobContext(
            database=database,
            payments=payments_context,
            clock=clock,
            query_after=timedelta(seconds=options.query_after_s),
            reminder_lead=timedelta(seconds=options.reminder_lead_s),
        )
        self.reconciliation = reconciliation_tasks.ReconciliationContext(
            database=database, registry=registry, clock=clock
        )
        self.settlements = settlement_tasks.SettlementContext(
            database=database, clock=clock, timezone=settings.limits.timezone
        )
        self.renewals = subscription_tasks.RenewalContext(
            database=database,
            clock=clock,
            subscriptions=SubscriptionsContext.of(payments_context, settings),
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduler = BackgroundScheduler(timezone="UTC")

    def scheduled_jobs(self) -> dict[str, Callable[[], object]]:
        """Job name → what it runs."""
        return {
            "expire_orders": lambda: tasks.expire_orders(self.jobs),
            "query_silent_payments": lambda: tasks.query_silent_payments(self.jobs),
            "close_abandoned_attempts": lambda: tasks.close_abandoned_attempts(self.jobs),
            "close_moot_reviews": lambda: tasks.close_moot_reviews(self.jobs),
            "remind_unpaid_orders": lambda: tasks.remind_unpaid_orders(self.jobs),
            "refund_duplicates": lambda: refund_tasks.refund_duplicates(self.refund_jobs),
            "send_refunds": lambda: refund_tasks.send_refunds(self.refund_jobs),
            "check_processing_refunds": lambda: refund_tasks.check_processing_refunds(
                self.refund_jobs
            ),
            "purge_idempotency_keys": self._purge_idempotency_keys,
            "seal_audit_log": lambda: audit_tasks.seal_pending(self._database, self._clock),
            "reconcile_bills": lambda: reconciliation_tasks.reconcile_bills(self.reconciliation),
            "settle_creators": lambda: settlement_tasks.settle_last_month(self.settlements),
            "renew_subscriptions": lambda: subscription_tasks.renew_subscriptions(self.renewals),
        }

    def _purge_idempotency_keys(self) -> int:
        with self._database.session_scope() as session:
            return purge_expired(session, self._clock.now())

    def run_jobs_once(self) -> dict[str, object]:
        """Run every job now, once (tests and `knowpay worker --once`)."""
        return {name: job() for name, job in self.scheduled_jobs().items()}

    def start(self) -> None:
        """Start the loops in the background."""
        idle = self._options.idle_wait_s
        self._threads = [
            threading.Thread(
                target=self.dispatcher.run_forever,
                args=(self._stop, idle),
                name="outbox",
                daemon=True,
            ),
            threading.Thread(
                target=self.deliverer.run_forever,
                args=(self._stop, self._options.webhook_max_in_flight, idle),
                name="webhooks",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()
        for name, job in self.scheduled_jobs().items():
            self._scheduler.add_job(
                _logged(name, job),
                "interval",
                seconds=self._options.jobs_interval_s,
                id=name,
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.start()
        logger.info("worker started: outbox, webhooks and %d jobs", len(self.scheduled_jobs()))

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming work; let what is in flight finish (bounded by its timeouts)."""
        first_call = not self._stop.is_set()
        self._stop.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        if first_call:
            logger.info("worker stopped")

    def wait(self) -> None:
        """Block until stop() is called (from a signal handler)."""
        self._stop.wait()


def _logged(name: str, job: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            outcome = job()
            if outcome:
                logger.info("job %s: %s", name, outcome)
        except Exception:
            logger.exception("job %s failed; it runs again at its next interval", name)

    return run

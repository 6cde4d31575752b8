"""Fixtures of the risk tests: the risk router on the app (until app.py includes it), a fake
review releaser, and a helper that assesses attempts through the service."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.kit.errors import Conflict
from knowpay.risk import service
from knowpay.risk.endpoints import router
from knowpay.risk.models import RiskDecision, RiskRule
from knowpay.risk.schemas import rule_create_adapter

_numbers = itertools.count(1)


@dataclass
class FakeReleaser:
    """Stands in for the payments domain: remembers what it was asked to do."""

    released: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    fail_with: Exception | None = None

    def release(self, session: Session, decision: RiskDecision) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.released.append(decision.id)

    def reject(self, session: Session, decision: RiskDecision) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.rejected.append(decision.id)


class ReleaseRefused(Conflict):
    code = "release_refused"


@pytest.fixture
def releaser() -> FakeReleaser:
    return FakeReleaser()


@pytest.fixture
def app(app: FastAPI, releaser: FakeReleaser) -> FastAPI:
    if not any(getattr(r, "path", "").startswith("/v1/admin/risk") for r in app.routes):
        app.include_router(router)
    app.state.risk_releaser = releaser
    return app


class Risk:
    """Assess attempts and manage rules straight through the risk service."""

    def __init__(self, database: Database, clock: FrozenClock) -> None:
        self.database = database
        self.clock = clock

    def rule(
        self, kind: str, action: str, params: dict[str, Any] | None = None, **extra: Any
    ) -> RiskRule:
        body = rule_create_adapter.validate_python(
            {"kind": kind, "action": action, "params": params or {}, **extra}
        )
        with self.database.session_scope() as session:
            return service.create_rule(session, body, self.clock.now())

    def assess(self, **fields: Any) -> RiskDecision:
        number = next(_numbers)
        values: dict[str, Any] = {
            "payment_id": f"pay_test{number:022d}",
            "order_id": f"ord_test{number:022d}",
            "app_id": "app_test",
            "user_id": "usr_buyer",
            "amount_minor": 9900,
            "currency": "CNY",
            "channel": "test",
            "client_ip": "198.51.100.1",
            "device_id": None,
        }
        values.update(fields)
        now: datetime = values.pop("now", None) or self.clock.now()
        with self.database.session_scope() as session:
            return service.assess(session, service.RiskAttempt(**values), now)

    def outcome(self, decision: RiskDecision, *, succeeded: bool) -> bool:
        with self.database.session_scope() as session:
            return service.record_outcome(session, decision.payment_id, succeeded, self.clock.now())

    def paid(self, **fields: Any) -> RiskDecision:
        """An attempt that went through and succeeded (history for the anomaly rule)."""
        decision = self.assess(**fields)
        assert self.outcome(decision, succeeded=True)
        return decision


@pytest.fixture
def risk(database: Database, clock: FrozenClock) -> Risk:
    return Risk(database, clock)

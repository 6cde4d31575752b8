"""Tables of the risk domain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class RiskRule(Base):
    """One rule, as data: its kind, its params (JSON, validated per kind on write) and what a
    match does. Read on every assessment, so a change applies to the next attempt."""

    __tablename__ = "risk_rules"
    __table_args__ = (
        CheckConstraint(
            "kind in ('velocity', 'failed_streak', 'blacklist', 'amount_anomaly', 'new_account')",
            name="kind_known",
        ),
        CheckConstraint("action in ('review', 'deny')", name="action_known"),
        Index("ix_risk_rules_enabled_priority", "enabled", "priority"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params_json: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool]
    priority: Mapped[int]
    description: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @property
    def params(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.params_json)
        return loaded


class RiskBlacklistEntry(Base):
    """A buyer, IP, device or payer account (as the gateway names it) that may not pay."""

    __tablename__ = "risk_blacklist"
    __table_args__ = (
        UniqueConstraint("kind", "value"),
        CheckConstraint("kind in ('buyer', 'ip', 'device', 'payer_account')", name="kind_known"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]


class RiskAttemptRecord(Base):
    """Risk control's own log of assessed attempts (it sits below payments and does not read
    their table): what velocity, failed-streak and amount-anomaly rules count."""

    __tablename__ = "risk_attempts"
    __table_args__ = (
        UniqueConstraint("payment_id"),
        CheckConstraint(
            "outcome in ('pending', 'succeeded', 'failed', 'denied')", name="outcome_known"
        ),
        Index("ix_risk_attempts_user_id_created_at", "user_id", "created_at"),
        Index("ix_risk_attempts_client_ip_created_at", "client_ip", "created_at"),
        Index("ix_risk_attempts_device_id_created_at", "device_id", "created_at"),
        Index("ix_risk_attempts_user_id_outcome_currency", "user_id", "outcome", "currency"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    app_id: Mapped[str] = mapped_column(String(40))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(128))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    outcome_at: Mapped[datetime | None]


class RiskDecision(Base):
    """The decision on one payment attempt with every matching rule as a reason; a `review`
    carries the staff review's status."""

    __tablename__ = "risk_decisions"
    __table_args__ = (
        UniqueConstraint("payment_id"),
        CheckConstraint("decision in ('allow', 'review', 'deny')", name="decision_known"),
        CheckConstraint(
            "(decision = 'review' AND review_status in ('open', 'released', 'rejected', 'closed')) "
            "OR (decision <> 'review' AND review_status IS NULL)",
            name="review_status_only_on_reviews",
        ),
        Index("ix_risk_decisions_review_status_id", "review_status", "id"),
        Index("ix_risk_decisions_user_id_id", "user_id", "id"),
        Index("ix_risk_decisions_decision_id", "decision", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    app_id: Mapped[str] = mapped_column(String(40))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(32))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    reasons_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    review_status: Mapped[str | None] = mapped_column(String(16))
    reviewed_by: Mapped[str | None] = mapped_column(String(80))
    reviewed_at: Mapped[datetime | None]
    review_note: Mapped[str | None] = mapped_column(String(500))

    @property
    def reasons(self) -> list[dict[str, str]]:
        """Every matching rule: `{rule_id, kind, action, detail}`, in rule priority order."""
        loaded: list[dict[str, str]] = json.loads(self.reasons_json)
        return loaded

    @property
    def rule_ids(self) -> list[str]:
        return [reason["rule_id"] for reason in self.reasons]

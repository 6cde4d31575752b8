"""Tables of reconciliation: one run per bill fetched, and what it did not match."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class ReconciliationRun(Base):
    """One gateway's bill of one day, matched against the books at `finished_at`."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (Index("ix_reconciliation_runs_gateway_bill_date", "gateway", "bill_date"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32))
    bill_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(16))
    # `{gateway}:{date}:{try}` for the scheduled job's tries (unique: one process takes each);
    # null for a run staff started.
    schedule_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    started_by: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    bill_lines: Mapped[int] = mapped_column(default=0)
    matched: Mapped[int] = mapped_column(default=0)
    discrepancies: Mapped[int] = mapped_column(default=0)
    totals_json: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str | None] = mapped_column(String(500))


class Discrepancy(Base):
    """A bill line knowpay does not hold as the gateway does, or a capture or refund of
    knowpay's that the bill does not show."""

    __tablename__ = "reconciliation_discrepancies"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("reconciliation_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    line_kind: Mapped[str] = mapped_column(String(16))
    out_trade_no: Mapped[str | None] = mapped_column(String(128))
    gateway_trade_no: Mapped[str | None] = mapped_column(String(128))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    refund_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    gateway_amount_minor: Mapped[int | None]
    knowpay_amount_minor: Mapped[int | None]
    detail: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(80))
    resolution_note: Mapped[str | None] = mapped_column(String(500))

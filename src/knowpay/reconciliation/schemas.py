"""Request and response bodies of reconciliation."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from knowpay.kit.schemas import Day
from knowpay.reconciliation.models import Discrepancy, ReconciliationRun

RunStatus = Literal["running", "balanced", "discrepancies", "failed"]
"""`balanced`: every bill line matched and nothing of knowpay's is missing from the bill."""
DiscrepancyKind = Literal[
    "missing_in_knowpay",
    "missing_at_gateway",
    "amount_mismatch",
    "status_mismatch",
    "duplicate_at_gateway",
]


class RunCreate(BaseModel):
    """Reconcile one gateway's bill of one day now (its day on the gateway's clock)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"gateway": "alipay", "bill_date": "2026-11-27"}]},
    )

    gateway: str = Field(max_length=32, pattern=r"^[a-z_]+$")
    bill_date: Day


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=500, description="What explains it")


class DiscrepancyOut(BaseModel):
    object: Literal["reconciliation_discrepancy"] = "reconciliation_discrepancy"
    id: str
    run_id: str
    kind: DiscrepancyKind
    line_kind: Literal["payment", "refund"]
    out_trade_no: str | None
    gateway_trade_no: str | None
    payment_id: str | None
    refund_id: str | None
    currency: str
    gateway_amount: int | None = Field(description="Minor units, as the bill says")
    knowpay_amount: int | None = Field(description="Minor units, as knowpay's books say")
    detail: str
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None

    @classmethod
    def of(cls, found: Discrepancy) -> DiscrepancyOut:
        return cls(
            id=found.id,
            run_id=found.run_id,
            kind=cast(DiscrepancyKind, found.kind),
            line_kind=cast(Literal["payment", "refund"], found.line_kind),
            out_trade_no=found.out_trade_no,
            gateway_trade_no=found.gateway_trade_no,
            payment_id=found.payment_id,
            refund_id=found.refund_id,
            currency=found.currency,
            gateway_amount=found.gateway_amount_minor,
            knowpay_amount=found.knowpay_amount_minor,
            detail=found.detail,
            created_at=found.created_at,
            resolved_at=found.resolved_at,
            resolved_by=found.resolved_by,
            resolution_note=found.resolution_note,
        )


class Totals(BaseModel):
    """Sums of one currency, in minor units: what the bill lists and what knowpay's books
    hold for the same day."""

    gateway_payments: int = 0
    knowpay_payments: int = 0
    gateway_refunds: int = 0
    knowpay_refunds: int = 0


class RunOut(BaseModel):
    object: Literal["reconciliation"] = "reconciliation"
    id: str
    gateway: str
    bill_date: date
    status: RunStatus
    started_by: str
    started_at: datetime
    finished_at: datetime | None
    bill_lines: int
    matched: int
    discrepancy_count: int
    totals: dict[str, Totals]
    error: str | None
    discrepancies: list[DiscrepancyOut] | None = Field(
        default=None, description="Listed when one run is read or made, not in lists"
    )

    @classmethod
    def of(cls, run: ReconciliationRun, discrepancies: list[Discrepancy] | None = None) -> RunOut:
        return cls(
            id=run.id,
            gateway=run.gateway,
            bill_date=run.bill_date,
            status=cast(RunStatus, run.status),
            started_by=run.started_by,
            started_at=run.started_at,
            finished_at=run.finished_at,
            bill_lines=run.bill_lines,
            matched=run.matched,
            discrepancy_count=run.discrepancies,
            totals={
                currency: Totals(**sums)
                for currency, sums in json.loads(run.totals_json or "{}").items()
            },
            error=run.error,
            discrepancies=None
            if discrepancies is None
            else [DiscrepancyOut.of(d) for d in discrepancies],
        )

"""Errors of reconciliation."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, NotFound, Unprocessable


class RunNotFound(NotFound):
    code, title = "reconciliation_not_found", "No such reconciliation run"


class DiscrepancyNotFound(NotFound):
    code, title = "discrepancy_not_found", "No such discrepancy"


class DiscrepancyResolved(Conflict):
    code, title = "discrepancy_already_resolved", "The discrepancy was already resolved"


class GatewayWithoutBills(Unprocessable):
    code, title = "gateway_without_bills", "No bill can be fetched from this gateway here"


class BillNotReady(Unprocessable):
    code, title = "bill_not_ready", "The gateway's bill of that day is not complete yet"

"""Errors of the settlements domain."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, NotFound, Unprocessable


class SettlementNotFound(NotFound):
    code, title = "settlement_not_found", "No such settlement"


class SettlementNotPayable(Conflict):
    code, title = "settlement_not_payable", "Only an open settlement with money due is paid"


class PeriodNotOver(Unprocessable):
    code, title = "period_not_over", "A month is settled only once it has ended"

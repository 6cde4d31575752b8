"""Errors of the limits domain."""

from __future__ import annotations

from knowpay.kit.errors import NotFound, Unprocessable


class LimitExceeded(Unprocessable):
    code, title = "limit_exceeded", "The payment would exceed a spending limit"


class LimitNotFound(NotFound):
    code, title = "limit_not_found", "No such limit"


class InvalidLimit(Unprocessable):
    code, title = "invalid_limit", "The limit is not valid"

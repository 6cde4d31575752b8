"""Errors of the gateway credentials store."""

from __future__ import annotations

from knowpay.kit.errors import NotFound, Unprocessable


class UnknownGateway(NotFound):
    code, title = "unknown_gateway", "No such gateway"


class InvalidCredentials(Unprocessable):
    code, title = "invalid_gateway_credentials", "The gateway credentials are not valid"


class StoredCredentialsUnreadable(RuntimeError):
    """Stored credentials do not open with this master key (the message names no value)."""

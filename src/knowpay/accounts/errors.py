"""Errors of the accounts domain, each with a stable code."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, Forbidden, KnowpayError, NotFound, Unauthorized


class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "Wrong email or password"


class EmailTaken(Conflict):
    code, title = "email_taken", "A user with this email already exists"


class UserNotFound(NotFound):
    code, title = "user_not_found", "No such user"


class AppNotFound(NotFound):
    code, title = "app_not_found", "No such app"


class PaymentPasswordNotSet(Forbidden):
    code, title = "payment_password_not_set", "No payment password has been set"


class PaymentPasswordIncorrect(Forbidden):
    code, title = "payment_password_incorrect", "The payment password is wrong"


class PaymentPasswordLocked(KnowpayError):
    status, code, title = 423, "payment_password_locked", "The payment password is locked"

"""Masking of personal data: for staff views whose role does not need it, and for logs.

`install_log_masking()` (called when the app is built) makes every log record, from any
logger and to any handler, pass through `mask_text`: emails, mainland mobile numbers,
card-number-like digit groups and any run of 11 or more digits are masked before a handler
sees them. A card number therefore never reaches a log, whatever logged it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

_EDGE_BEFORE = r"(?<![0-9A-Za-z_])"
_EDGE_AFTER = r"(?![0-9A-Za-z_])"
# The look-behind starts a local part only where one can start: without it, every position
# of a long run of letters or digits with no `@` rescans the run (quadratic: minutes of CPU
# for one log line with a 200 kB value).
# A bearer credential in a URL's query: the cashier link's `?t=` opens its order to whoever
# holds it (docs/web.md), so the access log must not keep it.
_URL_TOKEN = re.compile(r"([?&](?:t|token|access_token)=)[^&\s\"']+")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])([A-Za-z0-9._%+\-]+)@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
# 13-19 digits written in groups ("4111 1111 1111 1111", "6222-0200-…").
_GROUPED_DIGITS = re.compile(_EDGE_BEFORE + r"\d{4}(?:[ \-]\d{2,6}){2,4}" + _EDGE_AFTER)
_LONG_DIGITS = re.compile(_EDGE_BEFORE + r"(\+?86[ \-]?)?(\d{11,})" + _EDGE_AFTER)
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def mask_email(email: str) -> str:
    """`zhang.san@example.com` → `z***@example.com`."""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """`13812345678` → `138****5678`; `+8613812345678` → `+86138****5678`; other numbers keep
    their first 3 and last 4 digits (short ones only the last 2)."""
    text = phone.strip()
    prefix = ""
    digits = text
    if text.startswith("+86") and _CN_MOBILE.match(text[3:].lstrip(" -")):
        prefix, digits = "+86", text[3:].lstrip(" -")
    if len(digits) >= 8:
        return f"{prefix}{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
    return f"{prefix}{'*' * max(0, len(digits) - 2)}{digits[-2:]}"


def mask_account(value: str) -> str:
    """A payer account, openid or card number: only the last 4 characters stay (an email or
    phone number used as an account is masked as one)."""
    text = value.strip()
    if "@" in text:
        return mask_email(text)
    if _CN_MOBILE.match(text):
        return mask_phone(text)
    compact = re.sub(r"[ \-]", "", text)
    if len(compact) <= 4:
        return "*" * len(compact)
    return "*" * (len(compact) - 4) + compact[-4:]


def _mask_grouped_digits(match: re.Match[str]) -> str:
    digits = sum(char.isdigit() for char in match.group(0))
    return mask_account(match.group(0)) if digits >= 13 else match.group(0)


def _mask_long_digits(match: re.Match[str]) -> str:
    prefix, digits = match.group(1) or "", match.group(2)
    if len(digits) == 11 and _CN_MOBILE.match(digits):
        return prefix + mask_phone(digits)
    return prefix + mask_account(digits)


def mask_text(text: str) -> str:
    """Free text with emails, mobile numbers, grouped card numbers, 11+-digit runs and tokens
    in URL queries masked."""
    if not text:
        return text
    text = _URL_TOKEN.sub(r"\1***", text)
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    text = _GROUPED_DIGITS.sub(_mask_grouped_digits, text)
    return _LONG_DIGITS.sub(_mask_long_digits, text)


def mask_record(record: logging.LogRecord) -> None:
    """Mask a log record in place: its message (arguments merged in), traceback and stack."""
    # Arguments are masked one by one so that formatters that read them (uvicorn's access
    # log unpacks a 5-tuple) keep working; only what is still unmasked is merged.
    if isinstance(record.args, tuple):
        record.args = tuple(mask_text(a) if isinstance(a, str) else a for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: mask_text(v) if isinstance(v, str) else v for k, v in record.args.items()}
    if isinstance(record.msg, str):
        record.msg = mask_text(record.msg)
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep what there is, masked
        message = f"{record.msg} {record.args}"
    masked = mask_text(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_text(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)


class MaskingFilter(logging.Filter):
    """The same masking as a filter, for a logging configuration that wants it on a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


_install_lock = threading.Lock()
_installed = False


def install_log_masking() -> None:
    """Mask every log record of this process from now on (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            mask_record(record)
            return record

        logging.setLogRecordFactory(masking_factory)
        _installed = True

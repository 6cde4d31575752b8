"""What a knowpay process logs, and how: one configuration for `serve`, `demo` and `worker`.

knowpay's loggers print at `KNOWPAY_LOG_LEVEL` to stderr, each record with the id of the
request it belongs to (`-` outside a request): as text beside uvicorn's own lines, or, with
`KNOWPAY_LOG_FORMAT=json`, every line of the process (uvicorn's too) as one JSON object.
"""

from __future__ import annotations

import copy
import logging
import logging.config
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from uvicorn.config import LOGGING_CONFIG

from knowpay.kit import context
from knowpay.kit.masking import install_log_masking, mask_text

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
_JSON_FIELDS = ("levelname", "name", "message", "request_id")
_UVICORN_HANDLERS = ("default", "access")


class MaskedJsonFormatter(JsonFormatter):
    """JSON lines whose tracebacks are masked too: the formatter rebuilds them from the
    exception itself, not from the masked text the record carries."""

    def formatException(self, ei: Any) -> str | list[str]:  # type: ignore[override]  # noqa: N802
        return _masked(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str | list[str]:  # type: ignore[override]  # noqa: N802
        return _masked(super().formatStack(stack_info))


def _masked(text: str | list[str]) -> str | list[str]:
    return mask_text(text) if isinstance(text, str) else [mask_text(line) for line in text]


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id, unless the record names one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = context.current().request_id or "-"
        return True


def _json_formatter() -> dict[str, Any]:
    return {
        "()": MaskedJsonFormatter,
        "fmt": list(_JSON_FIELDS),
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",  # RFC 3339, UTC
        "json_ensure_ascii": False,
        # uvicorn adds a colourised copy of its message to its own records.
        "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
    }


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging configuration plus knowpay's loggers at `level`, on stderr."""
    config = copy.deepcopy(LOGGING_CONFIG)
    formatter = "knowpay_json" if log_format == "json" else "knowpay_text"
    config["filters"] = {"request_id": {"()": RequestIdFilter}}
    config["formatters"]["knowpay_text"] = {"format": _TEXT_FORMAT}
    config["formatters"]["knowpay_json"] = _json_formatter()
    config["handlers"]["knowpay"] = {
        "class": "logging.StreamHandler",
        "formatter": formatter,
        "filters": ["request_id"],
        "stream": "ext://sys.stderr",
    }
    if log_format == "json":
        for name in _UVICORN_HANDLERS:
            config["handlers"][name] |= {"formatter": formatter, "filters": ["request_id"]}
    config["loggers"]["knowpay"] = {"handlers": ["knowpay"], "level": level, "propagate": False}
    return config


def configure_process_logging(level: str, log_format: str = "text") -> None:
    """For a process uvicorn does not start (`knowpay worker`): the same loggers, and
    masking of every record as the API processes have it."""
    install_log_masking()
    logging.config.dictConfig(log_config(level, log_format))

"""What a knowpay process logs, and where: one configuration for `serve`, `demo` and `worker`.

Without it only uvicorn's own loggers were set up, so knowpay's INFO records (jobs run,
gateway calls, risk decisions, credentials rebuilt) reached no handler, and a worker process
printed only WARNING and above through Python's last-resort handler, unmasked.
"""

from __future__ import annotations

import copy
import logging
import logging.config
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from knowpay.kit.masking import install_log_masking

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus knowpay's loggers at `level`, on stderr."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["knowpay"] = {"format": _FORMAT}
    config["handlers"]["knowpay"] = {
        "class": "logging.StreamHandler",
        "formatter": "knowpay",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["knowpay"] = {"handlers": ["knowpay"], "level": level, "propagate": False}
    return config


def configure_process_logging(level: str) -> None:
    """For a process uvicorn does not start (`knowpay worker`): the same loggers, and
    masking of every record as the API processes have it."""
    install_log_masking()
    logging.config.dictConfig(log_config(level))

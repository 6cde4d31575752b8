"""JSON from outside the process (a gateway's answer, a notification, a form field), with
every way Python's parser can refuse it turned into one error the caller maps to its own."""

from __future__ import annotations

import json
from typing import Any


class NotJson(ValueError):
    """The text is not JSON this process can hold."""


def parse_json(raw: bytes | str) -> Any:
    """`json.loads(raw)`, raising only NotJson. Besides a syntax error the parser raises a
    ValueError for bytes that are not UTF-8 and for an integer of more digits than int()
    converts (4,300), and a RecursionError for nesting deeper than the interpreter's stack:
    each came in by a gateway's body once, as a 500."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise NotJson(f"{type(exc).__name__}: {exc}"[:300]) from exc

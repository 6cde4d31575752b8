"""Stripe's statement of a day: the balance transactions created in that UTC day
(`GET /v1/balance_transactions?created[gte]=…&created[lt]=…`, newest first, paged with
`starting_after`), each with its source (charge or refund) expanded for the trade's
number and the presentment amount."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from knowpay.channels.errors import ProtocolError
from knowpay.channels.stripe import transformers
from knowpay.channels.stripe.client import StripeClient
from knowpay.channels.types import Bill, BillLine

PAGE_SIZE = 100
MAX_PAGES = 1000
"""A guard against a gateway that never says has_more=false (100 000 transactions a day)."""


def fetch(client: StripeClient, bill_date: date) -> Bill:
    """Every payment and refund Stripe booked on `bill_date` (UTC)."""
    start = datetime.combine(bill_date, time.min, UTC)
    end = start + timedelta(days=1)
    params: dict[str, Any] = {
        "created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())},
        "limit": PAGE_SIZE,
        "expand": ["data.source"],
    }
    lines: list[BillLine] = []
    for _ in range(MAX_PAGES):
        page = client.get("/v1/balance_transactions", params)
        data = page.get("data")
        if page.get("object") != "list" or not isinstance(data, list):
            raise ProtocolError("the balance transactions answer is not a list")
        for transaction in data:
            if not isinstance(transaction, dict):
                raise ProtocolError("a balance transaction that is not an object")
            line = transformers.bill_line(transaction)
            if line is not None:
                lines.append(line)
        if not page.get("has_more") or not data:
            # Stripe lists newest first; the bill reads oldest first.
            lines.reverse()
            return Bill(bill_date, sorted(lines, key=lambda line: line.occurred_at))
        params["starting_after"] = transformers.object_id(data[-1], "txn_")
    raise ProtocolError(f"more than {MAX_PAGES} pages of balance transactions")

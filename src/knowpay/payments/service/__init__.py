"""Payment attempts and recording a capture exactly once.

`record_capture` is the one place money arrives: payment, ledger entry, entitlements and
outbox events change together in the caller's transaction, under row locks taken in one
order (order, then payment) so that concurrent notifications, queries and closes serialise.
Never commits, but for `close_order`, which commits before it asks the gateways (no lock is
held through a gateway call) and marks the order closing meanwhile.

What lives where (callers import from here: `from knowpay.payments import service`):
- `context`: `PaymentsContext`, what the flows need from the composition root.
- `start`: `start_payment`, `call_gateway_create` and `apply_create_result`.
- `capture`: `record_capture` and `CaptureOutcome`; paying the order, duplicates.
- `closing`: `fail_unreachable`, `record_failure`, `record_closed_at_gateway`, `close_order`,
  `gateway_error`.
- `active_query`: `query_gateway` and `apply_query_result`.
- `wallet`: `pay_from_wallet` (no gateway: paid or refused in one transaction),
  `charge_wallet` (the same with no buyer present: a subscription's renewal), `payer_of`.
- `reads`: `get_payment`, `get_visible`, `get_for_return`, the duplicates' reads and claim,
  `lock_order_then_payment`.
- `_shared`: the private helpers the others import (events, audit, locks, `_fail`).
"""

from knowpay.payments.service.active_query import apply_query_result, query_gateway
from knowpay.payments.service.capture import CaptureOutcome, record_capture
from knowpay.payments.service.closing import (
    close_order,
    fail_unreachable,
    gateway_error,
    record_closed_at_gateway,
    record_failure,
)
from knowpay.payments.service.context import PaymentsContext
from knowpay.payments.service.reads import (
    claim_duplicate_for_refund,
    get_for_return,
    get_payment,
    get_visible,
    list_duplicates,
    lock_order_then_payment,
    unrefunded_duplicates,
)
from knowpay.payments.service.start import apply_create_result, call_gateway_create, start_payment
from knowpay.payments.service.wallet import charge_wallet, pay_from_wallet, payer_of

__all__ = [
    "CaptureOutcome",
    "PaymentsContext",
    "apply_create_result",
    "apply_query_result",
    "call_gateway_create",
    "charge_wallet",
    "claim_duplicate_for_refund",
    "close_order",
    "fail_unreachable",
    "gateway_error",
    "get_for_return",
    "get_payment",
    "get_visible",
    "list_duplicates",
    "lock_order_then_payment",
    "pay_from_wallet",
    "payer_of",
    "query_gateway",
    "record_capture",
    "record_closed_at_gateway",
    "record_failure",
    "start_payment",
    "unrefunded_duplicates",
]

"""Refunds: requesting, approving, executing through the original channel, settling.

Every step writes the refund's status, its timeline entry, its ledger entry and its events
in one transaction. What is still refundable is computed under the order's row lock, so
concurrent requests in many processes cannot together exceed what was captured. Never
commits; gateway calls happen with no transaction open (see tasks.py and endpoints.py).

What lives where (each module imports only modules listed above it):

- `reading`: getting, locking (order first, then refund) and listing refunds; the timeline.
- `_shared`: the steps every flow writes with (state transition and its audit record,
  timeline entry, ledger posting, event), who acted, the `RefundsContext`, what is still
  refundable.
- `sending`: what is sent to the gateway for a refund's attempt, and sending it.
- `settling`: applying a gateway's result (answer, notification or query) and settling
  the order's side of a succeeded refund.
- `deciding`: approving (which queues the gateway call under a fresh refund number),
  rejecting, retrying and resolving a refund by hand.
- `requesting`: a refund asked for on a paid order, or started for a duplicate payment.
"""

from knowpay.refunds.service._shared import SYSTEM, RefundsContext, actor_of
from knowpay.refunds.service.deciding import (
    SENT_BY_THE_REQUEST_FOR,
    approve,
    leave_to_the_request,
    reject,
    resolve_manually,
    retry,
)
from knowpay.refunds.service.reading import (
    by_out_refund_no,
    get,
    get_visible,
    list_refunds,
    lock,
    lock_with_order,
    open_amount,
    timeline,
)
from knowpay.refunds.service.requesting import (
    DUPLICATE_OF_CLOSED,
    DUPLICATE_OF_PAID,
    REFUNDABLE,
    request_refund,
    start_duplicate_refund,
)
from knowpay.refunds.service.sending import (
    alert_unbelievable_answer,
    call_gateway,
    refund_request,
    send,
)
from knowpay.refunds.service.settling import apply_result, names_another_refund, record_answer

__all__ = [
    "DUPLICATE_OF_CLOSED",
    "DUPLICATE_OF_PAID",
    "REFUNDABLE",
    "SENT_BY_THE_REQUEST_FOR",
    "SYSTEM",
    "RefundsContext",
    "actor_of",
    "alert_unbelievable_answer",
    "apply_result",
    "approve",
    "by_out_refund_no",
    "call_gateway",
    "get",
    "get_visible",
    "leave_to_the_request",
    "list_refunds",
    "lock",
    "lock_with_order",
    "names_another_refund",
    "open_amount",
    "record_answer",
    "refund_request",
    "reject",
    "request_refund",
    "resolve_manually",
    "retry",
    "send",
    "start_duplicate_refund",
    "timeline",
]

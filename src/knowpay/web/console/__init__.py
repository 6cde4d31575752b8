"""The staff console, /admin: search, an order's full story, the queues (refund approvals,
duplicate payments, risk reviews), channel health, limits, the audit log, alerts,
reconciliation, creators' settlements, subscriptions and reports. Pages build on
knowpay.web (templating, session, catalogs)."""

from __future__ import annotations

from fastapi import APIRouter

from knowpay.web.console import (
    actions,
    pages,
    reconciliation,
    report_pages,
    settlements,
    subscriptions,
)

console_router = APIRouter()  # only includes routers, each a SessionRoute router
console_router.include_router(pages.router)
console_router.include_router(actions.router)
console_router.include_router(report_pages.router)
console_router.include_router(reconciliation.router)
console_router.include_router(settlements.router)
console_router.include_router(subscriptions.router)

__all__ = ["console_router"]

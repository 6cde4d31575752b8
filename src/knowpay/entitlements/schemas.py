"""Response bodies of entitlements."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from knowpay.entitlements.models import Entitlement


class EntitlementOut(BaseModel):
    object: Literal["entitlement"] = "entitlement"
    id: str
    user_id: str
    product_id: str
    valid_from: datetime
    valid_until: datetime | None
    payment_id: str
    revoked_at: datetime | None
    first_accessed_at: datetime | None
    updated_at: datetime = Field(
        description="When access last changed (a grant, a renewal, a refund taking it back or "
        "shortening it); later changes always carry a later time, so of two copies of one "
        "entitlement, in events that arrived out of order, the later `updated_at` stands."
    )

    @classmethod
    def of(cls, entitlement: Entitlement) -> EntitlementOut:
        return cls(
            id=entitlement.id,
            user_id=entitlement.user_id,
            product_id=entitlement.product_id,
            valid_from=entitlement.valid_from,
            valid_until=entitlement.valid_until,
            payment_id=entitlement.payment_id,
            revoked_at=entitlement.revoked_at,
            first_accessed_at=entitlement.first_accessed_at,
            updated_at=entitlement.updated_at,
        )

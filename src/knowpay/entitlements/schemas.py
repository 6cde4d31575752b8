"""Response bodies of entitlements."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

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
        )

"""Errors of the entitlements domain."""

from __future__ import annotations

from knowpay.kit.errors import Conflict


class EntitlementNotActive(Conflict):
    code, title = "entitlement_not_active", "The buyer no longer has this content"

"""What payment flows need from the composition root (`PaymentsContext`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from knowpay.channels.base import Channel
from knowpay.channels.registry import ChannelRegistry
from knowpay.kit.urls import url_origin
from knowpay.limits import service as limits


@dataclass(frozen=True, slots=True)
class PaymentsContext:
    """What payment flows need from the composition root."""

    registry: ChannelRegistry
    public_url: str
    preference: tuple[str, ...] = ()
    """Routing order of channels when the payer names none."""
    limit_policy: limits.LimitPolicy = field(default_factory=limits.LimitPolicy)
    """Where a limit's day begins and when `limit.near` is sent."""
    return_url_origins: tuple[str, ...] = ()
    """Where a buyer-set `return_url` may lead besides `public_url` (CORS and configured)."""

    def allows_buyer_return_to(self, url: str) -> bool:
        """A buyer's own `return_url` must stay on the platform's origins: `/return/{id}`
        sends the browser there from knowpay's address, and must not serve phishing."""
        origin = url_origin(url)
        allowed = {url_origin(known) for known in (self.public_url, *self.return_url_origins)}
        return origin is not None and origin in allowed

    def notify_url(self, channel: Channel) -> str:
        return f"{self.public_url}/notify/{channel.gateway}"

    def return_url(self, payment_id: str) -> str:
        """Where gateways send the payer back: knowpay asks the gateway, then redirects the
        browser to the app's own return_url."""
        return f"{self.public_url}/return/{payment_id}"

    def cashier_url(self, order_id: str) -> str:
        """The order's cashier page (web/cashier.py), which shows the payer how it went."""
        return f"{self.public_url}/pay/{quote(order_id, safe='')}"

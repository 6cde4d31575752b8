"""Which channels can pay an order, and which one to use when the payer names none.

A channel can pay an order when it charges the order's currency within its amount limits,
serves the payer's device and country, and its gateway's breaker is not open. The
preference order (settings `channels.preference`) decides the routing when the payer did not
insist on a channel, and is the order of the list the cashier shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowpay.channels.base import Channel
from knowpay.channels.health import ChannelHealthView
from knowpay.channels.registry import ChannelRegistry
from knowpay.channels.types import Device
from knowpay.orders.models import Order
from knowpay.payments.errors import ChannelUnavailableError, NoChannelAvailable

_WECHAT = re.compile(r"MicroMessenger", re.IGNORECASE)
_ALIPAY = re.compile(r"AlipayClient", re.IGNORECASE)
_MOBILE = re.compile(r"Mobile|Android|iPhone|iPad|iPod|HarmonyOS|Windows Phone", re.IGNORECASE)


def device_from_user_agent(user_agent: str | None) -> Device | None:
    """The payer's device as the browser tells it; None when there is no telling (an app's
    server calling the API), in which case channels are not filtered by device."""
    if not user_agent:
        return None
    if _WECHAT.search(user_agent):
        return "wechat"
    if _ALIPAY.search(user_agent):
        return "alipay"
    if _MOBILE.search(user_agent):
        return "mobile"
    if user_agent.startswith("Mozilla/"):
        return "desktop"
    return None


@dataclass(frozen=True, slots=True)
class Payer:
    """Where the payer is, as far as routing cares."""

    device: Device | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    channel: Channel
    health: ChannelHealthView


def _rank(preference: list[str], name: str) -> tuple[int, str]:
    return (preference.index(name) if name in preference else len(preference), name)


def _serves(channel: Channel, order: Order, payer: Payer) -> bool:
    profile = channel.profile
    if not profile.can_charge(order.amount_minor, order.currency):
        return False
    if payer.device is not None and payer.device not in profile.devices:
        return False
    return not (
        payer.country is not None and profile.countries and payer.country not in profile.countries
    )


def candidates(
    registry: ChannelRegistry, preference: list[str], order: Order, payer: Payer
) -> list[ChannelChoice]:
    """Channels that serve this order and payer, healthy or not, in preference order."""
    serving = [c for c in registry.all() if _serves(c, order, payer)]
    serving.sort(key=lambda c: _rank(preference, c.name))
    return [ChannelChoice(c, registry.health.view(c.name, c.gateway)) for c in serving]


def payable(
    registry: ChannelRegistry, preference: list[str], order: Order, payer: Payer
) -> list[ChannelChoice]:
    """Channels that can pay this order now: serving it and their breaker not open."""
    return [c for c in candidates(registry, preference, order, payer) if c.health.available]


def choose(
    registry: ChannelRegistry,
    preference: list[str],
    order: Order,
    payer: Payer,
    requested: str | None,
    *,
    excluded: frozenset[str] = frozenset(),
) -> Channel:
    """The channel for a payment attempt. A requested channel is used as asked unless its
    gateway is failing (then `channel_unavailable` names the alternatives); with none
    requested the first payable channel in preference order is used."""
    open_now = [
        c for c in payable(registry, preference, order, payer) if c.channel.name not in excluded
    ]
    if requested is None:
        if not open_now:
            raise NoChannelAvailable(
                f"No channel can pay order {order.id} ({order.currency}) right now."
            )
        return open_now[0].channel
    channel = registry.get(requested)
    if registry.health.is_available(channel.gateway):
        return channel
    alternatives = [c.channel.name for c in open_now if c.channel.gateway != channel.gateway]
    retry_after = registry.health.retry_after_s(channel.gateway)
    raise ChannelUnavailableError(
        f"The {requested} channel is unavailable: its gateway is failing. "
        + (f"Try {', '.join(alternatives)}." if alternatives else "No other channel can pay it."),
        alternatives=alternatives,
        retry_after_s=retry_after,
    )

"""Channel name → adapter, built from settings."""

from __future__ import annotations

from collections.abc import Callable

from knowpay.channels.alipay import build_channels as alipay_channels
from knowpay.channels.base import Channel
from knowpay.channels.health import ChannelHealth, GuardedChannel
from knowpay.channels.paypal import build_channels as paypal_channels
from knowpay.channels.stripe import build_channels as stripe_channels
from knowpay.channels.testchannel.adapter import TestChannel
from knowpay.channels.testchannel.store import TestGatewayStore
from knowpay.channels.unionpay import build_channels as unionpay_channels
from knowpay.channels.wechatpay import build_channels as wechatpay_channels
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import derive_key
from knowpay.kit.errors import Unprocessable

KNOWN_CHANNELS = (
    "alipay_page",
    "alipay_wap",
    "alipay_qr",
    "wechat_native",
    "wechat_jsapi",
    "wechat_h5",
    "unionpay",
    "stripe",
    "paypal",
    "wallet",
    "test",
)


ChannelBuilder = Callable[[Settings, Clock], dict[str, Channel]]


def _test_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """The development channel, everywhere but production."""
    if settings.environment == "production":
        return {}
    key = derive_key(settings.secret_key.get_secret_value(), "knowpay/test-channel/v1")
    return {"test": TestChannel(TestGatewayStore(settings), key, clock)}


# One builder per gateway module: a new gateway is one module and one line here.
_BUILDERS: tuple[ChannelBuilder, ...] = (
    _test_channels,
    wechatpay_channels,
    alipay_channels,
    stripe_channels,
    unionpay_channels,
    paypal_channels,
)


class UnknownChannel(Unprocessable):
    code, title = "unknown_channel", "No such channel"


class ChannelNotAvailable(Unprocessable):
    code, title = "channel_not_configured", "The channel is not configured here"


class ChannelRegistry:
    """The channels this deployment can use."""

    def __init__(self, channels: dict[str, Channel], health: ChannelHealth) -> None:
        self._adapters = channels
        self._channels: dict[str, Channel] = {
            name: GuardedChannel(adapter, health) for name, adapter in channels.items()
        }
        self.health = health

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> ChannelRegistry:
        """Every channel whose gateway is configured (each builder skips an unconfigured one)."""
        channels: dict[str, Channel] = {}
        for build in _BUILDERS:
            channels.update(build(settings, clock))
        return cls(channels, ChannelHealth(settings.channels, redis_url=settings.redis_url))

    def get(self, name: str) -> Channel:
        """The channel for a name, its gateway calls guarded by the gateway's breaker;
        422 when unknown or not configured."""
        channel = self._channels.get(name)
        if channel is not None:
            return channel
        if name in KNOWN_CHANNELS:
            raise ChannelNotAvailable(f"The {name} channel is not configured in this deployment.")
        raise UnknownChannel(f"No channel named {name!r}; known: {', '.join(KNOWN_CHANNELS)}.")

    def adapter(self, name: str) -> Channel:
        """The bare adapter behind a channel (tests and tools; no breaker, no metrics)."""
        self.get(name)
        return self._adapters[name]

    def for_gateway(self, gateway: str) -> Channel | None:
        """An adapter that verifies notifications sent to /notify/{gateway}."""
        return next((c for c in self._channels.values() if c.gateway == gateway), None)

    def names(self) -> list[str]:
        return sorted(self._channels)

    def close(self) -> None:
        """Close every adapter's HTTP connections (at shutdown)."""
        for adapter in self._adapters.values():
            close = getattr(adapter, "close", None)
            if callable(close):
                close()

    def all(self) -> list[Channel]:
        """Every configured channel, by name."""
        return [self._channels[name] for name in self.names()]

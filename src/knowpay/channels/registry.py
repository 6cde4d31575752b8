"""Channel name → adapter, built from settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from knowpay.channels.alipay import build_channels as alipay_channels
from knowpay.channels.base import Channel
from knowpay.channels.health import ChannelHealth, GuardedChannel
from knowpay.channels.paypal import build_channels as paypal_channels
from knowpay.channels.stripe import build_channels as stripe_channels
from knowpay.channels.testchannel.adapter import TestChannel
from knowpay.channels.testchannel.store import TestGatewayStore
from knowpay.channels.types import CHANNEL_GATEWAYS
from knowpay.channels.unionpay import build_channels as unionpay_channels
from knowpay.channels.wechatpay import build_channels as wechatpay_channels
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import derive_key
from knowpay.kit.errors import Unprocessable

KNOWN_CHANNELS = tuple(CHANNEL_GATEWAYS)

logger = logging.getLogger("knowpay.channels")


ChannelBuilder = Callable[[Settings, Clock], dict[str, Channel]]


def _test_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """The development channel, everywhere but production."""
    if settings.environment == "production":
        return {}
    key = derive_key(settings.secret_key.get_secret_value(), "knowpay/test-channel/v1")
    return {"test": TestChannel(TestGatewayStore(settings), key, clock)}


# One builder per gateway module, by its settings section: a new gateway is one module and
# one line here.
_GATEWAY_BUILDERS: dict[str, ChannelBuilder] = {
    "wechatpay": wechatpay_channels,
    "alipay": alipay_channels,
    "stripe": stripe_channels,
    "unionpay": unionpay_channels,
    "paypal": paypal_channels,
}


def gateway_sections() -> list[str]:
    """The settings sections that configure gateways (`alipay`, `wechatpay` …)."""
    return list(_GATEWAY_BUILDERS)


def load_problem(section: str, settings: Settings, clock: Clock) -> Exception | None:
    """What keeps a gateway's channels from loading with `settings` (a key that does not
    parse …), or None; the channels built to find out are closed again."""
    try:
        channels = _GATEWAY_BUILDERS[section](settings, clock)
    except Exception as exc:  # each adapter's own refusal (ValueError, TypeError …)
        return exc
    for channel in channels.values():
        _close(channel)
    return None


def _warn_if_half_configured(section: str, settings: Settings, built: dict[str, Channel]) -> None:
    """Some of a gateway's settings given, not enough for its channels: say so, or the
    operator learns it from a payer's `channel_not_configured`."""
    given = getattr(settings, section)
    if not built and given != type(given)():
        logger.warning(
            "the %s settings are incomplete (see docs/configuration.md): its channels are "
            "unavailable",
            section,
        )


def _log_refusal(section: str, problem: Exception, instead: str) -> None:
    """Name the gateway and the error's type, never its text: it may quote a key."""
    logger.error(
        "the %s credentials do not load (%s); %s", section, type(problem).__name__, instead
    )


def _with_section_of(settings: Settings, section: str, source: Settings) -> Settings:
    return settings.model_copy(update={section: getattr(source, section)})


def _close(adapter: Channel) -> None:
    """Close an adapter's HTTP connections (the adapters that hold any have `close`)."""
    close = getattr(adapter, "close", None)
    if callable(close):
        close()


class UnknownChannel(Unprocessable):
    code, title = "unknown_channel", "No such channel"


class ChannelNotAvailable(Unprocessable):
    code, title = "channel_not_configured", "The channel is not configured here"


class ChannelRegistry:
    """The channels this deployment can use."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        built: dict[str, dict[str, Channel]],
        health: ChannelHealth,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._built = built  # settings section (or "test") → the channels built from it
        self._retired: list[Channel] = []
        self._reconfiguring = threading.Lock()
        self.health = health
        self._install()

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Clock, *, fallback: Settings | None = None
    ) -> ChannelRegistry:
        """Every channel whose gateway is configured (each builder skips an unconfigured one).
        With `fallback` (the env/TOML settings under stored credentials), a gateway whose
        channels do not load from `settings` is built from fallback's section instead and
        logged, and the registry's `settings` say so: one bad stored value must not keep a
        process from starting. Without it, such a gateway raises."""
        built = {"test": _test_channels(settings, clock)}
        in_use = settings
        for section, build in _GATEWAY_BUILDERS.items():
            try:
                built[section] = build(settings, clock)
            except Exception as problem:  # each adapter's own refusal (ValueError, TypeError …)
                if fallback is None or getattr(fallback, section) == getattr(settings, section):
                    raise
                _log_refusal(section, problem, f"{section} uses its env/TOML settings")
                in_use = _with_section_of(in_use, section, fallback)
                built[section] = build(in_use, clock)
            _warn_if_half_configured(section, in_use, built[section])
        health = ChannelHealth(settings.channels, redis_url=settings.redis_url)
        return cls(in_use, clock, built, health)

    def _install(self) -> None:
        adapters = {
            name: channel for group in self._built.values() for name, channel in group.items()
        }
        # Readers take one dict or the other whole: a request never sees half a change.
        self._channels: dict[str, Channel] = {
            name: GuardedChannel(adapter, self.health) for name, adapter in adapters.items()
        }
        self._adapters = adapters

    @property
    def settings(self) -> Settings:
        """The settings the channels in use were built from."""
        return self._settings

    def reconfigure(self, settings: Settings) -> list[str]:
        """Rebuild the channels of every gateway whose settings section differs from the one
        they were built from (new credentials); the sections rebuilt. The breakers' state is
        kept. A gateway whose new section does not load (a key that does not parse) keeps the
        channels it has, logged, and holds back no other gateway's change; `settings` then
        keeps its old section. Calls already under way finish on the adapters they started
        with."""
        with self._reconfiguring:
            in_use = settings
            rebuilt: dict[str, dict[str, Channel]] = {}
            for section, build in _GATEWAY_BUILDERS.items():
                if getattr(settings, section) == getattr(self._settings, section):
                    continue
                try:
                    rebuilt[section] = build(settings, self._clock)
                except Exception as problem:
                    _log_refusal(section, problem, "its channels stay as they were in this process")
                    in_use = _with_section_of(in_use, section, self._settings)
            for section, channels in rebuilt.items():
                self._retired.extend(self._built[section].values())
                self._built[section] = channels
            self._settings = in_use
            if rebuilt:
                self._install()
            return list(rebuilt)

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
        """Close every adapter's HTTP connections, retired ones too (at shutdown)."""
        for adapter in [*self._adapters.values(), *self._retired]:
            _close(adapter)

    def all(self) -> list[Channel]:
        """Every configured channel, by name."""
        return [self._channels[name] for name in self.names()]

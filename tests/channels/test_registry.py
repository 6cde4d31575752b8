"""The channel registry built from settings: a gateway configured by halves is named in the
log, not left for a payer to find out."""

from __future__ import annotations

import logging

import pytest

from knowpay.channels.registry import ChannelRegistry
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings


def test_a_gateway_given_some_settings_but_not_enough_is_named_in_the_log(
    settings: Settings, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by an operations audit: `KNOWPAY_WECHATPAY__MCHID` alone made WeChat Pay
    silently unavailable."""
    half = settings.model_copy(
        update={"wechatpay": settings.wechatpay.model_copy(update={"mchid": "1900000109"})}
    )
    caplog.set_level(logging.WARNING, logger="knowpay.channels")
    registry = ChannelRegistry.from_settings(half, clock)
    try:
        assert "wechat_native" not in {c.name for c in registry.all()}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("the wechatpay settings are incomplete" in w for w in warnings), warnings
        assert not any("alipay" in w for w in warnings)  # untouched: nothing to say
    finally:
        registry.close()

"""Fixtures of the WeChat Pay adapter tests (the clock is the root conftest's FrozenClock)."""

from __future__ import annotations

import pytest

from knowpay.kit.clock import FrozenClock
from tests.channels.wechatpay.fake_wechat import NOW, FakeWechat


@pytest.fixture
def wechat() -> FakeWechat:
    return FakeWechat(FrozenClock(NOW))  # WeChat's own clock: ours may drift from it

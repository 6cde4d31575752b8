"""UnionPay online gateway (全渠道 / ACP 5.1.0, signMethod 01): channel `unionpay`."""

from knowpay.channels.unionpay.adapter import UnionPayChannel, build_channels

__all__ = ["UnionPayChannel", "build_channels"]

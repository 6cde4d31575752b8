"""WeChat Pay API v3: the `wechat_native`, `wechat_jsapi` and `wechat_h5` channels."""

from knowpay.channels.wechatpay.adapter import build_channels

__all__ = ["build_channels"]

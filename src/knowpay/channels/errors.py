"""Gateway errors, translated at the adapter's edge."""

from __future__ import annotations


class ChannelError(Exception):
    """Base of every channel error."""


class ChannelUnavailable(ChannelError):
    """The gateway could not be reached or answered with a server error: safe to retry or query."""


class ChannelDeclined(ChannelError):
    """The gateway refused the request; a decline is data, stored with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SignatureInvalid(ChannelError):
    """A notification or response whose signature does not verify."""


class SignatureProbe(SignatureInvalid):
    """A gateway's own test that we refuse what is not signed (WeChat Pay sends callbacks
    signed `WECHATPAY/SIGNTEST/…`): refused like any bad signature, but no forgery."""


class ProtocolError(ChannelError):
    """The gateway said something that does not follow its own protocol."""


class ChannelNotConfigured(ChannelError):
    """The channel has no credentials in this deployment."""

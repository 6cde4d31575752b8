"""The Alipay gateway client: common parameters, signing, the POST to gateway.do, and the
response verified over its raw text before anything in it is believed.

Errors at this edge: transport failures, 5xx, code 20000 and ACQ.SYSTEM_ERROR are
ChannelUnavailable (the outcome is unknown: retry the same request or query); a business
refusal is ChannelDeclined with Alipay's sub_code and sub_msg; an answer whose signature does
not verify counts as no answer at all."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx

from knowpay.channels.alipay import signing
from knowpay.channels.alipay.transformers import beijing_time
from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
)
from knowpay.kit.clock import Clock
from knowpay.kit.config import AlipaySettings
from knowpay.kit.http import call_with_retries, make_client

T = TypeVar("T")

SUCCESS_CODE = "10000"
UNAVAILABLE_CODES = frozenset({"20000"})
UNAVAILABLE_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR", "isp.unknow-error"})
# Refused before any business processing: safe to believe even without a signature.
GATEWAY_LEVEL_CODES = frozenset({"20001", "40001", "40002", "40006"})


class UnverifiedResponse(SignatureInvalid, ChannelUnavailable):
    """An answer whose signature does not verify: treated as no answer (query later)."""


class MalformedResponse(ProtocolError, ChannelUnavailable):
    """An answer that is not Alipay's JSON: treated as no answer (query later)."""


class _ServerError(Exception):
    """A 5xx, retried like a transport failure where the call is idempotent."""


class AlipayClient:
    """Signs requests with the app private key and verifies answers with the Alipay key."""

    def __init__(
        self,
        settings: AlipaySettings,
        clock: Clock,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not (settings.app_id and settings.private_key and settings.alipay_public_key):
            raise ValueError("Alipay needs app_id, private_key and alipay_public_key")
        self.app_id = settings.app_id
        self.seller_id = settings.seller_id
        self.gateway_url = settings.gateway_url
        try:
            self._private_key = signing.load_private_key(settings.private_key)
        except signing.AlipayKeyError as exc:
            raise signing.AlipayKeyError(f"KNOWPAY_ALIPAY__PRIVATE_KEY: {exc}") from exc
        try:
            self._alipay_key = signing.load_public_key(settings.alipay_public_key)
        except signing.AlipayKeyError as exc:
            raise signing.AlipayKeyError(f"KNOWPAY_ALIPAY__ALIPAY_PUBLIC_KEY: {exc}") from exc
        self._clock = clock
        self._http = make_client(
            connect_timeout_s=min(5.0, settings.timeout_s),
            read_timeout_s=settings.timeout_s,
            transport=transport,
        )

    @property
    def clock(self) -> Clock:
        return self._clock

    def close(self) -> None:
        self._http.close()

    # Building signed requests ------------------------------------------------------------

    def signed_params(
        self, method: str, biz_content: Mapping[str, Any], **extra: str | None
    ) -> dict[str, str]:
        """The full parameter set for `method`, `sign` included."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": signing.SIGN_TYPE,
            "timestamp": beijing_time(self._clock.now()),
            "version": "1.0",
            "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
        }
        params.update({key: value for key, value in extra.items() if value})
        return signing.sign_params(params, self._private_key)

    def page_url(self, method: str, biz_content: Mapping[str, Any], **extra: str | None) -> str:
        """The gateway URL with the signed query a browser is sent to (page and wap pay)."""
        return f"{self.gateway_url}?{urlencode(self.signed_params(method, biz_content, **extra))}"

    def verify_notification(
        self, params: Mapping[str, str], signature: str, charset: str = "utf-8"
    ) -> bool:
        """True when Alipay's key signed this notification form (in its `charset`)."""
        return any(
            signing.verify(content, signature, self._alipay_key, charset)
            for content in signing.notification_signing_strings(params)
        )

    # Server calls ------------------------------------------------------------------------

    def call(
        self,
        method: str,
        biz_content: Mapping[str, Any],
        *,
        idempotent: bool,
        **extra: str | None,
    ) -> dict[str, Any]:
        """POST one API call; the verified `<method>_response` content when code is 10000.

        An answer about another trade or refund request than the one asked about (genuine and
        signed, but replayed) is no answer to this question."""
        params = self.signed_params(method, biz_content, **extra)
        raw = self._send(lambda: self._post(params), idempotent=idempotent)
        content = self._verified(method, raw)
        for name in ("out_trade_no", "out_request_no"):
            asked, answered = biz_content.get(name), content.get(name)
            if asked is not None and answered is not None and answered != asked:
                raise MalformedResponse(f"asked about {asked}, Alipay answered about {answered}")
        return content

    def download(self, url: str) -> bytes:
        """GET a file Alipay names by URL (the bill); idempotent, so retried."""

        def fetch() -> bytes:
            response = self._http.get(url)
            if response.status_code >= 500:
                raise _ServerError(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise ChannelDeclined(f"http_{response.status_code}", "Alipay refused the download")
            return response.content

        return self._send(fetch, idempotent=True)

    def _post(self, params: Mapping[str, str]) -> str:
        response = self._http.post(
            self.gateway_url,
            content=urlencode(params).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        )
        if response.status_code >= 500:
            raise _ServerError(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise MalformedResponse(f"Alipay answered HTTP {response.status_code}")
        return response.content.decode(response.charset_encoding or "utf-8")

    def _send(self, call: Callable[[], T], *, idempotent: bool) -> T:
        try:
            if idempotent:
                return call_with_retries(
                    call, retry_on=(httpx.TransportError, _ServerError), max_wait_s=2.0
                )
            return call()
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"Alipay cannot be reached: {type(exc).__name__}") from exc
        except _ServerError as exc:
            raise ChannelUnavailable(f"Alipay answered with a server error: {exc}") from exc
        except (UnicodeDecodeError, LookupError) as exc:
            raise MalformedResponse(f"Alipay's answer is not text: {exc}") from exc

    def _verified(self, method: str, raw: str) -> dict[str, Any]:
        try:
            response = signing.split_response(raw, method)
        except signing.MalformedBody as exc:
            raise MalformedResponse(f"not an Alipay answer: {exc}") from exc
        content = response.content
        code = str(content.get("code", ""))
        signed = response.sign is not None and signing.verify(
            response.text, response.sign, self._alipay_key
        )
        if response.sign is not None and not signed:
            raise UnverifiedResponse(f"the signature of Alipay's {response.key} does not verify")
        if code == SUCCESS_CODE:
            if not signed:
                raise UnverifiedResponse(f"Alipay's {response.key} is not signed")
            return content
        sub_code = str(content.get("sub_code") or "")
        message = str(content.get("sub_msg") or content.get("msg") or "")
        if code in UNAVAILABLE_CODES or sub_code in UNAVAILABLE_SUB_CODES:
            raise ChannelUnavailable(f"Alipay is unavailable: {code} {sub_code} {message}")
        if not signed and code not in GATEWAY_LEVEL_CODES:
            raise UnverifiedResponse(f"Alipay's {code} {sub_code} answer is not signed")
        raise ChannelDeclined(sub_code or code or "unknown", message or "Alipay refused the call")

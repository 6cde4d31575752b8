"""Signed calls to WeChat Pay v3 and verified answers.

Every request carries the merchant's Authorization signature over the exact bytes sent; every
2xx answer is verified with the platform key its Wechatpay-Serial names before it is read.
Only idempotent calls are retried (transport errors, 5xx, 429); what still fails is
ChannelUnavailable. A non-2xx answer WeChat meant (PARAM_ERROR, ORDERPAID…) is WechatPayApiError
for the adapter to translate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from knowpay import __version__
from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelError,
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
)
from knowpay.channels.wechatpay import signing
from knowpay.channels.wechatpay.transformers import (
    ErrorKind,
    WechatPayError,
    dumps,
    error_of,
    loads_object,
)
from knowpay.kit.clock import Clock
from knowpay.kit.http import call_with_retries, make_client

logger = logging.getLogger("knowpay.channels.wechatpay")


class UntrustedAnswer(SignatureInvalid, ChannelUnavailable):
    """An answer whose signature, timestamp or hash does not check out: it is not believed, and
    to the core it is the same as no answer (query again later)."""


class MalformedAnswer(ProtocolError, ChannelUnavailable):
    """A verified answer that does not follow the protocol (missing fields, another merchant's
    trade): not believed either."""


class GatewayRefused(ChannelDeclined, ChannelUnavailable):
    """WeChat refused a read (query, close, bill); for the core there is no answer now."""


class WechatPayApiError(ChannelError):
    """A non-2xx answer, for the adapter to translate."""

    def __init__(self, error: WechatPayError) -> None:
        super().__init__(f"{error.status_code} {error.code}: {error.message}")
        self.error = error


class _RetryableAnswer(Exception):
    def __init__(self, error: WechatPayError) -> None:
        super().__init__(f"{error.status_code} {error.code}: {error.message}")
        self.error = error


@dataclass(frozen=True)
class WechatPayConfig:
    """A merchant's credentials, read once from settings."""

    mchid: str
    appid: str
    merchant_key: rsa.RSAPrivateKey
    merchant_serial_no: str
    apiv3_key: bytes
    base_url: str
    timeout_s: float
    public_key_id: str | None = None
    """`PUB_KEY_ID_…` in public-key mode: sent as Wechatpay-Serial on every request."""


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    raw: bytes
    data: dict[str, Any]


class WechatPayClient:
    """The one HTTP client of the three WeChat channels."""

    def __init__(
        self,
        config: WechatPayConfig,
        known_keys: dict[str, rsa.RSAPublicKey],
        clock: Clock,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._http = make_client(
            base_url=config.base_url.rstrip("/") + "/",
            connect_timeout_s=min(5.0, config.timeout_s),
            read_timeout_s=config.timeout_s,
            transport=transport,
        )
        self.keys = signing.PlatformKeys(known_keys, self.fetch_certificates)

    def close(self) -> None:
        self._http.close()

    # Requests ------------------------------------------------------------------------------

    def _signed_request(
        self, method: str, url: str, body: bytes, params: dict[str, str] | None
    ) -> httpx.Request:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"knowpay/{__version__} (WeChatPay-APIv3)",
        }
        if body:
            headers["Content-Type"] = "application/json"
        if self.config.public_key_id:
            headers["Wechatpay-Serial"] = self.config.public_key_id
        request = self._http.build_request(
            method, url.lstrip("/"), content=body or None, params=params, headers=headers
        )
        timestamp = str(int(self._clock.now().timestamp()))
        nonce = signing.new_nonce()
        target = request.url.raw_path.decode("ascii")
        message = signing.request_message(method, target, timestamp, nonce, body)
        signature = signing.rsa_sign(self.config.merchant_key, message)
        request.headers["Authorization"] = signing.authorization(
            self.config.mchid, self.config.merchant_serial_no, nonce, timestamp, signature
        )
        return request

    def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        idempotent: bool,
        verify: bool = True,
    ) -> Answer:
        """Send a signed request; a verified 2xx Answer, WechatPayApiError for a refusal,
        ChannelUnavailable when WeChat cannot be reached or keeps failing."""
        raw_body = dumps(body) if body is not None else b""

        def once() -> Answer:
            response = self._http.send(self._signed_request(method, path, raw_body, params))
            if 200 <= response.status_code < 300:
                if verify:
                    self.verify_answer(response)
                data = loads_object(response.content, "the answer") if response.content else {}
                return Answer(response.status_code, response.content, data)
            error = error_of(response.status_code, response.content)
            if error.kind is ErrorKind.RETRY:
                raise _RetryableAnswer(error)
            raise WechatPayApiError(error)

        try:
            if idempotent:
                return call_with_retries(
                    once, retry_on=(httpx.TransportError, _RetryableAnswer), max_wait_s=1.0
                )
            return once()
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"WeChat Pay cannot be reached: {exc!r}") from exc
        except _RetryableAnswer as exc:
            raise ChannelUnavailable(f"WeChat Pay is failing: {exc}") from exc
        except ProtocolError as exc:
            if isinstance(exc, ChannelUnavailable):
                raise
            raise MalformedAnswer(str(exc)) from exc

    def download(self, url: str) -> bytes:
        """A bill file. Its answer is not signed; the caller checks the signed hash."""
        try:
            response = call_with_retries(
                lambda: self._http.send(self._signed_request("GET", url, b"", None)),
                max_wait_s=1.0,
            )
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"WeChat Pay cannot be reached: {exc!r}") from exc
        if response.status_code != 200:
            error = error_of(response.status_code, response.content)
            raise GatewayRefused(error.code, error.message)
        return response.content

    # Verification --------------------------------------------------------------------------

    def verify_answer(self, response: httpx.Response) -> None:
        try:
            signing.verify_signed(response.headers, response.content, self.keys, self._clock.now())
        except SignatureInvalid as exc:
            raise UntrustedAnswer(f"WeChat Pay's answer is not trusted: {exc}") from exc

    def fetch_certificates(self) -> dict[str, rsa.RSAPublicKey]:
        """Platform certificates from GET /v3/certificates, opened with the API v3 key, kept
        only when in force and when the answer verifies with one of them."""
        try:
            answer = self._certificates_answer()
        except (ChannelError, ValueError) as exc:
            logger.warning("cannot fetch WeChat Pay platform certificates: %s", exc)
            return {}
        return answer

    def _certificates_answer(self) -> dict[str, rsa.RSAPublicKey]:
        request = self._signed_request("GET", "/v3/certificates", b"", None)
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"WeChat Pay cannot be reached: {exc!r}") from exc
        if response.status_code != 200:
            raise WechatPayApiError(error_of(response.status_code, response.content))
        now = self._clock.now()
        found: dict[str, rsa.RSAPublicKey] = {}
        for item in loads_object(response.content, "the certificates").get("data") or []:
            certificate = self._open_certificate(item, now)
            if certificate is not None:
                key = certificate.public_key()
                if isinstance(key, rsa.RSAPublicKey):
                    found[signing.certificate_serial(certificate)] = key
        # The list proves itself: its answer must verify with a certificate it contains.
        signing.verify_signed(response.headers, response.content, signing.PlatformKeys(found), now)
        return found

    def _open_certificate(self, item: Any, now: datetime) -> x509.Certificate | None:
        sealed = item.get("encrypt_certificate") if isinstance(item, dict) else None
        if not isinstance(sealed, dict) or sealed.get("algorithm") != "AEAD_AES_256_GCM":
            return None
        pem = signing.aead_decrypt(
            self.config.apiv3_key,
            str(sealed.get("nonce", "")),
            str(sealed.get("associated_data") or ""),
            str(sealed.get("ciphertext", "")),
        )
        certificate = x509.load_pem_x509_certificate(pem)
        in_force = (
            certificate.not_valid_before_utc
            <= now.astimezone(UTC)
            <= certificate.not_valid_after_utc
        )
        serial_matches = signing.normalize_serial(
            str(item.get("serial_no", ""))
        ) == signing.normalize_serial(signing.certificate_serial(certificate))
        return certificate if in_force and serial_matches else None

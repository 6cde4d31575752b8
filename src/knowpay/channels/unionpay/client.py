"""The UnionPay gateway client: the common fields, the merchant's signature, the form POST to
backTransReq.do / queryTrans.do / the file host, and the answer verified before anything in
it is believed.

Errors at this edge: transport failures and 5xx are ChannelUnavailable (retried first where
the call is idempotent: a query, or a refund resent with the same orderId and txnTime, which
UnionPay refuses as a duplicate rather than repeats); respCode 02/06 (closed, busy) are
ChannelUnavailable; an answer whose signature or signPubKeyCert fails is no answer
(UnverifiedResponse). Every other answer is returned, verified, for the adapter to read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlencode, urlsplit

import httpx

from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
)
from knowpay.channels.unionpay import signing, transformers
from knowpay.kit.clock import Clock
from knowpay.kit.config import UnionPaySettings
from knowpay.kit.http import call_with_retries, make_client

T = TypeVar("T")

BIZ_TYPE = "000201"
"""B2C gateway payment."""
# Refused before any processing (format, signature, missing fields): UnionPay may not sign
# these, and believing them unsigned cannot move money.
REQUEST_LEVEL_CODES = frozenset({"10", "11", "13"})


FILE_HOSTS = {
    "gateway.95516.com": "https://filedownload.95516.com/",
    "gateway.test.95516.com": "https://filedownload.test.95516.com/",
}
"""UnionPay's file-transfer host (acpsdk.fileTransUrl) beside each of its gateway hosts, as
the official SDK's production and test configurations name them."""


def file_transfer_url(query_url: str) -> str:
    """Where the file transfer (txnType 76) is posted. UnionPay serves it at the root of a
    host of its own (filedownload…95516.com), named here from the gateway host of the query
    URL; any other host (the simulator, a proxy) serves it at the root of the base the
    gateway's /gateway/api/ paths hang from."""
    known = FILE_HOSTS.get(urlsplit(query_url).hostname or "")
    if known:
        return known
    base, found, _ = query_url.partition("/gateway/api/")
    if not found:
        raise ValueError(f"cannot tell UnionPay's file-transfer URL from {query_url!r}")
    return base + "/"


class UnverifiedResponse(SignatureInvalid, ChannelUnavailable):
    """An answer whose signature does not verify: treated as no answer (query later)."""


class MalformedResponse(ProtocolError, ChannelUnavailable):
    """An answer that is not UnionPay's: treated as no answer (query later)."""


class _ServerError(Exception):
    """A 5xx, retried like a transport failure."""


class UnionPayClient:
    """Signs with the merchant's key and checks answers against UnionPay's CA."""

    def __init__(
        self,
        settings: UnionPaySettings,
        clock: Clock,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not (settings.mer_id and settings.sign_private_key):
            raise ValueError("UnionPay needs mer_id and sign_private_key")
        if not (settings.root_cert and settings.middle_cert):
            raise ValueError("UnionPay 5.1.0 needs root_cert and middle_cert to verify answers")
        self.mer_id = settings.mer_id
        self.front_url = settings.front_url
        self.back_url = settings.back_url
        self.query_url = settings.query_url
        self.file_url = settings.file_url or file_transfer_url(settings.query_url)
        try:
            self._key = signing.load_private_key(settings.sign_private_key)
        except signing.UnionPayKeyError as exc:
            raise signing.UnionPayKeyError(f"KNOWPAY_UNIONPAY__SIGN_PRIVATE_KEY: {exc}") from exc
        if settings.sign_cert_id:
            self.cert_id = settings.sign_cert_id
        elif settings.sign_cert:
            self.cert_id = signing.cert_id(signing.load_certificate(settings.sign_cert))
        else:
            raise ValueError("UnionPay needs sign_cert (or sign_cert_id) for certId")
        self.verifier = signing.CertificateVerifier(
            signing.load_certificate(settings.root_cert),
            signing.load_certificate(settings.middle_cert),
            settings.expected_cert_cn,
        )
        self._clock = clock
        self._http = make_client(
            connect_timeout_s=min(5.0, settings.timeout_s),
            read_timeout_s=settings.timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # Messages ----------------------------------------------------------------------------

    def fields(self, txn_type: str, txn_sub_type: str, **extra: str | None) -> dict[str, str]:
        """The common fields of a request, and the given ones that are not empty."""
        base = {
            "version": signing.VERSION,
            "encoding": "UTF-8",
            "signMethod": signing.SIGN_METHOD,
            "txnType": txn_type,
            "txnSubType": txn_sub_type,
            "bizType": BIZ_TYPE,
            "accessType": "0",
            "merId": self.mer_id,
        }
        base.update({name: value for name, value in extra.items() if value})
        return base

    def sign(self, fields: Mapping[str, str]) -> dict[str, str]:
        """The fields with certId and signature."""
        return signing.sign_params(fields, self._key, self.cert_id)

    def verify(self, params: Mapping[str, str]) -> None:
        """SignatureInvalid unless UnionPay signed this message (at our clock's time)."""
        self.verifier.verify(params, self._clock.now())

    # Server calls ------------------------------------------------------------------------

    def back(self, fields: Mapping[str, str]) -> dict[str, str]:
        """POST to backTransReq.do (refund); retried, since a resend is refused as a duplicate."""
        return self._call(self.back_url, fields)

    def query(self, fields: Mapping[str, str]) -> dict[str, str]:
        """POST to queryTrans.do (txnType 00); retried."""
        return self._call(self.query_url, fields)

    def file_transfer(self, fields: Mapping[str, str]) -> dict[str, str]:
        """POST to the file host (txnType 76, a settlement file); retried: it changes nothing."""
        return self._call(self.file_url, fields)

    def _call(self, url: str, fields: Mapping[str, str]) -> dict[str, str]:
        signed = self.sign(fields)
        text = self._send(lambda: self._post(url, signed))
        answer = self._verified(text)
        for name in ("merId", "orderId", "settleDate"):
            if answer.get(name) and answer[name] != signed.get(name, answer[name]):
                raise MalformedResponse(
                    f"asked about {name} {signed[name]}, UnionPay answered about {answer[name]}"
                )
        return answer

    def _post(self, url: str, signed: Mapping[str, str]) -> str:
        response = self._http.post(
            url,
            content=urlencode(signed).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
        )
        if response.status_code >= 500:
            raise _ServerError(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise MalformedResponse(f"UnionPay answered HTTP {response.status_code}")
        return response.content.decode("utf-8")

    def _send(self, call: Callable[[], T]) -> T:
        try:
            return call_with_retries(
                call, retry_on=(httpx.TransportError, _ServerError), max_wait_s=2.0
            )
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"UnionPay cannot be reached: {type(exc).__name__}") from exc
        except _ServerError as exc:
            raise ChannelUnavailable(f"UnionPay answered with a server error: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise MalformedResponse(f"UnionPay's answer is not UTF-8: {exc}") from exc

    def _verified(self, text: str) -> dict[str, str]:
        try:
            answer = transformers.parse_response(text)
        except ProtocolError as exc:
            raise MalformedResponse(f"not a UnionPay answer: {exc}") from exc
        code = answer.get("respCode", "")
        message = answer.get("respMsg", "")
        if signing.SIGNATURE_FIELD not in answer:
            if code in REQUEST_LEVEL_CODES:
                raise ChannelDeclined(code, message or "UnionPay refused the request")
            raise UnverifiedResponse(f"UnionPay's {code or 'answer'} is not signed")
        try:
            self.verify(answer)
        except SignatureInvalid as exc:
            raise UnverifiedResponse(f"UnionPay's answer does not verify: {exc}") from exc
        if code in transformers.BUSY_CODES:
            raise ChannelUnavailable(f"UnionPay is unavailable: {code} {message}")
        return answer

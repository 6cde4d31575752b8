"""The simulated UnionPay online gateway (ACP 5.1.0): its certificates and the merchant's,
the checks every request passes, the front consume, refund and query, the settlement file
(file transfer, txnType 76), and the signed back notifications."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from knowpay.sandbox.unionpay import crypto, files
from knowpay.sandbox.unionpay.book import (
    BEIJING,
    TIME_FORMAT,
    Book,
    Consume,
    Refund,
    TxnError,
    now_beijing,
)
from knowpay.sandbox.unionpay.faults import (
    API_FAULTS,
    NOTIFICATION_FAULTS,
    SIGNATURE_FAULTS,
    Fault,
    FaultBook,
)
from knowpay.sandbox.unionpay.notifier import Notifier
from knowpay.sandbox.unionpay.pki import UNIONPAY_OWNER, Identity, Pki, load_certificate

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig

DEFAULT_MER_ID = "777290058110048"
"""The merchant number UnionPay's own demos use for its test environment."""
SUCCESS = ("00", "成功[0000000]")
NOT_FOUND = ("34", "查无此交易[2600000]")
_ORDER_ID = re.compile(r"^[A-Za-z0-9]{8,40}$")
_TIME = re.compile(r"^\d{14}$")
_FEN = re.compile(r"^[1-9]\d{0,11}$")
FRONT, BACK, QUERY = "frontTransReq.do", "backTransReq.do", "queryTrans.do"
FILE = "filedownload"
"""The file transfer's endpoint name (for faults): UnionPay serves it at the root of its own
host, filedownload.95516.com; the simulator at the root of /unionpay/."""
NO_FILE = ("98", "文件不存在")
_SETTLE_DATE = re.compile(r"^(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")
_REQUIRED = (
    *("version", "encoding", "signMethod", "certId", "signature"),
    *("txnType", "txnSubType", "bizType", "accessType", "merId"),
)
_ORIGINAL_FIELDS = (
    *("queryId", "traceNo", "traceTime", "txnAmt", "currencyCode"),
    *("settleAmt", "settleCurrencyCode", "settleDate", "accNo", "origQryId"),
)
_ECHOED_FIELDS = (
    *("version", "encoding", "bizType", "txnType", "txnSubType", "accessType"),
    *("merId", "orderId", "txnTime", "txnAmt", "reqReserved", "settleDate", "fileType"),
)


class UnionPaySimulator:
    def __init__(self, config: SandboxConfig) -> None:
        self.base_url = config.public_url.rstrip("/") + "/unionpay"
        section = config.gateways.get("unionpay", {})
        self.mer_id = section.get("mer_id") or DEFAULT_MER_ID
        self.pki = Pki()
        self._merchant_key_pem: str | None = None
        if section.get("merchant_cert"):
            self.merchant_cert = load_certificate(section["merchant_cert"])
        else:
            merchant = self.pki.merchant(self.mer_id)
            self.merchant_cert = merchant.cert
            # Sandbox only: like UnionPay's test console, hand the merchant its key.
            self._merchant_key_pem = merchant.key_pem
        merchant_key = self.merchant_cert.public_key()
        if not isinstance(merchant_key, rsa.RSAPublicKey):
            raise ValueError("the merchant certificate must hold an RSA key")
        self._merchant_key = merchant_key
        self.book = Book()
        self.faults = FaultBook()
        self.notifier = Notifier(config.time_scale)

    def url(self, endpoint: str) -> str:
        return f"{self.base_url}/gateway/api/{endpoint}"

    def keys(self) -> dict[str, str]:
        """What a merchant configures: its number and certificate, UnionPay's CA, the URLs."""
        published = {
            "mer_id": self.mer_id,
            "merchant_cert": _pem(self.merchant_cert),
            "merchant_cert_id": str(self.merchant_cert.serial_number),
            "root_cert": self.pki.authority.root.cert_pem,
            "middle_cert": self.pki.authority.middle.cert_pem,
            "signing_cert": self.pki.signing.cert_pem,
            "expected_cert_cn": UNIONPAY_OWNER,
            "front_url": self.url(FRONT),
            "back_url": self.url(BACK),
            "query_url": self.url(QUERY),
            "file_url": f"{self.base_url}/",
        }
        if self._merchant_key_pem:
            published["merchant_private_key"] = self._merchant_key_pem
        return published

    # Every request ------------------------------------------------------------------------

    def check(
        self,
        params: Mapping[str, str],
        txn_type: str,
        txn_sub_type: str,
        biz_type: str = "000201",
    ) -> None:
        """UnionPay's checks: format, the merchant's certificate and signature, the merchant."""
        missing = [name for name in _REQUIRED if not params.get(name)]
        if missing:
            raise TxnError("13", f"报文交易要素缺失[{','.join(missing)}]")
        if params["version"] != "5.1.0" or params["signMethod"] != "01":
            raise TxnError("10", "报文格式错误[version/signMethod]")
        if params["encoding"].upper() not in ("UTF-8", "UTF8"):
            raise TxnError("10", "报文格式错误[encoding]")
        if params["certId"] != str(self.merchant_cert.serial_number):
            raise TxnError("11", "验证签名失败[certId]")
        if not crypto.verify(params, self._merchant_key):
            raise TxnError("11", "验证签名失败")
        if params["merId"] != self.mer_id:
            raise TxnError("31", "商户状态不正确")
        if (params["txnType"], params["txnSubType"]) != (txn_type, txn_sub_type):
            raise TxnError("10", "报文格式错误[txnType/txnSubType]")
        if params["bizType"] != biz_type or params["accessType"] != "0":
            raise TxnError("10", "报文格式错误[bizType/accessType]")

    def api_faults(self, endpoint: str, params: Mapping[str, str]) -> tuple[int | None, float]:
        """(an HTTP status to fail with, seconds to stall) for this call."""
        order = self._consume_order(params)
        status, stall = None, 0.0
        for fault in self.faults.take(API_FAULTS, order, endpoint=endpoint, limit=1):
            if fault.kind == "http_5xx":
                status = fault.status
            else:
                stall = max(stall, fault.seconds)
        return status, stall

    def _consume_order(self, params: Mapping[str, str]) -> str | None:
        if params.get("origQryId"):
            consume = self.book.by_query_id(params["origQryId"])
            if consume is not None:
                return consume.order_id
        return self.book.consume_order_of(params.get("orderId"), params.get("txnTime"))

    # frontTransReq.do ---------------------------------------------------------------------

    def front(self, params: Mapping[str, str]) -> Consume:
        """The browser posts a consume: checked, then opened for the payer."""
        self.check(params, "01", "01")
        channel_type = params.get("channelType")
        if channel_type not in ("07", "08"):
            raise TxnError("10", "报文格式错误[channelType]")
        if params.get("currencyCode") != "156":
            raise TxnError("10", "报文格式错误[currencyCode]")
        order_id, txn_time, amount = _order(params)
        if not params.get("backUrl"):
            raise TxnError("13", "报文交易要素缺失[backUrl]")
        return self.book.open(
            order_id=order_id,
            txn_time=txn_time,
            amount=amount,
            channel_type=channel_type,
            front_url=params.get("frontUrl") or None,
            back_url=params["backUrl"],
            pay_timeout=_time(params, "payTimeout") if params.get("payTimeout") else None,
            commodity=_commodity(params.get("riskRateInfo", "")),
        )

    def pay(self, consume: Consume) -> dict[str, str]:
        """The payer pays: recorded, notified to backUrl; the signed front notification."""
        self.book.pay(consume)
        self.notify(consume)
        fields = self._consume_notice(consume)
        return self._signed(fields, self.pki.signing)

    # backTransReq.do ----------------------------------------------------------------------

    def back(self, params: Mapping[str, str]) -> str:
        """A refund (txnType 04): accepted now, done and notified right after."""
        try:
            self.check(params, "04", "00")
            order_id, txn_time, amount = _order(params)
            if not params.get("origQryId"):
                raise TxnError("13", "报文交易要素缺失[origQryId]")
            consume, refund = self.book.refund(
                orig_query_id=params["origQryId"],
                order_id=order_id,
                txn_time=txn_time,
                amount=amount,
                back_url=params.get("backUrl") or None,
                req_reserved=params.get("reqReserved") or None,
            )
        except TxnError as error:
            return self.answer(BACK, params, error.code, error.message)
        text = self.answer(BACK, params, *SUCCESS, queryId=refund.query_id)
        self.book.finish_refund(refund)
        self.notify(consume, refund)
        return text

    # queryTrans.do ------------------------------------------------------------------------

    def query(self, params: Mapping[str, str]) -> str:
        try:
            self.check(params, "00", "00")
            order_id = params.get("orderId", "")
            txn_time = params.get("txnTime", "")
            if not _ORDER_ID.match(order_id) or not _TIME.match(txn_time):
                raise TxnError("10", "报文格式错误[orderId/txnTime]")
        except TxnError as error:
            return self.answer(QUERY, params, error.code, error.message)
        found = self.book.find(order_id, txn_time)
        if found is None:
            return self.answer(QUERY, params, *NOT_FOUND)
        if isinstance(found, Consume):
            original = self._consume_notice(found)
        else:
            original = self._refund_notice(*found)
            if not found[1].done:
                original.update(respCode="05", respMsg="交易已受理，请稍后查询交易结果")
        extra = {name: original[name] for name in _ORIGINAL_FIELDS if name in original}
        return self.answer(
            QUERY,
            params,
            *SUCCESS,
            origRespCode=original["respCode"],
            origRespMsg=original["respMsg"],
            **extra,
        )

    # The file host -------------------------------------------------------------------------

    def file_transfer(self, params: Mapping[str, str]) -> str:
        """txnType 76: the zipped settlement file of settleDate (MMDD, the latest such day
        up to today), or 98 when the merchant has no transaction that day."""
        try:
            self.check(params, "76", "01", biz_type="000000")
            if params.get("fileType") != "00":
                raise TxnError("10", "报文格式错误[fileType]")
            if not _TIME.match(params.get("txnTime", "")):
                raise TxnError("10", "报文格式错误[txnTime]")
            _time(params, "txnTime")
            day = _settle_day(params.get("settleDate", ""), now_beijing().date())
        except TxnError as error:
            return self.answer(FILE, params, error.code, error.message)
        items = self.book.settled_on(day)
        if not items:
            return self.answer(FILE, params, *NO_FILE)
        zipped = files.settlement_zip(self.mer_id, day, items)
        return self.answer(
            FILE,
            params,
            *SUCCESS,
            fileName=files.file_name(self.mer_id, day),
            fileContent=files.file_content(zipped),
        )

    # Answers and notifications -------------------------------------------------------------

    def answer(
        self, endpoint: str, request: Mapping[str, str], code: str, message: str, **extra: str
    ) -> str:
        """A synchronous answer: the request's key fields, the outcome, signed."""
        fields = {name: request[name] for name in _ECHOED_FIELDS if request.get(name)}
        fields.update(version="5.1.0", encoding="UTF-8", signMethod="01")
        fields.update(respCode=code, respMsg=message, **extra)
        order = self._consume_order(request)
        faults = self.faults.take(
            SIGNATURE_FAULTS | {"tampered_fields"}, order, endpoint=endpoint, target="response"
        )
        for fault in faults:
            if fault.kind == "tampered_fields":
                fields.update(fault.fields)
        return crypto.answer_text(self._signed(fields, self._identity(faults)))

    def notify(self, consume: Consume, refund: Refund | None = None) -> None:
        """The back notification of a paid consume or a done refund, faults applied."""
        url = refund.back_url if refund is not None else consume.back_url
        if not url:
            return
        fields = self._refund_notice(consume, refund) if refund else self._consume_notice(consume)
        kinds = {f.kind: f for f in self.faults.take(NOTIFICATION_FAULTS, consume.order_id)}
        if "tampered_amount" in kinds:
            fields["txnAmt"] = fields["settleAmt"] = kinds["tampered_amount"].amount
        if "tampered_fields" in kinds:
            fields.update(kinds["tampered_fields"].fields)
        signed = self._signed(fields, self._identity(list(kinds.values())))
        self.notifier.submit(
            consume.order_id,
            url,
            signed,
            copies=kinds["duplicate"].count if "duplicate" in kinds else 1,
            first_delay_s=kinds["delayed"].delay_s if "delayed" in kinds else 0.0,
            lost="lost" in kinds,
        )

    def _identity(self, faults: list[Fault]) -> Identity:
        for fault in faults:
            if fault.kind in SIGNATURE_FAULTS:
                return self.pki.faulty(fault.kind)
        return self.pki.signing

    @staticmethod
    def _signed(fields: Mapping[str, str], identity: Identity) -> dict[str, str]:
        signed = dict(fields)
        signed["signPubKeyCert"] = identity.cert_pem
        signed["signature"] = crypto.sign(signed, identity.key)
        return signed

    def _common(self) -> dict[str, str]:
        return {
            "version": "5.1.0",
            "encoding": "UTF-8",
            "signMethod": "01",
            "bizType": "000201",
            "accessType": "0",
            "merId": self.mer_id,
            "currencyCode": "156",
            "settleCurrencyCode": "156",
        }

    def _consume_notice(self, consume: Consume) -> dict[str, str]:
        assert consume.paid_at is not None
        assert consume.query_id
        assert consume.trace_no
        return {
            **self._common(),
            "txnType": "01",
            "txnSubType": "01",
            "orderId": consume.order_id,
            "txnTime": consume.txn_time,
            "txnAmt": str(consume.amount),
            "settleAmt": str(consume.amount),
            "settleDate": f"{consume.paid_at:%m%d}",
            "queryId": consume.query_id,
            "traceNo": consume.trace_no,
            "traceTime": f"{consume.paid_at:%m%d%H%M%S}",
            "respCode": SUCCESS[0],
            "respMsg": SUCCESS[1],
            "accNo": "6216***********0018",
            "payCardType": "01",
            "payType": "0001",
        }

    def _refund_notice(self, consume: Consume, refund: Refund) -> dict[str, str]:
        fields = {
            **self._common(),
            "txnType": "04",
            "txnSubType": "00",
            "orderId": refund.order_id,
            "txnTime": refund.txn_time,
            "txnAmt": str(refund.amount),
            "settleAmt": str(refund.amount),
            "settleDate": f"{refund.created_at:%m%d}",
            "queryId": refund.query_id,
            "origQryId": consume.query_id or "",
            "traceNo": refund.trace_no,
            "traceTime": f"{refund.created_at:%m%d%H%M%S}",
            "respCode": SUCCESS[0],
            "respMsg": SUCCESS[1],
        }
        if refund.req_reserved:
            fields["reqReserved"] = refund.req_reserved
        return fields

    def trade(self, consume: Consume) -> dict[str, Any]:
        return {
            "order_id": consume.order_id,
            "txn_time": consume.txn_time,
            "status": consume.status,
            "txn_amt": consume.amount,
            "query_id": consume.query_id,
            "refunded": consume.refunded,
            "pay_timeout": consume.pay_timeout.isoformat() if consume.pay_timeout else None,
            "channel_type": consume.channel_type,
            "refunds": [
                {
                    "order_id": r.order_id,
                    "txn_time": r.txn_time,
                    "amount": r.amount,
                    "query_id": r.query_id,
                    "done": r.done,
                }
                for r in consume.refunds.values()
            ],
        }


def _order(params: Mapping[str, str]) -> tuple[str, str, int]:
    order_id = params.get("orderId", "")
    txn_time = params.get("txnTime", "")
    amount = params.get("txnAmt", "")
    if not _ORDER_ID.match(order_id):
        raise TxnError("10", "报文格式错误[orderId]")
    if not _TIME.match(txn_time):
        raise TxnError("10", "报文格式错误[txnTime]")
    _time(params, "txnTime")
    if not _FEN.match(amount):
        raise TxnError("10", "报文格式错误[txnAmt]")
    return order_id, txn_time, int(amount)


def _time(params: Mapping[str, str], name: str) -> datetime:
    try:
        return datetime.strptime(params.get(name, ""), TIME_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        raise TxnError("10", f"报文格式错误[{name}]") from None


def _settle_day(settle_date: str, today: date) -> date:
    """settleDate (MMDD) → the latest day with that month and day, up to today."""
    if not _SETTLE_DATE.match(settle_date):
        raise TxnError("10", "报文格式错误[settleDate]")
    month, day = int(settle_date[:2]), int(settle_date[2:])
    for year in range(today.year, today.year - 8, -1):
        try:
            found = date(year, month, day)
        except ValueError:
            continue  # 0229 of a year that has none, or 0431
        if found <= today:
            return found
    raise TxnError("10", "报文格式错误[settleDate]")


def _commodity(risk_rate_info: str) -> str:
    """The commodityName of `{commodityName=…}`, or a placeholder."""
    match = re.search(r"commodityName=([^&}]*)", risk_rate_info)
    return match.group(1) if match and match.group(1) else "商品"


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

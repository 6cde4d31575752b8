"""The UnionPay channel (`unionpay`): the online gateway's front consume (全渠道, ACP 5.1.0).

Paying is a browser form POST to frontTransReq.do. knowpay signs the fields and sends the
payer to its own page, /forms/unionpay, which carries them (base64url JSON in `f`, stateless:
UnionPay's signature protects them) and submits them to UnionPay. The result comes by the
back notification to /notify/unionpay, or by a query (txnType 00).

Closing. UnionPay has no close for a front consume: the payer holds a signed form that
UnionPay honours until payTimeout. So close_payment only asks: a paid one is reported paid,
and an unpaid one is reported closed only once no payTimeout knowpay may have sent can still
be running (payTimeout is at most MAX_PAY_WINDOW after txnTime, which the id carries); before
that it stays pending. After payTimeout UnionPay no longer pays the merchant (a late payment
is returned to the payer), so closed is then the truth.

The bill is UnionPay's settlement file of a settleDate (file transfer, txnType 76): see bill.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from urllib.parse import parse_qsl

from knowpay.channels.base import Channel
from knowpay.channels.errors import ChannelDeclined, ProtocolError
from knowpay.channels.types import (
    Bill,
    ChannelProfile,
    ChannelStatus,
    CreatePaymentRequest,
    CreatePaymentResult,
    Notification,
    NotificationAck,
    PaymentAction,
    PaymentQueryResult,
    RefundRequest,
    RefundResult,
)
from knowpay.channels.unionpay import bill
from knowpay.channels.unionpay import transformers as tf
from knowpay.channels.unionpay.client import UnionPayClient
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings

CHANNEL = "unionpay"
BILL_READY_AFTER = timedelta(hours=10)
"""How long after its Beijing day ends knowpay asks for the day's settlement file: UnionPay
names no hour knowpay could cite, and a file asked for too early answers 98 (no file), which
would read as an empty bill; 10:00 the next morning is knowpay's choice."""


class UnionPayChannel:
    """The front consume behind the Channel interface."""

    name = CHANNEL
    gateway = "unionpay"

    def __init__(self, client: UnionPayClient, form_url: str, clock: Clock) -> None:
        self._client = client
        self._form_url = form_url
        self._clock = clock
        self.profile = ChannelProfile(
            currencies=frozenset({tf.CURRENCY}),
            devices=frozenset({"desktop", "mobile"}),
            min_amount={tf.CURRENCY: 1},
            # settleDate is a Beijing day; the file is asked for from 10:00 the next morning.
            bill_timezone=tf.BEIJING,
            bill_ready_after=BILL_READY_AFTER,
        )

    def close(self) -> None:
        """Close the gateway's HTTP connections (channels of one gateway share them)."""
        self._client.close()

    # Payments ----------------------------------------------------------------------------

    def create_payment(self, request: CreatePaymentRequest) -> CreatePaymentResult:
        """Sign the front consume and send the payer to knowpay's auto-submitting form."""
        out_trade_no = request.out_trade_no
        if tf.pay_deadline(out_trade_no, request.expires_at) <= self._clock.now():
            # Opened long after the id was made (an attempt released from risk review hours
            # later): its payTimeout is already past and UnionPay would refuse the form.
            raise ChannelDeclined(
                "pay_window_passed",
                "The UnionPay payment window of this attempt has passed; start a new attempt.",
            )
        fields = self._client.fields(
            "01",
            "01",
            channelType=tf.channel_type(request.options),
            orderId=tf.order_id(out_trade_no),
            txnTime=tf.txn_time(out_trade_no),
            txnAmt=tf.to_fen(request.amount),
            currencyCode=tf.CURRENCY_CODE,
            payTimeout=tf.pay_timeout(out_trade_no, request.expires_at),
            frontUrl=request.return_url,
            backUrl=request.notify_url,
            riskRateInfo=tf.risk_rate_info(request.subject),
        )
        url = f"{self._form_url}?f={tf.encode_form(self._client.sign(fields))}"
        return CreatePaymentResult(
            status=ChannelStatus.PENDING, action=PaymentAction(type="redirect", url=url)
        )

    def query_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        answer = self._query(out_trade_no)
        code = answer.get("respCode")
        if code == tf.NOT_FOUND:
            # Not paid (an unpaid front consume is no transaction at UnionPay): closed once
            # its payTimeout is surely over, pending until then.
            closed = tf.surely_expired(out_trade_no, self._clock.now())
            return PaymentQueryResult(
                status=ChannelStatus.CLOSED if closed else ChannelStatus.PENDING
            )
        if code in tf.IN_DOUBT_CODES:
            return PaymentQueryResult(status=ChannelStatus.PENDING)
        if code not in tf.SUCCESS_CODES:
            raise ChannelDeclined(code or "unknown", answer.get("respMsg", ""))
        status = tf.original_status(answer.get("origRespCode"))
        if status is ChannelStatus.SUCCEEDED:
            return PaymentQueryResult(
                status=status,
                gateway_trade_no=answer.get("queryId") or None,
                amount=tf.from_fen(answer.get("txnAmt"), answer.get("currencyCode")),
            )
        if status is ChannelStatus.FAILED and tf.surely_expired(out_trade_no, self._clock.now()):
            return PaymentQueryResult(
                status=status,
                gateway_trade_no=answer.get("queryId") or None,
                failure_code=answer.get("origRespCode"),
                failure_message=answer.get("origRespMsg"),
            )
        # A front consume that failed may still be paid by the payer's next try until its
        # payTimeout ("失败、处理中、查询不到订单均可能为中间状态", UnionPay's query demo):
        # pending until then, as a trade not found is.
        return PaymentQueryResult(
            status=ChannelStatus.PENDING, gateway_trade_no=answer.get("queryId") or None
        )

    def close_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        """No close exists: the status a query gives (see the module's note on payTimeout)."""
        return self.query_payment(out_trade_no, gateway_trade_no=gateway_trade_no)

    # Refunds -----------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        """txnType 04 against the consume's queryId. UnionPay accepts it (respCode 00) and
        reports the result by back notification or query: accepted means pending."""
        original = request.gateway_trade_no or self._paid_query_id(request.out_trade_no)
        fields = self._client.fields(
            "04",
            "00",
            channelType=tf.DESKTOP,
            orderId=tf.order_id(request.out_refund_no),
            txnTime=tf.txn_time(request.out_refund_no),
            txnAmt=tf.to_fen(request.amount),
            origQryId=original,
            backUrl=request.notify_url,
            reqReserved=request.out_trade_no,
        )
        answer = self._client.back(fields)
        code = answer.get("respCode", "")
        if code in tf.SUCCESS_CODES:
            return RefundResult(
                status=ChannelStatus.PENDING, gateway_refund_no=answer.get("queryId") or None
            )
        if code in tf.IN_DOUBT_CODES:
            return RefundResult(status=ChannelStatus.PENDING)
        if code == tf.DUPLICATE:
            # Sent before (a retry after a lost answer): the first one's outcome counts.
            return self.query_refund(request.out_trade_no, request.out_refund_no)
        return RefundResult(
            status=ChannelStatus.FAILED,
            failure_code=code or "unknown",
            failure_message=answer.get("respMsg"),
        )

    def _paid_query_id(self, out_trade_no: str) -> str:
        result = self.query_payment(out_trade_no)
        if result.status is not ChannelStatus.SUCCEEDED or not result.gateway_trade_no:
            raise ChannelDeclined("not_paid", f"UnionPay has no paid consume {out_trade_no}")
        return result.gateway_trade_no

    def query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        *,
        gateway_trade_no: str | None = None,
        gateway_refund_no: str | None = None,
    ) -> RefundResult:
        answer = self._query(out_refund_no)
        code = answer.get("respCode")
        if code == tf.NOT_FOUND or code in tf.IN_DOUBT_CODES:
            return RefundResult(status=ChannelStatus.PENDING)
        if code not in tf.SUCCESS_CODES:
            raise ChannelDeclined(code or "unknown", answer.get("respMsg", ""))
        status = tf.original_status(answer.get("origRespCode"))
        return RefundResult(
            status=status,
            gateway_refund_no=answer.get("queryId") or gateway_refund_no,
            failure_code=answer.get("origRespCode") if status is ChannelStatus.FAILED else None,
            failure_message=answer.get("origRespMsg") if status is ChannelStatus.FAILED else None,
        )

    def _query(self, reference: str) -> dict[str, str]:
        """txnType 00 for a transaction knowpay named (orderId and txnTime from the id)."""
        fields = self._client.fields(
            "00", "00", orderId=tf.order_id(reference), txnTime=tf.txn_time(reference)
        )
        return self._client.query(fields)

    # Notifications -----------------------------------------------------------------------

    def verify_and_parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> Notification:
        params = _form(body)
        self._client.verify(params)
        if params.get("merId") != self._client.mer_id:
            raise ProtocolError(f"merId {params.get('merId')!r} is not ours")
        return tf.notification(params)

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return tf.ack(accepted)

    # Bills -------------------------------------------------------------------------------

    def fetch_bill(self, bill_date: date) -> Bill:
        """The settlement file of that settleDate (file transfer, txnType 76); a day with no
        file (respCode 98) is an empty bill."""
        return bill.fetch(self._client, bill_date, self._clock.now())


def _form(body: bytes) -> dict[str, str]:
    """The notification form, UTF-8 (the only `encoding` knowpay asks for)."""
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"the notification is not a UTF-8 form: {exc}") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ProtocolError(f"the notification repeats {key!r}")
        params[key] = value
    return params


def build_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """The `unionpay` channel, when the merchant and UnionPay's certificates are configured."""
    unionpay = settings.unionpay
    if not (
        unionpay.enabled
        and unionpay.mer_id
        and unionpay.sign_private_key
        and (unionpay.sign_cert or unionpay.sign_cert_id)
        and unionpay.root_cert
        and unionpay.middle_cert
    ):
        return {}
    form_url = unionpay.form_url or f"{settings.public_url}/forms/unionpay"
    channel = UnionPayChannel(UnionPayClient(unionpay, clock), form_url, clock)
    return {channel.name: channel}

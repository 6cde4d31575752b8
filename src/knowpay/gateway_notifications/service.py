"""Inbound notifications: verify over the raw bytes, store once per (gateway, external id),
dispatch, and answer in the gateway's own format. Never commits."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowpay.alerts.service import raise_alert, raise_alert_once
from knowpay.channels.base import Channel
from knowpay.channels.errors import (
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
    SignatureProbe,
)
from knowpay.channels.types import (
    CHANNEL_GATEWAYS,
    ChannelStatus,
    Notification,
    NotificationAck,
    RefundResult,
)
from knowpay.gateway_notifications.models import InboundNotification
from knowpay.kit.config import RefundSettings
from knowpay.kit.db import insert_unless_present
from knowpay.kit.errors import KnowpayError
from knowpay.kit.ids import new_id
from knowpay.kit.masking import mask_account
from knowpay.kit.money import Money
from knowpay.payments import service as payments
from knowpay.payments.errors import PaymentNotFound
from knowpay.refunds import service as refunds
from knowpay.refunds.errors import RefundNotFound
from knowpay.risk import service as risk

_KEPT_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "knowpay-test-signature",
        "wechatpay-signature",
        "wechatpay-timestamp",
        "wechatpay-nonce",
        "wechatpay-serial",
        "wechatpay-signature-type",
        "stripe-signature",
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    }
)


logger = logging.getLogger(__name__)

_PAYMENT_ID_CHARS = 40
"""InboundNotification.payment_id's length."""
_GATEWAY_ID_CHARS = 128
"""Payment.gateway_trade_no's and Refund.gateway_refund_no's length."""

# Any gateway resends on a non-2xx answer; 503 says "not now" rather than "refused".
_TRY_AGAIN_LATER = NotificationAck(
    status_code=503,
    body=b'{"error": "verification unavailable, retry"}',
    content_type="application/json",
)


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one notification, and the answer for the gateway."""

    outcome: str
    ack: NotificationAck
    notification_id: str | None = None


def _headers_json(headers: Mapping[str, str]) -> str:
    kept = {k.lower(): v for k, v in headers.items() if k.lower() in _KEPT_HEADERS}
    return json.dumps(kept, sort_keys=True)


def _store(
    session: Session,
    gateway: str,
    external_id: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    verified: bool,
    outcome: str,
    reason: str | None,
    payment_id: str | None,
    now: datetime,
) -> InboundNotification | None:
    """Insert the inbox row; None when this (gateway, external id) is already there."""
    values = {
        "id": new_id("ntf"),
        "gateway": gateway,
        "external_id": external_id[:160],
        "headers_json": _headers_json(headers),
        "body": body,
        "verified": verified,
        "outcome": outcome,
        "reason": reason,
        # An id longer than ours cannot name one of our payments (PostgreSQL would refuse it).
        "payment_id": payment_id if payment_id and len(payment_id) <= _PAYMENT_ID_CHARS else None,
        "received_at": now,
    }
    return insert_unless_present(
        session, InboundNotification, values, unique=("gateway", "external_id")
    )


def _reject_unverified(
    session: Session,
    channel: Channel,
    headers: Mapping[str, str],
    body: bytes,
    reason: str,
    now: datetime,
    *,
    probe: bool = False,
) -> Handled:
    external_id = "unverified:" + hashlib.sha256(body).hexdigest()
    row = _store(
        session,
        channel.gateway,
        external_id,
        headers,
        body,
        verified=False,
        outcome="rejected",
        reason=reason[:500],
        payment_id=None,
        now=now,
    )
    if row is not None:
        raise_alert(
            session,
            kind="notification_rejected",
            subject_id=row.id,
            now=now,
            # The gateway checking that we refuse unsigned callbacks is no attack.
            severity="info" if probe else "error",
            message=f"An unverifiable {channel.gateway} notification was rejected: {reason}",
        )
    return Handled("rejected", channel.notification_ack(False), row.id if row else None)


def _dispatch_once_more_after_a_collision(
    session: Session, gateway: str, note: Notification, now: datetime, policy: RefundSettings
) -> str | None:
    """Dispatch in a savepoint. Should it collide with a row another transaction committed
    meanwhile (two notifications carrying one reused gateway trade number at the same moment:
    the unique index makes the second wait, then refuses it), it is dispatched once more,
    and then sees that row and takes the path written for it, instead of ending in a 500.
    Returns what the inbox row should say of a notification acknowledged but not applied."""
    try:
        with session.begin_nested():
            return _dispatch(session, gateway, note, now, policy)
    except IntegrityError as collision:
        logger.info(
            "%s notification collided with a concurrent write, retried: %s", gateway, collision.orig
        )
    with session.begin_nested():
        return _dispatch(session, gateway, note, now, policy)


def _dispatch(
    session: Session, gateway: str, note: Notification, now: datetime, policy: RefundSettings
) -> str | None:
    if note.kind == "refund":
        return _dispatch_refund(session, gateway, note, now, policy)
    if note.status is ChannelStatus.SUCCEEDED:
        if note.amount is None:
            raise ProtocolError("a success notification without an amount")
        outcome = payments.record_capture(
            session,
            note.out_trade_no,
            note.amount,
            note.gateway_trade_no,
            now,
            gateway=gateway,
            paid_at=note.paid_at,
        )
        if outcome is payments.CaptureOutcome.RECORDED and note.payer_account:
            _check_payer(session, note, now)
    elif note.status is ChannelStatus.FAILED:
        payments.record_failure(
            session,
            note.out_trade_no,
            _escaped(note.failure_code) or "gateway_failed",
            _escaped(note.failure_message) or "The gateway reported a failure.",
            now,
            gateway=gateway,
        )
    elif note.status is ChannelStatus.CLOSED:
        payments.record_closed_at_gateway(session, note.out_trade_no, now, gateway=gateway)
    if note.attention:
        raise_alert_once(
            session,
            kind="payment_needs_action",
            subject_id=note.out_trade_no or note.external_id,
            now=now,
            message=note.attention,
        )
    return None


def _check_payer(session: Session, note: Notification, now: datetime) -> None:
    """Money from a blacklisted payer account is already captured: staff must look at it."""
    if risk.payer_account_blacklisted(session, note.payer_account or ""):
        raise_alert(
            session,
            kind="risk.blacklisted_payer",
            subject_id=note.out_trade_no,
            message=f"Payment {note.out_trade_no} was paid by a blacklisted payer account "
            f"({mask_account(note.payer_account or '')}); review it and refund if needed.",
            now=now,
        )


def _dispatch_refund(
    session: Session, gateway: str, note: Notification, now: datetime, policy: RefundSettings
) -> str | None:
    refund = refunds.by_out_refund_no(session, note.out_refund_no or "")
    if refund is None or CHANNEL_GATEWAYS.get(refund.channel) != gateway:
        raise RefundNotFound(f"no {gateway} refund {note.out_refund_no}")
    if note.out_trade_no and note.out_trade_no != refund.payment_id:
        raise ProtocolError(
            f"refund {refund.id} is of payment {refund.payment_id}, "
            f"the gateway named {note.out_trade_no}"
        )
    if note.amount is not None and note.amount != Money(refund.amount_minor, refund.currency):
        raise ProtocolError(
            f"refund {refund.id} is {refund.amount_minor} {refund.currency}, "
            f"the gateway said {note.amount}"
        )
    if note.trade_amount is not None:
        paid = payments.get_payment(session, refund.payment_id)
        if note.trade_amount != Money(paid.amount_minor, paid.currency):
            raise ProtocolError(
                f"refund {refund.id} is of a payment of {paid.amount_minor} {paid.currency}, "
                f"the gateway said {note.trade_amount}"
            )
    result = RefundResult(
        note.status,
        gateway_refund_no=note.gateway_refund_no,
        failure_code=_escaped(note.failure_code),
        failure_message=_escaped(note.failure_message),
        attention=note.attention,
    )
    applied = refunds.apply_result(
        session, refund.id, result, now, "gateway", policy, out_refund_no=note.out_refund_no
    )
    if refunds.names_another_refund(applied, note.gateway_refund_no):
        # Thanked all the same (the gateway would resend it for days), and staff alerted.
        return (
            f"names gateway refund {note.gateway_refund_no}, not {applied.gateway_refund_no} "
            f"of refund {applied.id}: not applied (gateway_refund_mismatch)"
        )
    return None


def receive(
    session: Session,
    channel: Channel,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    policy: RefundSettings | None = None,
) -> Handled:
    """Handle one notification for `channel`'s gateway and say how to answer it."""
    try:
        note = channel.verify_and_parse_notification(headers, body)
        _check_storable(note)
    except (SignatureInvalid, ProtocolError) as exc:
        # Cut short: the reason may quote a field of any size, and goes to an alert and a log.
        reason = _printable(f"{type(exc).__name__}: {exc}")[:500]
        probe = isinstance(exc, SignatureProbe)
        return _reject_unverified(session, channel, headers, body, reason, now, probe=probe)
    except ChannelUnavailable as exc:
        # The gateway's own verification service (PayPal's postback) cannot be reached: the
        # notification is neither trusted nor refused; the gateway will send it again.
        logger.warning("%s notification cannot be verified now: %s", channel.gateway, exc)
        return Handled("verification_unavailable", _TRY_AGAIN_LATER, None)
    row = _store(
        session,
        channel.gateway,
        note.external_id,
        headers,
        body,
        verified=True,
        # Stored as it will end in the usual case (no UPDATE after); a refusal below changes it.
        outcome="processed",
        reason=None,
        payment_id=note.out_trade_no,
        now=now,
    )
    if row is None:
        return _answer_duplicate(session, channel, note.external_id)
    try:
        not_applied = _dispatch_once_more_after_a_collision(
            session, channel.gateway, note, now, policy or RefundSettings()
        )
    except (PaymentNotFound, RefundNotFound) as unknown:
        # Not a trade of ours: retrying will not change that, so the gateway is told to stop.
        row.outcome, row.reason = "unknown_trade", str(unknown)[:500]
        raise_alert(
            session,
            kind="notification_unknown_trade",
            subject_id=row.id,
            now=now,
            severity="warning",
            message=f"A {channel.gateway} notification names no {note.kind} of ours: "
            f"{_printable(str(unknown))[:300]}",
        )
        return Handled("unknown_trade", channel.notification_ack(True), row.id)
    except (KnowpayError, ProtocolError) as exc:
        row.outcome, row.reason = "rejected", _printable(f"{type(exc).__name__}: {exc}")[:500]
        raise_alert(
            session,
            kind="notification_rejected",
            subject_id=row.id,
            now=now,
            message=f"{channel.gateway} notification {note.external_id} rejected: {row.reason}",
        )
        return Handled("rejected", channel.notification_ack(False), row.id)
    if not_applied is not None:
        row.reason = _printable(not_applied)[:500]
    return Handled("processed", channel.notification_ack(True), row.id)


def _check_storable(note: Notification) -> None:
    """ProtocolError unless the notification can be stored: JSON can carry lone surrogates
    (`"\\ud800"`) and NULs, which PostgreSQL's text columns refuse, and ids of any length,
    where a payment's and a refund's gateway ids hold 128 characters."""
    texts = (
        note.external_id,
        note.out_trade_no,
        note.gateway_trade_no,
        note.merchant_id,
        note.out_refund_no,
        note.gateway_refund_no,
        note.payer_account,
    )
    for text in texts:
        if text is not None and _printable(text) != text:
            raise ProtocolError("the notification carries text that is not valid Unicode")
    for gateway_id in (note.gateway_trade_no, note.gateway_refund_no):
        if gateway_id is not None and len(gateway_id) > _GATEWAY_ID_CHARS:
            raise ProtocolError(f"a gateway id of {len(gateway_id)} characters")


def _printable(text: str) -> str:
    """The text with what a database text column cannot hold (lone surrogates, NUL) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _escaped(reason: str | None) -> str | None:
    """A gateway's failure reason as it can be stored: only told to people, so an odd
    character in it is escaped rather than the whole notification refused."""
    return None if reason is None else _printable(reason)


def _answer_duplicate(session: Session, channel: Channel, external_id: str) -> Handled:
    """A notification seen before gets the answer the first one got; nothing happens again."""
    first = session.scalars(
        select(InboundNotification).where(
            InboundNotification.gateway == channel.gateway,
            InboundNotification.external_id == external_id[:160],
        )
    ).first()
    accepted = first is not None and first.outcome in ("processed", "unknown_trade")
    return Handled("duplicate", channel.notification_ack(accepted), first.id if first else None)

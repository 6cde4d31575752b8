"""WeChat Pay over real HTTP: knowpay and the WeChat Pay simulator each on their own port.

The payer pays on the simulator; its signed, encrypted callback reaches /notify/wechatpay; the
order is paid once, the ledger balanced. Faults: lost, duplicated ×10, forged, stale, tampered,
misdirected and out-of-order callbacks; failing, slow and forged API answers; a wrong merchant
key; closing; refunds at adapter level and through POST /v1/refunds; and the whole wiring in
certificate mode with keys the simulator generated itself. The wiring is in wechatpay_harness.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from knowpay.auth.principals import Role
from knowpay.channels.errors import ChannelDeclined, ChannelUnavailable
from knowpay.channels.types import ChannelStatus, CreatePaymentRequest, RefundRequest
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.payments.models import Payment
from knowpay.sandbox.wechatpay.simulator import Simulator
from tests import books
from tests.channels.wechatpay.material import APPID, private_pem, rsa_key
from tests.contracts.wechatpay_harness import (
    BEIJING,
    Wired,
    callback_catcher,
    channel_with,
    click,
    paid_once,
    serve_simulator,
    wait_for,
    wire,
)


@pytest.fixture(scope="module")
def shared_simulator() -> Iterator[tuple[str, Simulator]]:
    with serve_simulator() as sandbox:
        yield sandbox


@pytest.fixture
def wired(
    settings: Settings, database: Database, shared_simulator: tuple[str, Simulator]
) -> Iterator[Wired]:
    shared_simulator[1].reset()  # no fault or late callback of an earlier test leaks in
    with wire(settings, database, shared_simulator, "public_key") as both:
        yield both


# Paying ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["wechat_native", "wechat_jsapi", "wechat_h5"])
def test_paying_on_wechat_pays_the_order_through_the_signed_callback(
    wired: Wired, database: Database, channel: str
) -> None:
    order = wired.shop.order()
    payment = wired.pay(order, channel)
    assert payment["status"] == "pending"
    action = payment["action"]
    if channel == "wechat_native":
        assert action["type"] == "qr_code"
        assert action["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
        clicked = click(wired, "/wechatpay/scan?" + urlencode({"code_url": action["code_url"]}))
    elif channel == "wechat_jsapi":
        call = json.loads(action["client_secret"])
        assert (call["appId"], call["signType"]) == (APPID, "RSA")
        clicked = click(wired, "/wechatpay/pay/" + call["package"].removeprefix("prepay_id="))
    else:
        assert action["type"] == "redirect"
        clicked = click(wired, action["url"].removeprefix(str(wired.sandbox.base_url).rstrip("/")))
        # WeChat sends the browser to knowpay, which asks WeChat, then sends it to the shop.
        back = clicked.headers["location"]
        assert back == f"{wired.settings.public_url}/return/{payment['id']}"
        onward = wired.knowpay.get(
            back.removeprefix(wired.settings.public_url), follow_redirects=False
        )
        assert (onward.status_code, onward.headers["location"]) == (
            303,
            "https://shop.example.com/orders/1",
        )
    assert clicked.status_code == 303
    paid_once(wired, database, order, payment["id"])
    replies = wait_for(lambda: wired.replies(payment["id"]), "the callback's answer")
    assert replies == [{"status": 204, "body": ""}]


def test_certificate_mode_with_keys_the_simulator_generated(
    settings: Settings, database: Database
) -> None:
    with (
        serve_simulator("certificate", generated=True) as sandbox,
        wire(settings, database, sandbox, "certificate") as wired,
    ):
        keys = wired.sandbox.get("/wechatpay/_keys").json()
        assert keys["key_mode"] == "certificate"
        assert not keys["platform_serial_no"].startswith("PUB_KEY_ID_")
        order = wired.shop.order()
        payment = wired.pay(order)
        wired.pay_at_wechat(payment["id"])
        paid_once(wired, database, order, payment["id"])


def test_a_lost_callback_is_recovered_by_active_query(wired: Wired, database: Database) -> None:
    order = wired.shop.order()
    payment = wired.pay(order)
    wired.faults(out_trade_no=payment["id"], lose_notification=True)
    wired.pay_at_wechat(payment["id"])
    time.sleep(0.2)
    assert wired.order_status(order["id"]) == "created"
    assert wired.trade(payment["id"])["notifications"][0]["lost"] is True
    synced = wired.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=wired.shop.app.headers
    )
    assert synced.status_code == 200, synced.text
    assert synced.json()["status"] == "succeeded"
    paid_once(wired, database, order, payment["id"])


def test_ten_concurrent_duplicates_record_one_capture(wired: Wired, database: Database) -> None:
    order = wired.shop.order()
    payment = wired.pay(order)
    wired.faults(out_trade_no=payment["id"], duplicate=10)
    wired.pay_at_wechat(payment["id"])
    replies = wait_for(lambda: wired.replies(payment["id"]), "ten answers")
    assert len(replies) == 10
    assert {reply["status"] for reply in replies} == {204}  # duplicates are acknowledged
    # The simulator's own log of the callback: every copy, each answer timed.
    [logged] = wired.sandbox.get(
        "/wechatpay/_notifications", params={"out_trade_no": payment["id"]}
    ).json()
    assert logged["out_trade_no"] == payment["id"]
    [attempt] = logged["attempts"]
    assert len(attempt["answer_ms"]) == 10
    assert all(ms > 0 for ms in attempt["answer_ms"])
    paid_once(wired, database, order, payment["id"])
    assert len(books.events(database, "order.paid")) == 1
    assert len(books.notifications(database)) == 1


@pytest.mark.parametrize(
    "fault", ["forge_signature", "wrong_mchid", "wrong_appid", "tamper_amount", "stale_timestamp"]
)
def test_a_bad_callback_is_rejected_alerted_and_moves_no_money(
    wired: Wired, database: Database, fault: str
) -> None:
    order = wired.shop.order()
    payment = wired.pay(order)
    wired.faults(out_trade_no=payment["id"], **{fault: True})
    wired.pay_at_wechat(payment["id"])
    replies = wait_for(lambda: wired.replies(payment["id"]), "the rejection")
    assert replies[0]["status"] == 400
    assert json.loads(replies[0]["body"])["code"] == "FAIL"
    wait_for(lambda: len(wired.replies(payment["id"])) >= 2, "WeChat's retry")  # 15 s, scaled
    assert wired.order_status(order["id"]) == "created"
    assert books.entries(database) == []
    alerts = wired.alerts()
    assert alerts
    assert {alert["kind"] for alert in alerts} == {"notification_rejected"}
    # The trade really was paid at WeChat: the (verified) active query settles it.
    synced = wired.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=wired.shop.app.headers
    )
    assert synced.json()["status"] == "succeeded"
    paid_once(wired, database, order, payment["id"])


# Closing and failing gateways --------------------------------------------------------------------


def test_closing_an_order_closes_the_trade_at_wechat(wired: Wired) -> None:
    order = wired.shop.order()
    payment = wired.pay(order)
    closed = wired.knowpay.post(f"/v1/orders/{order['id']}/close", headers=wired.shop.app.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert wired.shop.get(f"/v1/payments/{payment['id']}")["status"] == "closed"
    assert wired.trade(payment["id"])["trade_state"] == "CLOSED"
    late = wired.sandbox.post(f"/wechatpay/_trades/{payment['id']}/pay")
    assert late.status_code == 409


def test_failing_and_forged_api_answers_are_503_and_change_nothing(wired: Wired) -> None:
    order = wired.shop.order()
    start = f"/v1/orders/{order['id']}/payments"
    wired.faults(api_status=500)
    refused = wired.knowpay.post(
        start, json={"channel": "wechat_native"}, headers=wired.shop.app.headers
    )
    assert (refused.status_code, refused.json()["code"]) == (503, "channel_unavailable")
    wired.sandbox.delete("/wechatpay/_faults")
    payment = wired.pay(order)
    sync = f"/v1/payments/{payment['id']}/sync"
    for fault in ({"api_status": 502}, {"forge_response": True}):
        wired.faults(out_trade_no=payment["id"], **fault)
        assert wired.knowpay.post(sync, headers=wired.shop.app.headers).status_code == 503
    wired.sandbox.delete("/wechatpay/_faults")
    assert wired.knowpay.post(sync, headers=wired.shop.app.headers).json()["status"] == "pending"
    assert wired.order_status(order["id"]) == "created"


def test_a_wrong_merchant_key_is_refused_with_sign_error(wired: Wired) -> None:
    channel = channel_with(wired, merchant_private_key=private_pem(rsa_key("stranger")))
    with pytest.raises(ChannelDeclined) as declined:
        channel.query_payment("pay_01jd3k0000000000000000000a")
    assert declined.value.code == "SIGN_ERROR"


def test_a_gateway_slower_than_the_read_timeout_is_unavailable(wired: Wired) -> None:
    impatient = channel_with(wired, timeout_s=0.3)
    wired.faults(api_delay_s=0.6)
    request = CreatePaymentRequest(
        out_trade_no="pay_slow_timeout_0001",
        amount=Money(9900, "CNY"),
        subject="Course",
        notify_url=wired.settings.public_url + "/notify/wechatpay",
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
    )
    started = time.monotonic()
    with pytest.raises(ChannelUnavailable, match="cannot be reached"):
        impatient.create_payment(request)
    # One attempt of 0.3 s: opening a trade is never retried (three would take over 1.5 s).
    assert time.monotonic() - started < 1.2


# Refunds (adapter level: the refunds domain builds on this) -----------------------------------


def test_a_refund_over_the_protocol(wired: Wired, database: Database) -> None:
    order = wired.shop.order()
    payment = wired.pay(order)
    wired.pay_at_wechat(payment["id"])
    wait_for(lambda: wired.order_status(order["id"]) == "paid", "the order to be paid")
    channel = wired.channel()
    with callback_catcher() as (notify_url, received):
        request = RefundRequest(
            out_trade_no=payment["id"],
            out_refund_no="re_01jd3k0000000000000000000b",
            amount=Money(3000, "CNY"),
            total=Money(9900, "CNY"),
            reason="不想学了",
            notify_url=notify_url,
        )
        first = channel.refund(request)
        assert first.status is ChannelStatus.PENDING
        assert first.gateway_refund_no
        assert channel.refund(request).gateway_refund_no == first.gateway_refund_no  # idempotent
        too_much = channel.refund(replace(request, out_refund_no="re_2", amount=Money(9000, "CNY")))
        assert (too_much.status, too_much.failure_code) == (ChannelStatus.FAILED, "INVALID_REQUEST")
        [(headers, body)] = wait_for(lambda: received, "the REFUND.SUCCESS callback")
        note = channel.verify_and_parse_notification(headers, body)
    assert (note.kind, note.status, note.out_refund_no) == (
        "refund",
        ChannelStatus.SUCCEEDED,
        "re_01jd3k0000000000000000000b",
    )
    assert (note.out_trade_no, note.amount) == (payment["id"], Money(3000, "CNY"))
    done = channel.query_refund(payment["id"], "re_01jd3k0000000000000000000b")
    assert (done.status, done.gateway_refund_no) == (
        ChannelStatus.SUCCEEDED,
        first.gateway_refund_no,
    )
    assert channel.query_payment(payment["id"]).status is ChannelStatus.SUCCEEDED  # REFUND: paid
    bill = channel.fetch_bill(datetime.now(BEIJING).date())
    mine = [line for line in bill.lines if line.out_trade_no == payment["id"]]
    assert sorted((line.kind, line.amount.amount_minor) for line in mine) == [
        ("payment", 9900),
        ("refund", 3000),
    ]
    assert books.violations(database) == []


def test_a_refund_through_knowpay_is_settled_by_wechats_refund_callback(
    wired: Wired, database: Database
) -> None:
    order = wired.shop.order()
    payment = wired.pay(order)
    wired.pay_at_wechat(payment["id"])
    wait_for(lambda: wired.order_status(order["id"]) == "paid", "the order to be paid")
    created = wired.knowpay.post(
        "/v1/refunds",
        json={"order_id": order["id"], "amount": 3000, "reason": "不想学了"},
        headers=wired.shop.app.headers,
    )
    assert created.status_code == 201, created.text
    refund = created.json()
    assert refund["status"] == "processing"
    [at_wechat] = wait_for(lambda: wired.trade(payment["id"])["refunds"], "the refund at WeChat")
    assert at_wechat["amount"]["refund"] == 3000
    # The payer reads the reason in WeChat's refund message: the buyer's words, not a code.
    assert wired.simulator.store.refunds[refund["id"]].reason == "不想学了"

    def settled() -> dict[str, Any] | None:
        current = wired.shop.get(f"/v1/refunds/{refund['id']}")
        return current if current["status"] == "succeeded" else None

    done = wait_for(settled, "the REFUND.SUCCESS callback to settle the refund")
    assert done["amount"] == 3000
    assert wired.order_status(order["id"]) == "partially_refunded"
    refund_replies = [
        reply
        for note in wired.trade(payment["id"])["notifications"]
        if note["event_type"] == "REFUND.SUCCESS"
        for attempt in note["attempts"]
        for reply in attempt["replies"]
    ]
    assert refund_replies[0]["status"] == 204
    assert books.violations(database) == []


def test_callbacks_out_of_order_refund_before_payment_capture_once_and_settle(
    wired: Wired, database: Database
) -> None:
    order = wired.shop.order()
    payment = wired.pay(order)
    wired.faults(out_trade_no=payment["id"], out_of_order=True)
    wired.pay_at_wechat(payment["id"])  # TRANSACTION.SUCCESS is held at WeChat
    [held] = wired.trade(payment["id"])["notifications"]
    assert (held["event_type"], held["held"], held["attempts"]) == ("TRANSACTION.SUCCESS", True, [])
    synced = wired.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=wired.shop.app.headers
    )
    assert synced.json()["status"] == "succeeded"  # paid by the query, the callback still held
    created = wired.knowpay.post(
        "/v1/refunds",
        json={"order_id": order["id"], "amount": 3000, "reason": "other"},
        headers=wired.shop.app.headers,
    )
    assert created.status_code == 201, created.text
    refund = created.json()
    assert refund["status"] == "processing"

    def both_held() -> list[dict[str, Any]]:
        notes: list[dict[str, Any]] = wired.trade(payment["id"])["notifications"]
        return notes if len(notes) == 2 and all(n["held"] for n in notes) else []

    wait_for(both_held, "REFUND.SUCCESS to be held behind TRANSACTION.SUCCESS")
    assert wired.shop.get(f"/v1/refunds/{refund['id']}")["status"] == "processing"
    wired.faults(out_trade_no=payment["id"])  # lifting the fault sends them newest first

    def delivered() -> dict[str, dict[str, Any]]:
        notes = wired.trade(payment["id"])["notifications"]
        done = all(n["delivered"] for n in notes)
        return {n["event_type"]: n for n in notes} if done else {}

    notes = wait_for(delivered, "both callbacks to be delivered")
    refund_note, payment_note = notes["REFUND.SUCCESS"], notes["TRANSACTION.SUCCESS"]
    assert refund_note["attempts"][0]["send_no"] < payment_note["attempts"][0]["send_no"]
    # The refund callback, arriving first, settled the refund itself (the payment was already
    # recorded by the query); the late payment callback is acknowledged as a duplicate.
    assert [r["status"] for a in refund_note["attempts"] for r in a["replies"]] == [204]
    assert [r["status"] for a in payment_note["attempts"] for r in a["replies"]] == [204]
    done = wired.shop.get(f"/v1/refunds/{refund['id']}")
    assert (done["status"], done["amount"]) == ("succeeded", 3000)
    assert wired.order_status(order["id"]) == "partially_refunded"  # not set back to paid
    assert wired.shop.get(f"/v1/payments/{payment['id']}")["status"] == "succeeded"
    assert [e.payment_id for e in books.entries(database, kind="payment_captured")] == [
        payment["id"]
    ]
    assert books.violations(database) == []


def test_a_full_refund_whose_callback_is_lost_is_settled_by_the_workers_query(
    wired: Wired, database: Database
) -> None:
    from knowpay.worker.runner import Worker

    order = wired.shop.order()
    payment = wired.pay(order)
    wired.pay_at_wechat(payment["id"])
    wait_for(lambda: wired.order_status(order["id"]) == "paid", "the order to be paid")
    wired.faults(
        out_trade_no=payment["id"], lose_notification=True
    )  # the REFUND.SUCCESS goes missing
    created = wired.knowpay.post(
        "/v1/refunds",
        json={"order_id": order["id"], "reason": "other"},
        headers=wired.shop.app.headers,
    )
    assert created.status_code == 201, created.text
    refund = created.json()
    assert (refund["status"], refund["amount"]) == ("processing", 9900)
    wait_for(lambda: wired.trade(payment["id"])["refunds"], "the refund at WeChat")
    time.sleep(0.2)
    assert wired.shop.get(f"/v1/refunds/{refund['id']}")["status"] == "processing"
    # The worker asks WeChat once the refund has waited `check_after_s` (60 s): a minute on.
    from datetime import UTC, datetime, timedelta

    from knowpay.kit.clock import FrozenClock

    later = FrozenClock(datetime.now(UTC) + timedelta(seconds=61))
    worker = Worker(wired.settings, database, later, wired.registry)
    worker.run_jobs_once()
    done = wired.shop.get(f"/v1/refunds/{refund['id']}")
    assert done["status"] == "succeeded", done
    assert wired.order_status(order["id"]) == "refunded"
    assert books.violations(database) == []


def test_a_refund_wechat_cannot_answer_is_tried_once_while_the_client_waits(
    wired: Wired, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a refund audit: with WeChat stalling, POST /v1/refunds took 31 s (three tries
    of the 10 s timeout). The request tries once; the worker's send job tries again with the
    same refund number."""
    order = wired.shop.order()
    payment = wired.pay(order)
    wired.pay_at_wechat(payment["id"])
    wait_for(lambda: wired.order_status(order["id"]) == "paid", "the order to be paid")
    wired.faults(out_trade_no=payment["id"], api_status=500)
    refund_calls: list[str] = []
    real_send = httpx.Client.send

    def counting_send(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
        if request.url.path.endswith("/v3/refund/domestic/refunds"):
            refund_calls.append(request.method)
        return real_send(client, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", counting_send)
    created = wired.knowpay.post(
        "/v1/refunds",
        json={"order_id": order["id"], "reason": "other"},
        headers=wired.shop.app.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "processing"
    assert refund_calls == ["POST"]
    assert books.violations(database) == []


def test_a_refund_wechat_refuses_fails_with_the_reason_and_a_retry_after_recovery_succeeds(
    wired: Wired, database: Database
) -> None:
    order = wired.shop.order()
    payment = wired.pay(order)
    wired.pay_at_wechat(payment["id"])
    wait_for(lambda: wired.order_status(order["id"]) == "paid", "the order to be paid")
    wired.faults(out_trade_no=payment["id"], api_status=403, api_code="NOT_ENOUGH")
    created = wired.knowpay.post(
        "/v1/refunds",
        json={"order_id": order["id"], "reason": "other"},
        headers=wired.shop.app.headers,
    )
    assert created.status_code == 201, created.text
    refused = created.json()
    assert (refused["status"], refused["failure_code"]) == ("failed", "NOT_ENOUGH")
    assert refused["timeline"][-1]["step"] == "gateway_refused"
    assert wired.order_status(order["id"]) == "paid"
    assert books.violations(database) == []
    wired.faults(out_trade_no=payment["id"])  # WeChat recovers
    finance = wired.shop.build.staff(Role.FINANCE)
    retried = wired.knowpay.post(f"/v1/refunds/{refused['id']}/retry", headers=finance.headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "processing"

    def settled() -> dict[str, Any] | None:
        current = wired.shop.get(f"/v1/refunds/{refused['id']}")
        return current if current["status"] == "succeeded" else None

    done = wait_for(settled, "the REFUND.SUCCESS callback")
    assert [s["step"] for s in done["timeline"]][-3:] == [
        "retried",
        "sent_to_gateway",
        "money_returned",
    ]
    assert wired.order_status(order["id"]) == "refunded"
    assert books.violations(database) == []


@pytest.mark.parametrize(
    ("channel", "field"), [("wechat_jsapi", "openid"), ("wechat_h5", "client_ip")]
)
def test_a_trade_without_the_payer_detail_wechat_needs_is_refused_before_anything_is_written(
    wired: Wired, database: Database, channel: str, field: str
) -> None:
    """WeChat cannot open a JSAPI trade without the payer's openid, nor (from an app) an H5
    one without the payer's IP: the attempt used to be written and fail (`missing_openid`,
    `missing_client_ip`, the latter found by an independent WeChat Pay implementation),
    counting as a failure for the risk rules."""
    order = wired.shop.order()

    refused = wired.shop.client.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": channel},
        headers=wired.shop.app.headers,
    )

    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "payer_details_missing"
    assert [e["field"] for e in problem["errors"]] == [field]
    with database.session_scope(read_only=True) as session:
        written = session.scalars(select(Payment.id).where(Payment.order_id == order["id"]))
        assert written.all() == []


def test_routing_inside_wechat_passes_jsapi_by_without_an_openid(wired: Wired) -> None:
    """Inside WeChat with no channel named, JSAPI came first and, without an openid, was
    sure to fail; another channel that serves the payer is taken instead."""
    order = wired.shop.order()
    path = f"/v1/orders/{order['id']}/payments"

    routed = wired.shop.client.post(path, json={"device": "wechat"}, headers=wired.shop.app.headers)

    assert routed.status_code == 201, routed.text
    assert routed.json()["channel"] != "wechat_jsapi"

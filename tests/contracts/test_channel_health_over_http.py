"""Channel health over real HTTP against the Alipay simulator: failing gateway calls open
Alipay's breaker, its channels leave the order's channel list and a payment on them gets
`channel_unavailable` naming the alternatives; when Alipay recovers the breaker closes.
Without a named channel, knowpay fails over to the next channel that can pay."""

from __future__ import annotations

from typing import Any

import pytest

from knowpay.auth.principals import Role
from tests import books
from tests.contracts import test_alipay_over_http as alipay
from tests.contracts.test_alipay_over_http import World, wait_for

# The Alipay contract suite's simulator and knowpay, reused by name as fixtures here.
merchant_key, sandbox, world = alipay.merchant_key, alipay.sandbox, alipay.world

ALIPAY_CHANNELS = {"alipay_page", "alipay_wap", "alipay_qr"}
FRAGILE = pytest.mark.channel_health(breaker_fail_max=3, breaker_reset_timeout_s=1.0)


def channel_list(world: World, order: dict[str, Any], **params: str) -> list[str]:
    answer = world.knowpay.get(
        f"/v1/orders/{order['id']}/channels", params=params, headers=world.shop.app.headers
    )
    assert answer.status_code == 200, answer.text
    return [option["channel"] for option in answer.json()["data"]]


def try_to_pay(world: World, order: dict[str, Any], **body: Any) -> Any:
    return world.knowpay.post(
        f"/v1/orders/{order['id']}/payments", json=body, headers=world.shop.app.headers
    )


def admin_channels(world: World) -> dict[str, dict[str, Any]]:
    staff = world.shop.build.staff(Role.SUPPORT)
    answer = world.knowpay.get("/v1/admin/channels", headers=staff.headers)
    assert answer.status_code == 200, answer.text
    return {row["channel"]: row for row in answer.json()["data"]}


def test_an_order_lists_the_channels_that_can_pay_it_in_preference_order(world: World) -> None:
    order = world.shop.order()
    assert channel_list(world, order) == ["alipay_qr", "alipay_page", "alipay_wap", "test"]
    answer = world.shop.get(f"/v1/orders/{order['id']}/channels")
    assert [o["preferred"] for o in answer["data"]] == [True, False, False, False]
    assert (answer["currency"], answer["amount"]) == ("CNY", order["amount"])
    # The device filters: a phone browser gets the wap page, a desktop the QR code and page.
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
    phone = world.knowpay.get(
        f"/v1/orders/{order['id']}/channels",
        headers={**world.shop.app.headers, "User-Agent": iphone},
    ).json()
    assert [o["channel"] for o in phone["data"]] == ["alipay_wap", "test"]
    assert phone["device"] == "mobile"
    assert channel_list(world, order, device="desktop") == ["alipay_qr", "alipay_page", "test"]


@FRAGILE
def test_a_failing_gateway_opens_its_breaker_and_recovery_closes_it(world: World) -> None:
    order = world.shop.order()
    world.sandbox.fault("http_5xx", None, methods=["alipay.trade.precreate"], times=2)
    world.sandbox.fault("timeout", None, methods=["alipay.trade.precreate"], times=1, seconds=2)
    for _ in range(3):  # two 5xx answers and one timeout: three failures in a row
        failed = try_to_pay(world, order, channel="alipay_qr")
        assert failed.status_code == 503, failed.text
        assert failed.json()["code"] == "channel_unavailable"

    assert not ALIPAY_CHANNELS & set(channel_list(world, order))
    refused = try_to_pay(world, order, channel="alipay_page")
    assert refused.status_code == 503
    problem = refused.json()
    assert (problem["code"], problem["alternatives"]) == ("channel_unavailable", ["test"])
    assert "test" in problem["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    health = admin_channels(world)
    assert health["alipay_qr"]["health"]["breaker_state"] == "open"
    assert health["alipay_qr"]["health"]["error_rate"] == 1.0
    assert health["test"]["health"]["breaker_state"] == "closed"
    wait_for(lambda: "channel.breaker_opened" in world.alerts())

    # Alipay is well again (the faults are spent); after the reset timeout a trial call
    # goes through, succeeds, and the breaker closes.
    wait_for(lambda: "alipay_qr" in channel_list(world, order), timeout_s=5)
    paid = try_to_pay(world, order, channel="alipay_qr")
    assert paid.status_code == 201, paid.text
    assert admin_channels(world)["alipay_qr"]["health"]["breaker_state"] == "closed"
    assert set(channel_list(world, order)) >= ALIPAY_CHANNELS
    wait_for(lambda: "channel.breaker_closed" in world.alerts())
    assert books.violations(world.database) == []


@FRAGILE
def test_without_a_named_channel_knowpay_fails_over_to_the_next_that_can_pay(
    world: World,
) -> None:
    order = world.shop.order()
    world.sandbox.fault("http_5xx", None, methods=["alipay.trade.precreate"], times=1)
    routed = try_to_pay(world, order, device="desktop", test_outcome="pending")
    assert routed.status_code == 201, routed.text
    assert routed.json()["channel"] == "test"  # alipay_qr was preferred but could not open
    attempts = world.shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert [(a["channel"], a["status"]) for a in attempts] == [
        ("alipay_qr", "failed"),
        ("test", "pending"),
    ]
    assert attempts[0]["failure_code"] == "channel_unavailable"


def test_a_named_channel_is_not_switched_behind_the_payers_back(world: World) -> None:
    order = world.shop.order()
    world.sandbox.fault("http_5xx", None, methods=["alipay.trade.precreate"], times=1)
    failed = try_to_pay(world, order, channel="alipay_qr")
    assert failed.status_code == 503
    assert failed.json()["alternatives"] == ["test"]
    attempts = world.shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert [a["channel"] for a in attempts] == ["alipay_qr"]


def test_no_channel_for_a_currency_nobody_charges_here(world: World) -> None:
    product = world.shop.build.product(
        world.shop.app,
        prices=[{"amount": 1000, "currency": "CNY"}, {"amount": 500, "currency": "CHF"}],
    )
    order = world.shop.order(product, currency="CHF")
    assert channel_list(world, order) == ["test"]  # the test gateway charges anything
    refused = try_to_pay(world, order, channel="alipay_qr")
    assert (refused.status_code, refused.json()["code"]) == (422, "currency_not_supported")

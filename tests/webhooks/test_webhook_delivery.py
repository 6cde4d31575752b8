"""Webhook delivery over real HTTP to receivers on 127.0.0.1: signed, retried with backoff,
logged, in order per order, and a slow receiver does not hold up the others."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.outbox_models import OutboxEvent
from knowpay.webhooks.models import WebhookDelivery, WebhookEndpoint
from knowpay.webhooks.signing import verify_signature
from knowpay.worker.runner import Worker
from tests import books
from tests.builders import Builders, Shop
from tests.statements import statements_sent
from tests.webhooks.receiver import receiver


def _worker(
    app: FastAPI, settings: Settings, database: Database, clock: FrozenClock, timeout_s: float = 2
) -> Worker:
    tuned = settings.model_copy(
        update={
            "worker": settings.worker.model_copy(
                update={"webhook_timeout_s": timeout_s, "idle_wait_s": 0.02}
            )
        }
    )
    return Worker(tuned, database, clock, app.state.channel_registry)


def _endpoint(
    client: TestClient, shop: Shop, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "events": events or ["*"]},
        headers=shop.app.headers,
    )
    assert response.status_code == 201
    result: dict[str, Any] = response.json()
    return result


def _dispatch(worker: Worker) -> None:
    """Turn every outbox event into its deliveries (queued, not yet sent)."""
    while worker.dispatcher.run_once():
        pass


def _pump(worker: Worker) -> None:
    """One dispatch round and one delivery round, as the loops would do."""
    _dispatch(worker)
    worker.deliverer.run_once()


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def test_the_app_gets_order_paid_with_a_valid_signature(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    with receiver() as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        order = shop.order()
        shop.confirm(shop.pay(order))
        _pump(worker)
        [got] = hooks.received
    assert got.event["type"] == "order.paid"
    assert got.event["data"]["object"]["id"] == order["id"]
    assert got.headers["knowpay-event-id"] == got.event["id"]
    assert got.headers["content-type"] == "application/json"
    header = got.headers["knowpay-signature"]
    assert verify_signature(got.body, header, endpoint["secret"], now=clock.now().timestamp())
    assert not verify_signature(
        got.body + b" ", header, endpoint["secret"], now=clock.now().timestamp()
    )
    assert not verify_signature(got.body, header, "whsec_wrong", now=clock.now().timestamp())
    assert not verify_signature(
        got.body, header, endpoint["secret"], now=clock.now().timestamp() + 301
    )
    deliveries = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=shop.app.headers
    ).json()
    [delivery] = deliveries["data"]
    assert delivery["status"] == "succeeded"
    assert delivery["attempt_log"][0]["status_code"] == 200


def test_a_receiver_failing_three_times_gets_it_once_after_four_logged_attempts(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    with receiver(lambda n: (500, 0) if n <= 3 else (200, 0)) as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        for _ in range(3):
            worker.deliverer.run_once()  # not due yet: nothing is sent before the backoff passes
            clock.advance(timedelta(hours=7))
            worker.deliverer.run_once()
        assert len(hooks.received) == 4
        assert len({r.event["id"] for r in hooks.received}) == 1
    [delivery] = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=shop.app.headers
    ).json()["data"]
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 500, 500, 200]
    assert delivery["attempts"] == 4


def test_backoff_grows_and_retries_last_at_least_24_hours_then_fail_with_an_alert(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    from knowpay.auth.principals import Role

    worker = _worker(app, settings, database, clock)
    with receiver(lambda _: (503, 0)) as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        started = clock.now()
        waits: list[timedelta] = []
        for _ in range(40):
            [delivery] = client.get(
                f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=shop.app.headers
            ).json()["data"]
            if delivery["status"] != "pending":
                break
            from datetime import datetime

            due = datetime.fromisoformat(delivery["next_attempt_at"].replace("Z", "+00:00"))
            waits.append(due - clock.now())
            clock.set(due)
            worker.deliverer.run_once()
    assert delivery["status"] == "failed"
    assert clock.now() - started >= timedelta(hours=24)
    assert waits[1] > waits[0]
    assert len(hooks.received) == delivery["attempts"]
    admin = shop.build.staff(Role.ADMIN)
    kinds = [
        a["kind"] for a in client.get("/v1/admin/alerts", headers=admin.headers).json()["data"]
    ]
    assert "webhook_failed" in kinds


def test_events_of_one_order_arrive_in_order_even_across_retries(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    with receiver(lambda n: (500, 0) if n == 1 else (200, 0)) as hooks:
        _endpoint(client, shop, hooks.url)
        order = shop.order()
        shop.confirm(shop.pay(order))  # payment.succeeded, order.paid, entitlement.granted
        _pump(worker)
        worker.deliverer.run_once()
        assert len(hooks.received) == 1  # the first failed; the rest wait behind it
        clock.advance(timedelta(hours=1))
        for _ in range(4):
            worker.deliverer.run_once()
        types = [e["type"] for e in hooks.events()]
    assert types == ["payment.succeeded", "payment.succeeded", "order.paid", "entitlement.granted"]


def test_a_receiver_that_never_answers_does_not_stall_the_others(
    app: FastAPI,
    client: TestClient,
    build: Builders,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    # The slow receiver holds its request open until the quick one has all five, and the
    # worker would wait 60 s for it: a deliverer that sent one at a time could not get the
    # five out within the 15 s this test waits, however loaded the machine.
    worker = _worker(app, settings, database, clock, timeout_s=60.0)
    slow_shop, quick_shop = Shop(build), Shop(build)
    slow_holding, release_slow = threading.Event(), threading.Event()

    def hold_until_released(_: int) -> tuple[int, float]:
        slow_holding.set()
        release_slow.wait(timeout=60)
        return 200, 0.0

    with receiver(hold_until_released) as slow, receiver() as quick:
        _endpoint(client, slow_shop, slow.url, ["order.paid"])
        _endpoint(client, quick_shop, quick.url, ["order.paid"])
        slow_shop.confirm(slow_shop.pay(slow_shop.order()))
        for _ in range(5):
            quick_shop.confirm(quick_shop.pay(quick_shop.order()))
        _dispatch(worker)
        stop = threading.Event()
        loop = threading.Thread(target=worker.deliverer.run_forever, args=(stop, 8, 0.02))
        loop.start()
        try:
            assert slow_holding.wait(timeout=15), "the slow receiver was never called"
            quick.wait_for(5, timeout_s=15)
        finally:
            release_slow.set()
            stop.set()
            loop.join(timeout=30)
    assert not loop.is_alive()
    assert len(slow.received) == 1


def test_a_receiver_that_never_answers_is_logged_as_a_timeout(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock, timeout_s=0.5)
    with receiver(lambda _: (200, 30)) as silent:
        _endpoint(client, shop, silent.url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        assert len(silent.received) == 1
    [attempt] = [a for d in _deliveries(client, shop) for a in d["attempt_log"]]
    assert attempt["status_code"] is None
    assert "Timeout" in attempt["error"]


@contextmanager
def answering_200_then(behaviour: str) -> Iterator[tuple[str, threading.Event]]:
    """Answers 200 at once, then `trickles` its 600-byte body 2 bytes at a time for a minute,
    `stalls` after 2 bytes, or `hangs up` after 2 bytes; the event is set once it is done."""
    listener = socket.create_server(("127.0.0.1", 0))
    finished = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\nok")
            try:
                for _ in range(300 if behaviour != "hangs up" else 0):
                    time.sleep(0.2)
                    if behaviour == "trickles":
                        connection.sendall(b"ok")
            except OSError:
                pass  # knowpay hung up: it had what it needed
        finished.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks", finished
    finally:
        listener.close()


@pytest.mark.parametrize("behaviour", ["trickles", "stalls", "hangs up"])
def test_a_receiver_that_answers_200_then_falters_is_delivered_once_in_time(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
    behaviour: str,
) -> None:
    """Found by a webhook audit (and its review): the whole answer was read, each read within
    the timeout, so a slow body held the send past its lease and the event was sent again
    every 25 s, for ever; a body that stalled or broke off after the 200 failed the send."""
    worker = _worker(app, settings, database, clock, timeout_s=1.0)
    with answering_200_then(behaviour) as (url, finished):
        _endpoint(client, shop, url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _dispatch(worker)
        sending = threading.Thread(target=worker.deliverer.run_once)
        sending.start()
        sending.join(timeout=30)
        assert not sending.is_alive()
        if behaviour != "hangs up":
            assert not finished.is_set()  # done while the receiver was still at it
    [delivery] = _deliveries(client, shop)
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 1)
    [attempt] = delivery["attempt_log"]
    assert attempt["status_code"] == 200
    assert attempt["response_excerpt"].startswith("ok")


def test_a_compressed_answer_is_not_inflated_into_the_log(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    bomb = gzip.compress(b"0" * 20_000_000)  # 20 MB in about 20 KB

    def serve(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}"
            connection.sendall(head.encode() + b"\r\n\r\n" + bomb)

    worker = _worker(app, settings, database, clock, timeout_s=2.0)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
        _endpoint(client, shop, f"http://127.0.0.1:{listener.getsockname()[1]}/h", ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
    [delivery] = _deliveries(client, shop)
    assert delivery["status"] == "succeeded"
    assert delivery["attempt_log"][0]["response_excerpt"].startswith("[gzip-encoded answer")


def _deliveries(client: TestClient, shop: Shop) -> list[dict[str, Any]]:
    endpoints = client.get("/v1/webhook-endpoints", headers=shop.app.headers).json()["data"]
    return [
        d
        for e in endpoints
        for d in client.get(
            f"/v1/webhook-endpoints/{e['id']}/deliveries", headers=shop.app.headers
        ).json()["data"]
    ]


def test_manual_redelivery_sends_again(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    with receiver() as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        [delivery] = _deliveries(client, shop)
        response = client.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/redeliver",
            headers=shop.app.headers,
        )
        assert response.json()["status"] == "pending"
        worker.deliverer.run_once()
        assert [r.event["id"] for r in hooks.received] == [delivery["event_id"]] * 2


def test_a_sent_delivery_is_recorded_once_the_database_takes_connections_again(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event reached the receiver; a database that refused a connection for a moment
    (PostgreSQL's "too many clients") must not leave the lease to run out and send it again."""
    worker = _worker(app, settings, database, clock)
    recorded = worker.deliverer._record_once
    refusals = iter([OperationalError("connect", {}, Exception("too many clients already"))])

    def refused_once(job: Any, result: Any) -> None:
        refusal = next(refusals, None)
        if refusal is not None:
            raise refusal
        recorded(job, result)

    monkeypatch.setattr(worker.deliverer, "_record_once", refused_once)
    with receiver() as hooks:
        _endpoint(client, shop, hooks.url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        [delivery] = _deliveries(client, shop)

        assert delivery["status"] == "succeeded"
        assert len(hooks.received) == 1


def test_a_deleted_endpoint_takes_no_redelivery_and_no_new_secret(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    with receiver() as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        [delivery] = _deliveries(client, shop)
        base = f"/v1/webhook-endpoints/{endpoint['id']}"
        client.delete(base, headers=shop.app.headers)

        redelivered = client.post(
            f"{base}/deliveries/{delivery['id']}/redeliver", headers=shop.app.headers
        )
        rotated = client.post(f"{base}/rotate-secret", json={}, headers=shop.app.headers)
        worker.deliverer.run_once()

        for refused in (redelivered, rotated):
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "webhook_endpoint_deleted"
        assert [r.event["id"] for r in hooks.received] == [delivery["event_id"]]
        [kept] = client.get(f"{base}/deliveries", headers=shop.app.headers).json()["data"]
        assert kept["status"] == delivery["status"]


def test_a_delivery_left_queued_for_an_endpoint_deleted_meanwhile_is_cancelled_not_sent(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    """What a redelivery racing a delete could once leave behind: a pending delivery to an
    endpoint that is deleted. The deliverer drops it instead of sending."""
    worker = _worker(app, settings, database, clock)
    with receiver() as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _dispatch(worker)
        with database.session_scope() as session:
            session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint["id"])
                .values(deleted_at=clock.now())
            )

        worker.deliverer.run_once()

        assert hooks.received == []
        base = f"/v1/webhook-endpoints/{endpoint['id']}"
        [dropped] = client.get(f"{base}/deliveries", headers=shop.app.headers).json()["data"]
        assert dropped["status"] == "cancelled"


@pytest.mark.parametrize(
    "url", ["https://" + "0" * 64 + "/hooks", "https://xn--/hooks", "https://\uff48ooks.example/x"]
)
def test_a_url_that_cannot_be_sent_to_is_a_logged_failed_attempt_not_a_crash(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
    url: str,
) -> None:
    """An endpoint stored before such URLs were refused (found by fuzzing the running demo):
    the send raised UnicodeError or httpx.InvalidURL, which are no httpx.HTTPError, so the
    attempt was never recorded and the delivery was sent again every time its lease ran out,
    a traceback each time, with no backoff and no end."""
    worker = _worker(app, settings, database, clock)
    with receiver() as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
    with database.session_scope() as session:
        session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint["id"]).values(url=url)
        )
    shop.confirm(shop.pay(shop.order()))

    _pump(worker)

    [delivery] = _deliveries(client, shop)
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    [attempt] = delivery["attempt_log"]
    assert attempt["status_code"] is None
    assert attempt["error"]
    assert worker.deliverer.run_once() == 0  # backs off like any failed attempt


def test_during_rotation_both_secrets_verify_then_only_the_new(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    with receiver() as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        rotated = _rotate(client, shop, endpoint, 3600)
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        clock.advance(timedelta(hours=2))
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        first, second = hooks.received
    at = clock.now().timestamp()
    first_header, second_header = (
        first.headers["knowpay-signature"],
        second.headers["knowpay-signature"],
    )
    assert verify_signature(first.body, first_header, endpoint["secret"], now=at - 7200)
    assert verify_signature(first.body, first_header, rotated, now=at - 7200)
    assert not verify_signature(second.body, second_header, endpoint["secret"], now=at)
    assert verify_signature(second.body, second_header, rotated, now=at)


def _rotate(client: TestClient, shop: Shop, endpoint: dict[str, Any], grace_s: int) -> str:
    rotated = client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        json={"grace_period_s": grace_s},
        headers=shop.app.headers,
    )
    assert rotated.status_code == 200, rotated.text
    secret: str = rotated.json()["secret"]
    return secret


def test_rotating_twice_within_the_grace_keeps_each_old_secret_signing_until_its_own_expiry(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    with receiver() as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        s0 = endpoint["secret"]
        s1 = _rotate(client, shop, endpoint, 3600)  # s0 signs until +1 h
        clock.advance(timedelta(seconds=1))
        s2 = _rotate(client, shop, endpoint, 7200)  # s1 signs until +2 h, s0 still until +1 h
        sent_at = []
        for later in (timedelta(0), timedelta(hours=1), timedelta(hours=1)):
            clock.advance(later)
            shop.confirm(shop.pay(shop.order()))
            _pump(worker)
            sent_at.append(clock.now().timestamp())
        first, second, third = hooks.received

    def signs(delivery: Any, secret: str, at: float) -> bool:
        return verify_signature(
            delivery.body, delivery.headers["knowpay-signature"], secret, now=at
        )

    assert [signs(first, s, sent_at[0]) for s in (s0, s1, s2)] == [True, True, True]
    assert [signs(second, s, sent_at[1]) for s in (s0, s1, s2)] == [False, True, True]
    assert [signs(third, s, sent_at[2]) for s in (s0, s1, s2)] == [False, False, True]


def test_rotating_with_no_grace_stops_every_old_secret_at_once(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    with receiver() as hooks:
        endpoint = _endpoint(client, shop, hooks.url, ["order.paid"])
        s1 = _rotate(client, shop, endpoint, 3600)
        s2 = _rotate(client, shop, endpoint, 0)  # s1 leaked, say: nothing old signs any more
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        [delivery] = hooks.received
    header, at = delivery.headers["knowpay-signature"], clock.now().timestamp()
    assert header.count("v1=") == 1
    assert verify_signature(delivery.body, header, s2, now=at)
    for old in (endpoint["secret"], s1):
        assert not verify_signature(delivery.body, header, old, now=at)


def test_no_endpoint_no_delivery_and_events_of_other_apps_stay_theirs(
    app: FastAPI,
    client: TestClient,
    build: Builders,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    mine, theirs = Shop(build), Shop(build)
    with receiver() as hooks:
        _endpoint(client, mine, hooks.url)
        theirs.confirm(theirs.pay(theirs.order()))
        _pump(worker)
        assert hooks.received == []
    assert books.violations(database) == []


def test_knowpay_serve_runs_the_worker_loops_in_process(
    client: TestClient, shop: Shop, settings: Settings, database: Database, tmp_path: Any
) -> None:
    import httpx

    from tests.serving import running_server

    # The default on SQLite; on PostgreSQL it takes the setting.
    in_process = None if database.dialect == "sqlite" else True
    with receiver() as hooks:
        _endpoint(client, shop, hooks.url, ["order.paid"])
        order = shop.order()
        payment = shop.pay(order)
        with running_server(
            settings, workers=1, log=tmp_path / "serve.log", in_process_worker=in_process
        ) as base_url:
            httpx.post(
                f"{base_url}/sandbox/test/payments/{payment['id']}/confirm", json={}, timeout=30
            )
            hooks.wait_for(1, timeout_s=20)
    assert hooks.events()[0]["data"]["object"]["id"] == order["id"]


def test_a_dispatch_batch_reads_the_apps_endpoints_once_and_marks_its_events_in_one_update(
    app: FastAPI,
    client: TestClient,
    shop: Shop,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    worker = _worker(app, settings, database, clock)
    everything = _endpoint(client, shop, "https://hooks.example.com/all")
    paid_only = _endpoint(client, shop, "https://hooks.example.com/paid", ["order.paid"])
    for _ in range(4):
        shop.confirm(shop.pay(shop.order()))
    with database.session_scope(read_only=True) as session:
        pending = session.scalars(select(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None)))
        events = {(e.id, e.type) for e in pending}
    with statements_sent(database.engine) as sent:
        while worker.dispatcher.run_once():
            pass
    statements = [" ".join(statement.split()).lower() for statement in sent]
    batches = sum(1 for s in statements if s.startswith("select") and "from outbox_events" in s)
    endpoint_reads = [s for s in statements if "from webhook_endpoints" in s]
    marks = [s for s in statements if s.startswith("update outbox_events")]
    # One read of the app's endpoints and one dispatched mark per batch, not one per event.
    assert len(endpoint_reads) <= batches < len(events)
    assert len(marks) <= batches
    with database.session_scope(read_only=True) as session:
        queued = {(d.endpoint_id, d.event_id) for d in session.scalars(select(WebhookDelivery))}
        left = session.scalars(select(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None)))
        assert list(left) == []
    assert queued == {(everything["id"], event_id) for event_id, _ in events} | {
        (paid_only["id"], event_id) for event_id, kind in events if kind == "order.paid"
    }

"""Rate limits (issue #8): per API key or person, per client IP, on login and on the payment
password; 429 problem+json with Retry-After; gateways never limited; shared through Redis.

Unlike the rest of the suite (tests/conftest.py relaxes the limits), these tests run with
the production defaults of RateLimitSettings unless a test says otherwise."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.accounts.models import User
from knowpay.app import create_app
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import RateLimitSettings, Settings
from knowpay.kit.db import Database
from tests.builders import Builders, Caller

REDIS_URL = "redis://127.0.0.1:6379/15"
LOGIN = "/v1/auth/token"
VERIFY = "/v1/users/me/payment-password/verify"
SET = "/v1/users/me/payment-password"


def _limited(settings: Settings, **overrides: Any) -> Settings:
    """The test settings with production-default rate limits (plus `overrides`), in memory."""
    limits = RateLimitSettings(key_prefix=f"knowpay-test:{uuid.uuid4().hex[:12]}", **overrides)
    return settings.model_copy(update={"rate_limits": limits, "redis_url": None})


def _client(app: FastAPI, ip: str = "198.51.100.1") -> TestClient:
    return TestClient(app, raise_server_exceptions=False, client=(ip, 50000))


@pytest.fixture
def limited_app(settings: Settings, clock: FrozenClock, database: Database) -> FastAPI:
    return create_app(_limited(settings), clock=clock, database=database, run_worker=False)


@pytest.fixture
def limited(limited_app: FastAPI) -> Iterator[TestClient]:
    with _client(limited_app) as client:
        yield client


def _assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    assert body["request_id"] == response.headers["x-request-id"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60
    assert body["retry_after_s"] == int(retry_after)
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-limit"]) >= 1


def _wrong_login(client: TestClient, username: str) -> int:
    return client.post(LOGIN, json={"username": username, "password": "not-it"}).status_code


# Login ----------------------------------------------------------------------------------


def test_the_11th_login_from_one_ip_in_a_minute_is_429_with_retry_after(
    limited: TestClient,
) -> None:
    # Ten different accounts, so the per-account limit (5/minute) is not what stops it.
    assert [_wrong_login(limited, f"user{i}@example.com") for i in range(10)] == [401] * 10
    eleventh = limited.post(LOGIN, json={"username": "new@example.com", "password": "x"})
    _assert_rate_limited(eleventh)
    assert eleventh.headers["ratelimit-limit"] == "10"


def test_login_per_ip_counts_each_ip_on_its_own(limited_app: FastAPI) -> None:
    with (
        _client(limited_app, "198.51.100.1") as first,
        _client(limited_app, "198.51.100.2") as second,
    ):
        for i in range(10):
            _wrong_login(first, f"a{i}@example.com")
        assert _wrong_login(first, "a10@example.com") == 429
        assert _wrong_login(second, "b0@example.com") == 401


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    untrusting = create_app(_limited(settings), clock=clock, database=database, run_worker=False)
    with _client(untrusting, "198.51.100.9") as client:
        statuses = [
            client.post(
                LOGIN,
                json={"username": f"x{i}@example.com", "password": "x"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(11)
        ]
    assert statuses[-1] == 429  # spoofed addresses did not spread the tries

    trusting = create_app(
        _limited(settings).model_copy(update={"trusted_proxies": ["10.0.0.0/8"]}),
        clock=clock,
        database=database,
        run_worker=False,
    )
    with _client(trusting, "10.1.2.3") as proxy:
        statuses = [
            proxy.post(
                LOGIN,
                json={"username": f"y{i}@example.com", "password": "x"},
                headers={"X-Forwarded-For": f"203.0.113.{i % 2}, 10.9.9.9"},
            ).status_code
            for i in range(20)
        ]
    assert 429 not in statuses  # two real clients behind the proxy, ten tries each


def test_login_per_account_holds_across_ips_even_for_the_right_password(
    limited_app: FastAPI, build: Builders
) -> None:
    app = build.app()
    buyer = build.buyer(app, email="target@example.com", password="right-password-1")
    for i in range(5):
        with _client(limited_app, f"192.0.2.{i + 1}") as elsewhere:
            assert _wrong_login(elsewhere, buyer.email) == 401
    with _client(limited_app, "192.0.2.200") as fresh_ip:
        refused = fresh_ip.post(
            LOGIN, json={"username": "TARGET@example.com", "password": buyer.password}
        )
    _assert_rate_limited(refused)
    assert refused.headers["ratelimit-limit"] == "5"


# Payment password -------------------------------------------------------------------------


def _buyer_with_payment_password(build: Builders, client: TestClient) -> Caller:
    buyer = build.buyer(build.app())
    response = client.put(SET, json={"new_password": "482913"}, headers=buyer.headers)
    assert response.status_code == 200, response.text  # setting the first one is no try
    return buyer


def _failures(database: Database, user_id: str) -> tuple[int, object]:
    with database.session_scope(read_only=True) as session:
        user = session.scalars(select(User).where(User.id == user_id)).one()
        return user.payment_password_failures, user.payment_password_locked_until


def test_the_6th_wrong_payment_password_is_429_before_the_lockout_counter_moves(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    # A lockout policy of 10 tries, so the counter is still visible after five wrong ones.
    lenient = _limited(settings).model_copy(update={"payment_password_max_tries": 10})
    app = create_app(lenient, clock=clock, database=database, run_worker=False)
    with _client(app) as client:
        buyer = _buyer_with_payment_password(Builders(client, database, clock), client)
        for remaining in (9, 8, 7, 6, 5):
            wrong = client.post(VERIFY, json={"password": "000001"}, headers=buyer.headers)
            assert wrong.status_code == 403
            assert wrong.json()["remaining_tries"] == remaining
        assert _failures(database, buyer.id) == (5, None)

        sixth = client.post(VERIFY, json={"password": "000001"}, headers=buyer.headers)
        _assert_rate_limited(sixth)
        assert sixth.headers["ratelimit-limit"] == "5"
        assert _failures(database, buyer.id) == (5, None)  # never reached the lockout logic
        # The right password is refused too while the window is full, and changes nothing.
        right = client.post(VERIFY, json={"password": "482913"}, headers=buyer.headers)
        assert right.status_code == 429
        change = client.put(
            SET,
            json={"new_password": "730215", "current_password": "000001"},
            headers=buyer.headers,
        )
        assert change.status_code == 429
        assert _failures(database, buyer.id) == (5, None)


def test_with_the_default_lockout_the_6th_try_is_429_not_another_locked_try(
    limited: TestClient, build: Builders, database: Database, clock: FrozenClock
) -> None:
    buyer = _buyer_with_payment_password(build, limited)
    statuses = [
        limited.post(VERIFY, json={"password": "000001"}, headers=buyer.headers).status_code
        for _ in range(5)
    ]
    assert statuses == [403, 403, 403, 403, 423]
    _failures_before, locked_until = _failures(database, buyer.id)
    clock.advance(timedelta(minutes=5))  # the lock's clock moves; the limit's window is real time
    _assert_rate_limited(limited.post(VERIFY, json={"password": "000001"}, headers=buyer.headers))
    assert _failures(database, buyer.id) == (_failures_before, locked_until)


def test_each_persons_payment_password_is_limited_on_its_own(
    limited: TestClient, build: Builders
) -> None:
    first = _buyer_with_payment_password(build, limited)
    second = _buyer_with_payment_password(build, limited)
    for _ in range(5):
        limited.post(VERIFY, json={"password": "000001"}, headers=first.headers)
    assert (
        limited.post(VERIFY, json={"password": "000001"}, headers=first.headers).status_code == 429
    )
    ok = limited.post(VERIFY, json={"password": "482913"}, headers=second.headers)
    assert ok.status_code == 200, ok.text


# The API -----------------------------------------------------------------------------------


def test_each_api_key_and_each_person_has_its_own_budget(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    app = create_app(
        _limited(settings, api_per_key="5/minute", api_per_person="5/minute"),
        clock=clock,
        database=database,
        run_worker=False,
    )
    with _client(app) as client:
        build = Builders(client, database, clock)
        app_a, app_b = build.app("a"), build.app("b")
        buyer = build.buyer(app_b)  # app B's first call
        answers = [client.get("/v1/orders", headers=app_a.headers) for _ in range(5)]
        assert [r.status_code for r in answers] == [200] * 5
        assert [r.headers["ratelimit-remaining"] for r in answers] == ["4", "3", "2", "1", "0"]
        _assert_rate_limited(client.get("/v1/orders", headers=app_a.headers))
        # App A's burst does not limit app B, nor app B's buyer, nor anonymous callers.
        assert client.get("/v1/orders", headers=app_b.headers).status_code == 200
        assert client.get("/v1/orders", headers=buyer.headers).status_code == 200
        assert client.get("/v1/orders").status_code == 401


def test_an_apps_key_has_a_platforms_budget_and_a_person_a_persons(
    limited_app: FastAPI, database: Database, clock: FrozenClock
) -> None:
    """By default an app's key, which carries all of a platform's server traffic (a course
    launch's orders, payments, polls), may send 1000 requests a second; a person 100."""
    with _client(limited_app) as client:
        build = Builders(client, database, clock)
        app = build.app()
        buyer = build.buyer(app)
        by_app = client.get("/v1/orders", headers=app.headers)
        by_buyer = client.get("/v1/orders", headers=buyer.headers)
    assert (by_app.status_code, by_buyer.status_code) == (200, 200)
    assert by_app.headers["ratelimit-limit"] == "1000"
    assert by_buyer.headers["ratelimit-limit"] == "100"


def test_a_persons_budget_is_set_apart_from_the_apps(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    app = create_app(
        _limited(settings, api_per_person="2/minute"),
        clock=clock,
        database=database,
        run_worker=False,
    )
    with _client(app) as client:
        build = Builders(client, database, clock)
        platform = build.app()
        buyer = build.buyer(platform)
        assert [client.get("/v1/orders", headers=buyer.headers).status_code for _ in range(2)] == [
            200,
            200,
        ]
        _assert_rate_limited(client.get("/v1/orders", headers=buyer.headers))
        answers = [client.get("/v1/orders", headers=platform.headers) for _ in range(5)]
        assert [answer.status_code for answer in answers] == [200] * 5


def test_guessing_api_keys_is_limited_per_ip(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    app = create_app(
        _limited(settings, api_per_ip="3/minute"), clock=clock, database=database, run_worker=False
    )
    with _client(app, "198.51.100.50") as guesser, _client(app, "198.51.100.51") as honest:
        real = Builders(honest, database, clock).app()
        guesses = [
            guesser.get("/v1/orders", headers={"Authorization": f"Bearer kp_live_{i}guess"})
            for i in range(3)
        ]
        assert [r.status_code for r in guesses] == [401, 401, 401]
        refused = guesser.get("/v1/orders", headers={"Authorization": "Bearer kp_live_another"})
        _assert_rate_limited(refused)
        assert honest.get("/v1/orders", headers=real.headers).status_code == 200


def test_gateway_notifications_and_health_are_never_limited(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    app = create_app(
        _limited(settings, api_per_ip="2/minute", api_per_key="2/minute"),
        clock=clock,
        database=database,
        run_worker=False,
    )
    with _client(app) as client:
        for _ in range(15):
            for path in ("/notify/alipay", "/notify/wechatpay", "/notify/test"):
                answer = client.post(path, content=b"trade_status=TRADE_SUCCESS&sign=x")
                assert answer.status_code != 429
                assert "ratelimit-limit" not in answer.headers
            for path in ("/healthz", "/readyz", "/metrics"):
                assert client.get(path).status_code == 200
        assert client.get("/v1/products").status_code == 401
        assert client.get("/v1/products").status_code == 401
        assert client.get("/v1/products").status_code == 429  # the API itself is limited


def test_limits_can_be_switched_off(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    app = create_app(
        _limited(settings, enabled=False, login_per_ip="1/minute"),
        clock=clock,
        database=database,
        run_worker=False,
    )
    with _client(app) as client:
        assert [_wrong_login(client, "z@example.com") for _ in range(5)] == [401] * 5
        assert "ratelimit-limit" not in client.get("/v1/products").headers


# Redis --------------------------------------------------------------------------------------


def _redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return client


def test_redis_backed_limits_are_shared_by_two_app_instances(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    store = _redis_or_skip()
    shared = _limited(settings, login_per_ip="4/minute").model_copy(update={"redis_url": REDIS_URL})
    prefix = shared.rate_limits.key_prefix
    try:
        one = create_app(shared, clock=clock, database=database, run_worker=False)
        two = create_app(shared, clock=clock, database=database, run_worker=False)
        with _client(one) as first, _client(two) as second:
            assert _wrong_login(first, "r1@example.com") == 401
            assert _wrong_login(second, "r2@example.com") == 401
            assert _wrong_login(first, "r3@example.com") == 401
            assert _wrong_login(second, "r4@example.com") == 401
            _assert_rate_limited(
                first.post(LOGIN, json={"username": "r5@example.com", "password": "x"})
            )
            _assert_rate_limited(
                second.post(LOGIN, json={"username": "r6@example.com", "password": "x"})
            )
        keys = [key.decode() for key in store.scan_iter(match=f"{prefix}*")]
        assert keys, "the counters live in Redis"
        assert not any("@" in key for key in keys)  # emails are kept as keyed hashes
    finally:
        for key in store.scan_iter(match=f"{prefix}*"):
            store.delete(key)
        store.close()


def test_when_redis_is_down_requests_go_through_and_it_is_logged(
    settings: Settings, clock: FrozenClock, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    down = _limited(settings, login_per_ip="1/minute", storage_timeout_s=0.2).model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0"}
    )
    app = create_app(down, clock=clock, database=database, run_worker=False)
    with caplog.at_level(logging.WARNING, logger="knowpay.ratelimit"), _client(app) as client:
        assert [_wrong_login(client, "d@example.com") for _ in range(3)] == [401] * 3
    assert "rate limits not enforced" in caplog.text

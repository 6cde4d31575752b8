"""Every error is problem+json with a stable code and the request id; bad input writes nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.requests import ClientDisconnect

from knowpay.accounts.models import User
from knowpay.catalog.models import Product
from knowpay.kit.db import Database
from tests.builders import Builders, Caller, Shop


def _assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["detail"]
    assert body["type"].endswith(code)
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def _count(database: Database, model: type[Any]) -> int:
    with database.session_scope(read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def app_caller(build: Builders) -> Caller:
    return build.app()


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    assert client.get("/healthz").headers["x-request-id"].startswith("req_")


def test_a_sane_incoming_request_id_is_kept(client: TestClient) -> None:
    response = client.get("/no/such/route", headers={"X-Request-Id": "trace-1234567890"})
    assert _assert_problem(response, 404, "not_found")["request_id"] == "trace-1234567890"


def test_an_unsafe_incoming_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert response.headers["x-request-id"].startswith("req_")


def test_unknown_routes_and_methods_are_problem_json(client: TestClient) -> None:
    _assert_problem(client.get("/v1/nothing-here"), 404, "not_found")
    _assert_problem(client.delete("/healthz"), 405, "method_not_allowed")


def test_malformed_json_is_400_and_writes_nothing(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    response = client.post(
        "/v1/users",
        content=b'{"email": "a@b.c", "password":',
        headers={**app_caller.headers, "Content-Type": "application/json"},
    )
    _assert_problem(response, 400, "malformed_json")
    assert _count(database, User) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"email": "a@b.c", "password": ' + b"9" * 5000 + b"}",  # past int's 4300 digits
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion
        b'{"email": "\xff\xfe@b.c", "password": "long-enough"}',  # not UTF-8
    ],
    ids=["5000-digit-number", "too-deep", "not-utf8"],
)
def test_json_the_parser_cannot_read_is_malformed_json(
    client: TestClient, app_caller: Caller, database: Database, body: bytes
) -> None:
    response = client.post(
        "/v1/users",
        content=body,
        headers={**app_caller.headers, "Content-Type": "application/json"},
    )
    _assert_problem(response, 400, "malformed_json")
    assert _count(database, User) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com", "password": 12345678}, "password"),
        ({"email": "a@example.com", "password": "long-enough", "admin": True}, "admin"),
        ({"email": "not-an-email", "password": "long-enough"}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com"}, "password"),
        ([1, 2, 3], ""),
        ("just a string", ""),
    ],
)
def test_wrong_types_and_unknown_fields_list_the_fields_and_write_nothing(
    client: TestClient, app_caller: Caller, database: Database, body: Any, field: str
) -> None:
    response = client.post("/v1/users", json=body, headers=app_caller.headers)
    problem = _assert_problem(response, 422, "validation_error")
    assert problem["errors"]
    if field:
        assert field in {error["field"] for error in problem["errors"]}
    assert _count(database, User) == 0


def test_a_float_or_string_amount_is_refused(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    for amount in (99.5, "9900", True, 0, -1, 10**16):
        response = client.post(
            "/v1/products",
            json={
                "title": "x",
                "kind": "course",
                "prices": [{"amount": amount, "currency": "CNY"}],
            },
            headers=app_caller.headers,
        )
        problem = _assert_problem(response, 422, "validation_error")
        assert any(e["field"].startswith("prices.0.amount") for e in problem["errors"])
    assert _count(database, Product) == 0


def test_an_oversized_body_is_413_and_writes_nothing(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    huge = {"email": "a@example.com", "password": "x" * (2 * 1024 * 1024)}
    _assert_problem(
        client.post("/v1/users", json=huge, headers=app_caller.headers), 413, "payload_too_large"
    )
    assert _count(database, User) == 0


def test_an_oversized_chunked_body_is_413(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65536

    response = client.post(
        "/v1/users",
        content=chunks(),
        headers={**app_caller.headers, "Content-Type": "application/json"},
    )
    _assert_problem(response, 413, "payload_too_large")
    assert _count(database, User) == 0


def test_bad_query_parameters_are_422(client: TestClient, app_caller: Caller) -> None:
    problem = _assert_problem(
        client.get("/v1/products?limit=1000", headers=app_caller.headers), 422, "validation_error"
    )
    assert problem["errors"][0]["field"] == "limit"
    assert problem["errors"][0]["in"] == "query"


def test_an_unexpected_error_is_a_500_problem_without_internals(
    client: TestClient, app: Any
) -> None:
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    body = _assert_problem(response, 500, "internal_error")
    assert "secret" not in response.text
    assert body["request_id"]
    # Answered inside the middleware stack (found by a web audit: Starlette's outermost
    # handler answered without them, then the server dropped the connection).
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in response.headers
    assert client.get("/healthz").status_code == 200


def test_a_client_that_hangs_up_mid_body_is_no_server_error(
    client: TestClient, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen in a benchmark's duplicate storm: the sender's socket failed while knowpay read
    the body, and it was logged as an unhandled error with a traceback."""

    @app.post("/hangs-up")
    def hangs_up() -> None:
        raise ClientDisconnect()

    with caplog.at_level(logging.INFO, logger="knowpay.errors"):
        response = client.post("/hangs-up")
    _assert_problem(response, 400, "client_disconnected")
    assert [r.levelname for r in caplog.records if r.name == "knowpay.errors"] == ["INFO"]


def _violate(database: Database, statement: str) -> None:
    """Break a constraint for real on this test's database (SQLite or PostgreSQL)."""
    from sqlalchemy import text

    with database.engine.connect() as connection:
        connection.execute(text("CREATE TEMP TABLE probe (k VARCHAR(8) UNIQUE NOT NULL)"))
        connection.execute(text("INSERT INTO probe VALUES ('taken')"))
        connection.execute(text(statement))


def test_a_duplicate_key_written_by_a_concurrent_request_is_a_retryable_409(
    client: TestClient, app: Any, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The code checks before it writes; a duplicate key that still reaches the database came
    from a concurrent transaction, and retrying sees it. Not a 500."""

    @app.post("/collides")
    def collides() -> None:
        _violate(database, "INSERT INTO probe VALUES ('taken')")

    with caplog.at_level(logging.WARNING, logger="knowpay.errors"):
        response = client.post("/collides")
    _assert_problem(response, 409, "concurrent_update")
    assert response.headers["retry-after"] == "1"
    # An error in the log: should no concurrency explain it, it is a bug that repeats.
    assert [r.levelname for r in caplog.records if r.name == "knowpay.errors"] == ["ERROR"]


def test_on_a_page_the_collision_is_the_html_error_page(
    client: TestClient, app: Any, database: Database
) -> None:
    from fastapi import Depends

    from knowpay.web.session import mark_page

    @app.get("/collides-on-a-page", dependencies=[Depends(mark_page)])
    def collides_on_a_page() -> None:
        _violate(database, "INSERT INTO probe VALUES ('taken')")

    response = client.get("/collides-on-a-page")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("text/html")


def test_a_constraint_no_concurrency_explains_is_still_an_internal_error(
    client: TestClient, app: Any, database: Database
) -> None:
    @app.post("/null-key")
    def null_key() -> None:
        _violate(database, "INSERT INTO probe VALUES (NULL)")

    _assert_problem(client.post("/null-key"), 500, "internal_error")


def test_an_overloaded_or_unreachable_database_is_a_retryable_503(
    client: TestClient, app: Any
) -> None:
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    @app.get("/too-many-clients")
    def too_many() -> None:
        raise OperationalError("connect", {}, Exception("FATAL: sorry, too many clients already"))

    @app.get("/pool-exhausted")
    def exhausted() -> None:
        raise PoolTimeout("QueuePool limit of size 10 overflow 20 reached")

    for path in ("/too-many-clients", "/pool-exhausted"):
        response = client.get(path)
        body = _assert_problem(response, 503, "database_unavailable")
        assert response.headers["retry-after"] == "1"
        assert "too many" not in body["detail"]


def test_a_schema_behind_the_code_is_a_503_that_says_migrate(client: TestClient, app: Any) -> None:
    """Found by an operations audit: a server started on an unmigrated PostgreSQL answered
    500 internal_error (its /readyz said 503 schema_outdated)."""
    from psycopg import errors as pg_errors
    from sqlalchemy.exc import ProgrammingError

    @app.get("/no-table")
    def no_table() -> None:
        missing = pg_errors.UndefinedTable('relation "api_keys" does not exist')
        raise ProgrammingError("SELECT … FROM api_keys", {}, missing)

    @app.get("/bad-sql")
    def bad_sql() -> None:
        raise ProgrammingError("SELEC 1", {}, pg_errors.SyntaxError("syntax error"))

    response = client.get("/no-table")
    body = _assert_problem(response, 503, "schema_outdated")
    assert "knowpay migrate" in body["detail"]
    assert response.headers["retry-after"] == "30"
    _assert_problem(client.get("/bad-sql"), 500, "internal_error")


def test_a_405_names_every_method_the_path_serves(client: TestClient) -> None:
    """FastAPI makes one route per method; the Allow header must still list them all."""
    for path, allowed in (
        ("/v1/products", "GET, HEAD, POST"),
        ("/v1/orders/ord_1", "GET, HEAD"),
        ("/notify/alipay", "POST"),
    ):
        response = client.request("PUT", path)
        _assert_problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allowed


def test_head_is_answered_as_get_is(client: TestClient, app_caller: Caller) -> None:
    assert client.head("/healthz").status_code == 200
    assert client.head("/v1/products", headers=app_caller.headers).status_code == 200
    assert client.head("/v1/orders/ord_missing", headers=app_caller.headers).status_code == 404
    refused = client.head("/notify/alipay")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"


def test_head_never_runs_a_get_that_acts(client: TestClient) -> None:
    """A payer's return asks the gateway (PayPal: captures); a link checker's HEAD must not."""
    response = client.head("/return/pay_anything")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_every_401_names_the_scheme_it_wants(client: TestClient) -> None:
    """RFC 9110 §15.5.2: a 401 carries WWW-Authenticate, whatever was wrong."""
    for authorization in (None, "Bearer kp_live_notakey", "Bearer not.a.token", "Basic eDp5"):
        headers = {"Authorization": authorization} if authorization else {}
        response = client.get("/v1/orders", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_trailing_slash_is_a_404_not_a_redirect_built_from_the_host(
    client: TestClient, app_caller: Caller
) -> None:
    response = client.get(
        "/v1/orders/",
        headers={**app_caller.headers, "Host": "evil.example"},
        follow_redirects=False,
    )
    _assert_problem(response, 404, "not_found")
    assert "location" not in response.headers


def test_a_client_ip_that_is_no_ip_address_is_422_and_opens_no_payment(build: Builders) -> None:
    shop = Shop(build)
    order = shop.order()
    path = f"/v1/orders/{order['id']}/payments"
    for bad in ("<script>alert(1)</script>", "abc", "", "' OR 1=1 --"):
        response = shop.client.post(
            path, json={"channel": "test", "client_ip": bad}, headers=shop.app.headers
        )
        body = _assert_problem(response, 422, "validation_error")
        assert [error["field"] for error in body["errors"]] == ["client_ip"]
    assert shop.get(f"{path}")["data"] == []
    assert shop.pay(order, client_ip=" 2001:DB8::1 ")["status"] == "pending"
    assert shop.pay(order, client_ip="203.0.113.7, 10.0.0.1")["status"] == "pending"


def test_a_cursor_is_an_ids_characters_and_otherwise_422(
    client: TestClient, app_caller: Caller
) -> None:
    for cursor in ("", "%00", "a b", "ord_1;drop"):
        response = client.get(f"/v1/orders?starting_after={cursor}", headers=app_caller.headers)
        body = _assert_problem(response, 422, "validation_error")
        assert [error["field"] for error in body["errors"]] == ["starting_after"]


def test_a_cursor_is_a_position_so_a_deleted_or_foreign_object_still_pages_on(
    client: TestClient, build: Builders
) -> None:
    """Keyset paging: the objects created before the id. Checking that it exists would break
    paging when the object is deleted, and tell one app whether another's id exists."""
    shop = Shop(build)
    first, second = shop.order(), shop.order()
    stranger = Shop(build)
    foreign = stranger.order()  # created after both
    page = shop.client.get(
        f"/v1/orders?starting_after={foreign['id']}", headers=shop.app.headers
    ).json()
    assert [o["id"] for o in page["data"]] == [second["id"], first["id"]]
    unknown = shop.client.get(
        "/v1/orders?starting_after=ord_zzzzzzzzzzzzzzzzzzzzzzzzzz", headers=shop.app.headers
    )
    assert unknown.status_code == 200


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"]
)
def test_a_json_body_sent_as_another_media_type_is_415_and_writes_nothing(
    client: TestClient, app_caller: Caller, database: Database, content_type: str
) -> None:
    body = b'{"title": "x", "kind": "course", "prices": [{"amount": 100, "currency": "CNY"}]}'
    response = client.post(
        "/v1/products",
        content=body,
        headers={**app_caller.headers, "Content-Type": content_type},
    )
    _assert_problem(response, 415, "unsupported_media_type")
    assert _count(database, Product) == 0
    as_json = {**app_caller.headers, "Content-Type": "application/json; charset=utf-8"}
    assert client.post("/v1/products", content=body, headers=as_json).status_code == 201


def test_a_nul_in_any_text_is_422_on_every_database_and_writes_nothing(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    """PostgreSQL cannot store a NUL; SQLite could, and answered otherwise (201, 404)."""
    product = {"title": "a\u0000b", "kind": "course", "prices": [{"amount": 1, "currency": "CNY"}]}
    created = client.post("/v1/products", json=product, headers=app_caller.headers)
    _assert_problem(created, 422, "unstorable_value")
    assert _count(database, Product) == 0
    looked_up = client.get("/v1/orders/ord_%00", headers=app_caller.headers)
    _assert_problem(looked_up, 422, "unstorable_value")


def test_on_a_page_an_unexpected_error_is_the_html_error_page(
    client: TestClient, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A person sees the error page (with the request id to quote), not the API's JSON; the
    answer still carries the security headers, and the error is logged with its traceback."""
    from fastapi import Depends

    from knowpay.web.session import mark_page

    @app.get("/breaks-on-a-page", dependencies=[Depends(mark_page)])
    def breaks_on_a_page() -> None:
        raise RuntimeError("secret internals")

    with caplog.at_level(logging.ERROR, logger="knowpay.errors"):
        response = client.get("/breaks-on-a-page", headers={"Accept-Language": "en"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "secret internals" not in response.text
    assert "Something went wrong" in response.text
    assert response.headers["x-request-id"] in response.text
    assert "content-security-policy" in response.headers
    assert any(record.exc_info for record in caplog.records if record.name == "knowpay.errors")


def test_on_a_page_an_unreachable_database_is_the_html_error_page_with_retry_after(
    client: TestClient, app: Any
) -> None:
    from fastapi import Depends
    from sqlalchemy.exc import OperationalError

    from knowpay.web.session import mark_page

    @app.get("/database-down-on-a-page", dependencies=[Depends(mark_page)])
    def database_down() -> None:
        raise OperationalError("connect", {}, Exception("connection refused"))

    response = client.get("/database-down-on-a-page")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["retry-after"] == "1"
    assert "connection refused" not in response.text


def test_off_a_page_an_unexpected_error_stays_the_500_problem(client: TestClient, app: Any) -> None:
    @app.get("/breaks-in-the-api")
    def breaks_in_the_api() -> None:
        raise RuntimeError("secret internals")

    _assert_problem(client.get("/breaks-in-the-api"), 500, "internal_error")

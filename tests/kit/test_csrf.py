"""CSRF protection of cookie-authenticated forms (issue #8), on a tiny form router mounted
only here (knowpay's own pages come with a later issue)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Form, Request, Response, UploadFile
from fastapi.testclient import TestClient

from knowpay.kit.csrf import CSRF_COOKIE, SESSION_COOKIE, CsrfTokens, issue_csrf_token

router = APIRouter()


@router.get("/test-pages/form")
def render_form(request: Request, response: Response) -> dict[str, str]:
    return {"csrf_token": issue_csrf_token(request, response)}


@router.post("/test-pages/form")
def submit_form(note: Annotated[str, Form()]) -> dict[str, str]:
    return {"note": note}


@router.post("/test-pages/upload")
async def upload(note: Annotated[str, Form()], file: UploadFile) -> dict[str, str]:
    return {"note": note, "file": (await file.read()).decode()}


@router.post("/test-pages/json")
def submit_json(body: dict[str, str]) -> dict[str, str]:
    return body


@router.post("/v1/_test-api")
def api_call(body: dict[str, str]) -> dict[str, str]:
    return body


@pytest.fixture
def pages(app: FastAPI) -> Iterator[TestClient]:
    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _start_session(client: TestClient, session: str = "session-one") -> str:
    """Log in (as the later web pages will): the session cookie, then a page with a form."""
    client.cookies.set(SESSION_COOKIE, session)
    page = client.get("/test-pages/form")
    assert page.status_code == 200
    token: str = page.json()["csrf_token"]
    assert client.cookies.get(CSRF_COOKIE) == token
    assert "httponly" in page.headers["set-cookie"].lower()
    assert "samesite=strict" in page.headers["set-cookie"].lower()
    return token


def _assert_csrf_failed(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "csrf_failed"


def test_a_form_with_the_token_goes_through_with_its_body_intact(pages: TestClient) -> None:
    token = _start_session(pages)
    posted = pages.post("/test-pages/form", data={"note": "你好 & more", "csrf_token": token})
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"note": "你好 & more"}


def test_a_multipart_form_with_the_token_goes_through(pages: TestClient) -> None:
    token = _start_session(pages)
    posted = pages.post(
        "/test-pages/upload",
        data={"note": "n", "csrf_token": token},
        files={"file": ("a.txt", b"file body", "text/plain")},
    )
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"note": "n", "file": "file body"}


def test_a_script_may_send_the_token_in_a_header(pages: TestClient) -> None:
    token = _start_session(pages)
    sent = pages.post("/test-pages/json", json={"a": "b"}, headers={"X-CSRF-Token": token})
    assert sent.status_code == 200
    _assert_csrf_failed(pages.post("/test-pages/json", json={"a": "b"}))


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_an_unsafe_request_without_the_token_is_refused(pages: TestClient, method: str) -> None:
    _start_session(pages)
    _assert_csrf_failed(pages.request(method, "/test-pages/form", data={"note": "x"}))


def test_the_token_must_match_the_cookie(pages: TestClient) -> None:
    token = _start_session(pages)
    pages.cookies.delete(CSRF_COOKIE)
    _assert_csrf_failed(pages.post("/test-pages/form", data={"note": "x", "csrf_token": token}))


def test_a_token_of_another_session_or_a_forged_one_is_refused(pages: TestClient) -> None:
    attackers_token = _start_session(pages, "attacker-session")
    victims_token = _start_session(pages, "victim-session")

    def post_as_victim(token: str) -> httpx.Response:
        pages.cookies.clear()
        pages.cookies.set(SESSION_COOKIE, "victim-session")
        pages.cookies.set(CSRF_COOKIE, token)
        return pages.post("/test-pages/form", data={"note": "x", "csrf_token": token})

    assert post_as_victim(victims_token).status_code == 200
    # The attacker plants their own (valid) token in the victim's cookie and in the form.
    _assert_csrf_failed(post_as_victim(attackers_token))
    nonce = victims_token.split(".")[0]
    _assert_csrf_failed(post_as_victim(nonce + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))


def test_api_calls_without_cookies_or_with_a_bearer_and_notifications_are_exempt(
    pages: TestClient,
) -> None:
    # The API authenticates by its header only: nothing ambient to abuse.
    assert pages.post("/v1/_test-api", json={"a": "b"}).status_code == 200
    _start_session(pages)
    with_bearer = pages.post(
        "/v1/_test-api", json={"a": "b"}, headers={"Authorization": "Bearer kp_x"}
    )
    assert with_bearer.status_code == 200
    notification = pages.post("/notify/alipay", content=b"trade_status=TRADE_SUCCESS")
    assert notification.status_code != 403
    back_from_the_gateway = pages.post("/return/pay_unknown", data={"respCode": "00"})
    assert back_from_the_gateway.status_code != 403
    assert pages.get("/test-pages/form").status_code == 200  # safe methods are never checked


def test_a_page_form_posted_without_a_session_is_refused(pages: TestClient) -> None:
    """Login CSRF, found by a web audit: a cross-site POST carries no SameSite=Lax cookie, and
    cookie-less posts went through, so any site could log a visitor in to its own account."""
    _assert_csrf_failed(pages.post("/test-pages/form", data={"note": "x"}))
    _assert_csrf_failed(pages.post("/test-pages/form", data={"note": "x", "csrf_token": "a.b"}))


def test_an_authorization_header_does_not_exempt_a_page_form(pages: TestClient) -> None:
    """Found by a web audit: any Authorization header (a browser adds Basic credentials by
    itself behind such a proxy) skipped the check, while the page still read the cookie."""
    _start_session(pages)
    for header in ("Basic Zm9vOmJhcg==", "Bearer kp_x"):
        refused = pages.post(
            "/test-pages/form", data={"note": "x"}, headers={"Authorization": header}
        )
        _assert_csrf_failed(refused)


def test_tokens_are_bound_to_the_key_and_the_session() -> None:
    tokens = CsrfTokens("master-key-one-0123456789-abcdefghijklmnop")
    token = tokens.issue("s1")
    assert tokens.valid(token, "s1")
    assert not tokens.valid(token, "s2")
    assert not CsrfTokens("master-key-two-0123456789-abcdefghijklmnop").valid(token, "s1")
    assert not tokens.valid("garbage", "s1")
    assert not tokens.valid("", "s1")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--x--"),
        ("multipart/form-data; boundary=x", b"not multipart at all"),
        (
            "multipart/form-data; boundary=x",
            b"".join(
                b'--x\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n1\r\n' % i
                for i in range(1001)
            )
            + b"--x--\r\n",
        ),
    ],
    ids=["no-boundary", "garbage", "too-many-fields"],
)
def test_a_malformed_multipart_form_is_refused_not_a_500(
    pages: TestClient, content_type: str, body: bytes
) -> None:
    """Found by a web fuzz: the middleware read the token out of a multipart body that did
    not parse; Starlette's 400 for it escaped the middleware and answered 500."""
    _start_session(pages)
    refused = pages.post("/test-pages/form", content=body, headers={"Content-Type": content_type})
    _assert_csrf_failed(refused)

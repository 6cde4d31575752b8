"""GET /forms/unionpay: the page that hands the payer's browser to UnionPay.

UnionPay's front consume is a form POST from the browser to frontTransReq.do. The adapter
signs the fields and names this page with them in `f` (base64url JSON); the page posts
them, unchanged, to the configured front URL. Nothing is stored: UnionPay checks the
signature, so a field changed on the way is refused there. The target is never taken from
the request, only from settings, so the page cannot be made to post anywhere else."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from knowpay.channels.unionpay.transformers import decode_form
from knowpay.kit.errors import InvalidRequest
from knowpay.kit.openapi import problem_responses
from knowpay.kit.web import AppSettings, SessionRoute

router = APIRouter(route_class=SessionRoute, tags=["payer pages"])


class BadForm(InvalidRequest):
    code, title = "invalid_form", "The payment form cannot be read"


@router.get("/forms/unionpay", response_class=HTMLResponse, responses=problem_responses(400))
def unionpay_form(
    settings: AppSettings, f: Annotated[str, Query(min_length=1, max_length=40_000)]
) -> HTMLResponse:
    """An auto-submitting form of the signed front-consume fields (a button without script)."""
    try:
        fields = decode_form(f)
    except ValueError as exc:
        raise BadForm(str(exc)) from exc
    inputs = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    action = escape(settings.unionpay.front_url)
    page = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer"><title>银联支付</title></head>'
        '<body onload="document.forms[0].submit()">'
        f'<form id="unionpay" method="post" action="{action}" accept-charset="UTF-8">{inputs}'
        "<noscript><p>正在前往银联支付 / Continue to UnionPay:</p>"
        '<button type="submit">继续 / Continue</button></noscript></form>'
        "</body></html>"
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})

"""gateway.do's common checks and answers, as Alipay gives them.

Every answer is `{"<method>_response":{…},"sign":"…"}` with the sign over the exact member
text; like Alipay's, the JSON escapes `/` as `\\/`, so a client that re-serialises before
verifying fails. Answers the gateway cannot attribute to a known app (missing method, unknown
app_id) are unsigned, as Alipay's are."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from knowpay.sandbox.alipay import crypto
from knowpay.sandbox.alipay.book import BEIJING

SUCCESS = {"code": "10000", "msg": "Success"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_AMOUNT = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
MAX_AMOUNT = Decimal("100000000.00")


@dataclass(frozen=True)
class Merchant:
    """The one app this simulated gateway knows, and the keys on both sides."""

    app_id: str
    seller_id: str
    merchant_public_key: rsa.RSAPublicKey
    gateway_private_key: rsa.RSAPrivateKey


class GatewayError(Exception):
    """An answer other than 10000."""

    def __init__(
        self,
        code: str,
        msg: str,
        sub_code: str,
        sub_msg: str,
        *,
        signed: bool = True,
        top_level: bool = False,
    ) -> None:
        super().__init__(f"{code} {sub_code}: {sub_msg}")
        self.content = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}
        self.signed = signed
        self.top_level = top_level


def business_error(sub_code: str, sub_msg: str) -> GatewayError:
    return GatewayError("40004", "Business Failed", sub_code, sub_msg)


def invalid(sub_code: str, sub_msg: str, *, signed: bool = True) -> GatewayError:
    return GatewayError("40002", "Invalid Arguments", sub_code, sub_msg, signed=signed)


def missing(sub_code: str, sub_msg: str) -> GatewayError:
    return GatewayError("40001", "Missing Required Arguments", sub_code, sub_msg, signed=False)


def check_request(params: Mapping[str, str], merchant: Merchant) -> tuple[str, dict[str, Any]]:
    """The method and biz_content of a request that passes Alipay's gateway checks."""
    method = params.get("method")
    if not method:
        raise GatewayError(
            "40001", "Missing Required Arguments", "isv.missing-method", "缺少方法名参数",
            signed=False, top_level=True,
        )  # fmt: skip
    if not params.get("app_id"):
        raise missing("isv.missing-app-id", "缺少AppID参数")
    if params["app_id"] != merchant.app_id:
        raise invalid("isv.invalid-app-id", "无效的AppID参数", signed=False)
    if not params.get("sign"):
        raise missing("isv.missing-signature", "缺少签名参数")
    sign_type = params.get("sign_type")
    if not sign_type:
        raise missing("isv.missing-signature-type", "缺少签名类型参数")
    if sign_type != "RSA2":
        raise invalid("isv.invalid-signature-type", "无效的签名类型参数")
    if params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise invalid("isv.invalid-charset", "字符集错误")
    try:
        datetime.strptime(params.get("timestamp", ""), TIME_FORMAT)
    except ValueError:
        raise invalid("isv.invalid-timestamp", "非法的时间戳参数") from None
    content = crypto.request_content(params)
    if not crypto.verify(content, params["sign"], merchant.merchant_public_key):
        shown = content.replace("&", "&amp;")
        raise invalid(
            "isv.invalid-signature",
            "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，"
            f"网关生成的验签字符串为：{shown}",
        )
    try:
        biz = json.loads(params.get("biz_content") or "{}")
    except json.JSONDecodeError:
        raise invalid("isv.invalid-biz-content", "biz_content 不是合法的 JSON") from None
    if not isinstance(biz, dict):
        raise invalid("isv.invalid-biz-content", "biz_content 不是 JSON 对象")
    return method, biz


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def _member_text(content: Mapping[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")


def answer(
    method: str | None, content: Mapping[str, Any], merchant: Merchant, *, signed: bool
) -> str:
    """The response body, with `sign` over the member's exact text when signed."""
    key = response_key(method) if method else "error_response"
    text = _member_text(content)
    if not signed:
        return f'{{"{key}":{text}}}'
    signature = crypto.sign(text, merchant.gateway_private_key)
    return f'{{"{key}":{text},"sign":"{signature}"}}'


def error_answer(method: str | None, error: GatewayError, merchant: Merchant) -> str:
    key_method = None if error.top_level else method
    return answer(key_method, error.content, merchant, signed=error.signed)


def amount(biz: Mapping[str, Any], field: str) -> Decimal:
    """A yuan amount field: 0.01 … 100000000, at most two decimals."""
    text = biz.get(field)
    if not isinstance(text, str | int | float) or not _AMOUNT.match(str(text)):
        raise invalid("isv.invalid-parameter", f"参数 {field} 不合法")
    try:
        value = Decimal(str(text)).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise invalid("isv.invalid-parameter", f"参数 {field} 不合法") from None
    if not Decimal("0.01") <= value <= MAX_AMOUNT:
        raise business_error("ACQ.TOTAL_FEE_EXCEED", "订单金额超过限额")
    return value


def required(biz: Mapping[str, Any], field: str) -> str:
    value = biz.get(field)
    if not isinstance(value, str) or not value:
        raise missing("isv.missing-parameter", f"缺少必选参数 {field}")
    return value


def expiry(biz: Mapping[str, Any]) -> datetime | None:
    text = biz.get("time_expire")
    if not text:
        return None
    try:
        return datetime.strptime(str(text), TIME_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        raise invalid("isv.invalid-parameter", "参数 time_expire 不合法") from None


def yuan(value: Decimal) -> str:
    return f"{value:.2f}"


def beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)

"""`knowpay demo`: the gateway simulators mounted under /sandbox/, and knowpay's gateway
settings pointed at them with the keys the simulators made."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from knowpay.kit.config import (
    AlipaySettings,
    PayPalSettings,
    Settings,
    StripeSettings,
    UnionPaySettings,
    WechatPaySettings,
)
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app

SANDBOX_PREFIX = "/sandbox"

# Settings section → how to build it from what the simulator's /_keys said.
GatewayWiring = Callable[[dict[str, Any], str], BaseModel]


def _alipay(keys: dict[str, Any], sandbox_url: str) -> BaseModel:
    return AlipaySettings(
        app_id=keys["app_id"],
        seller_id=keys["seller_id"],
        gateway_url=keys["gateway_url"],
        private_key=keys["merchant_private_key"],
        alipay_public_key=keys["alipay_public_key"],
    )


def _wechatpay(keys: dict[str, Any], sandbox_url: str) -> BaseModel:
    return WechatPaySettings(
        mchid=keys["mchid"],
        appid=keys["appid"],
        apiv3_key=keys["apiv3_key"],
        merchant_private_key=keys["merchant_private_key"],
        merchant_serial_no=keys["merchant_serial_no"],
        platform_public_key=keys["platform_public_key"],
        platform_serial_no=keys["platform_serial_no"],
        base_url=sandbox_url + "/wechatpay",
    )


def _unionpay(keys: dict[str, Any], sandbox_url: str) -> BaseModel:
    return UnionPaySettings(
        mer_id=keys["mer_id"],
        sign_private_key=keys["merchant_private_key"],
        sign_cert=keys["merchant_cert"],
        root_cert=keys["root_cert"],
        middle_cert=keys["middle_cert"],
        expected_cert_cn=keys["expected_cert_cn"],
        front_url=keys["front_url"],
        back_url=keys["back_url"],
        query_url=keys["query_url"],
        file_url=keys["file_url"],
    )


def _stripe(keys: dict[str, Any], sandbox_url: str) -> BaseModel:
    return StripeSettings(
        secret_key=keys["secret_key"],
        publishable_key=keys["publishable_key"],
        webhook_secret=keys["webhook_secret"],
        base_url=keys["base_url"],
        payer_page_url=keys["payer_page_url"],
    )


def _paypal(keys: dict[str, Any], sandbox_url: str) -> BaseModel:
    return PayPalSettings(
        client_id=keys["client_id"],
        client_secret=keys["client_secret"],
        webhook_id=keys["webhook_id"],
        base_url=keys["base_url"],
        cert_hosts=keys["cert_hosts"],
    )


# One line per simulated gateway: settings section → its wiring.
_WIRINGS: dict[str, GatewayWiring] = {
    "alipay": _alipay,
    "wechatpay": _wechatpay,
    "unionpay": _unionpay,
    "stripe": _stripe,
    "paypal": _paypal,
}


async def _simulator_keys(sandbox: FastAPI) -> dict[str, dict[str, Any]]:
    """Each simulator's keys, asked in-process (no server runs yet)."""
    transport = httpx.ASGITransport(app=sandbox)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as local:
        return {section: (await local.get(f"/{section}/_keys")).json() for section in _WIRINGS}


def wire_sandbox(settings: Settings) -> tuple[Settings, FastAPI]:
    """The simulators' app and settings whose gateways all point at them."""
    merchant_serial = secrets.token_hex(20).upper()
    sandbox_url = settings.public_url + SANDBOX_PREFIX
    config = SandboxConfig(
        public_url=sandbox_url,
        gateways={"wechatpay": {"merchant_serial_no": merchant_serial}},
    )
    sandbox = create_sandbox_app(config)
    update: dict[str, BaseModel] = {}
    for section, keys in asyncio.run(_simulator_keys(sandbox)).items():
        keys["merchant_serial_no"] = keys.get("merchant_serial_no") or merchant_serial
        update[section] = _WIRINGS[section](keys, sandbox_url)
    # The simulators stand in for the gateways, which knowpay's limits do not govern: its own
    # calls to them (and the payer's) would otherwise spend 127.0.0.1's anonymous budget.
    limits = settings.rate_limits
    update["rate_limits"] = limits.model_copy(
        update={"exempt_prefixes": [*limits.exempt_prefixes, SANDBOX_PREFIX + "/"]}
    )
    return settings.model_copy(update=update), sandbox

"""`knowpay demo`: the gateway simulators mounted under /sandbox/, and knowpay's gateway
settings pointed at them with the keys the simulators made."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from knowpay.kit.config import AlipaySettings, Settings, WechatPaySettings
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


# One line per simulated gateway: settings section → its wiring.
_WIRINGS: dict[str, GatewayWiring] = {
    "alipay": _alipay,
    "wechatpay": _wechatpay,
}


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
    with TestClient(sandbox) as local:  # in-process: ask each simulator for its keys
        for section, wiring in _WIRINGS.items():
            keys = local.get(f"/{section}/_keys").json()
            keys["merchant_serial_no"] = keys.get("merchant_serial_no") or merchant_serial
            update[section] = wiring(keys, sandbox_url)
    return settings.model_copy(update=update), sandbox

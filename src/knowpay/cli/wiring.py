"""`knowpay demo`: the gateway simulators mounted under /sandbox/, and knowpay's gateway
settings pointed at them with the keys the simulators made."""

from __future__ import annotations

import secrets

from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.kit.config import AlipaySettings, Settings, WechatPaySettings
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app

SANDBOX_PREFIX = "/sandbox"


def wire_sandbox(settings: Settings) -> tuple[Settings, FastAPI]:
    """The simulators' app and settings whose Alipay and WeChat Pay point at them."""
    merchant_serial = secrets.token_hex(20).upper()
    config = SandboxConfig(
        public_url=settings.public_url + SANDBOX_PREFIX,
        gateways={"wechatpay": {"merchant_serial_no": merchant_serial}},
    )
    sandbox = create_sandbox_app(config)
    with TestClient(sandbox) as local:  # in-process: ask each simulator for its keys
        alipay = local.get("/alipay/_keys").json()
        wechat = local.get("/wechatpay/_keys").json()
    wired = settings.model_copy(
        update={
            "alipay": AlipaySettings(
                app_id=alipay["app_id"],
                seller_id=alipay["seller_id"],
                gateway_url=alipay["gateway_url"],
                private_key=alipay["merchant_private_key"],
                alipay_public_key=alipay["alipay_public_key"],
            ),
            "wechatpay": WechatPaySettings(
                mchid=wechat["mchid"],
                appid=wechat["appid"],
                apiv3_key=wechat["apiv3_key"],
                merchant_private_key=wechat["merchant_private_key"],
                merchant_serial_no=wechat.get("merchant_serial_no") or merchant_serial,
                platform_public_key=wechat["platform_public_key"],
                platform_serial_no=wechat["platform_serial_no"],
                base_url=settings.public_url + SANDBOX_PREFIX + "/wechatpay",
            ),
        }
    )
    return wired, sandbox

"""`knowpay demo`: a catalog, an app, a buyer and staff to click through, created once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from knowpay.accounts import repository as accounts_repository
from knowpay.accounts import service as accounts
from knowpay.auth.principals import Principal, Role
from knowpay.catalog import service as catalog
from knowpay.catalog.schemas import ProductCreate
from knowpay.catalog.states import ProductKind
from knowpay.kit.clock import SystemClock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretHasher
from knowpay.kit.db import Database
from knowpay.kit.schemas import MoneyIn

DEMO_FILE = Path("var/demo.json")
DEMO_PEOPLE = {
    "buyer": ("buyer@demo.knowpay.local", "demo-buyer-2026", Role.BUYER),
    "creator": ("creator@demo.knowpay.local", "demo-creator-2026", Role.CREATOR),
    "admin": ("admin@demo.knowpay.local", "demo-admin-2026", Role.ADMIN),
    "finance": ("finance@demo.knowpay.local", "demo-finance-2026", Role.FINANCE),
    "support": ("support@demo.knowpay.local", "demo-support-2026", Role.SUPPORT),
}
DEMO_PAYMENT_PASSWORD = "135790"  # noqa: S105 - the demo buyer's, printed by the demo
"""The demo buyer's 6-digit payment password (paying from the knowledge-coin wallet)."""
DEMO_PRODUCTS: list[dict[str, Any]] = [
    {
        "title": "Python 数据分析 30 讲",
        "kind": ProductKind.COURSE,
        "prices": [(9900, "CNY"), (1499, "USD")],
    },
    {"title": "产品经理的第一课 (专栏)", "kind": ProductKind.COLUMN, "prices": [(4900, "CNY")]},
    {
        "title": "年度会员",
        "kind": ProductKind.MEMBERSHIP,
        "period_days": 365,
        "prices": [(19800, "CNY"), (2999, "USD"), (4500, "JPY")],
    },
    {"title": "《深入理解支付系统》电子书", "kind": ProductKind.EBOOK, "prices": [(2990, "CNY")]},
]


def _load_state() -> dict[str, Any]:
    if DEMO_FILE.is_file():
        loaded: dict[str, Any] = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
        return loaded
    return {}


def _save_state(state: dict[str, Any]) -> None:
    DEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEMO_FILE.write_text(json.dumps(state, indent=2, ensure_ascii=False), encoding="utf-8")
    os.chmod(DEMO_FILE, 0o600)


def _ensure_app(session: Session, state: dict[str, Any]) -> None:
    if state.get("app_id") and accounts_repository.get_app(session, state["app_id"]):
        return
    created = accounts.create_app(session, name="Demo platform", now=SystemClock().now())
    state.update(app_id=created.app.id, api_key=created.api_key)


def _ensure_people(session: Session, hasher: SecretHasher, state: dict[str, Any]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for name, (email, password, role) in DEMO_PEOPLE.items():
        user = accounts_repository.get_user_by_email(session, email)
        if user is None:
            user = accounts.register_user(
                session,
                hasher,
                email=email,
                password=password,
                role=role,
                now=SystemClock().now(),
                app_id=state["app_id"] if role in (Role.BUYER, Role.CREATOR) else None,
            )
        if role is Role.BUYER and user.payment_password_hash is None:
            user.payment_password_hash = hasher.hash(DEMO_PAYMENT_PASSWORD)
        ids[name] = user.id
    return ids


def _ensure_products(session: Session, state: dict[str, Any], creator_id: str) -> None:
    if state.get("product_ids"):
        return
    caller = Principal(id=state["app_id"], role=Role.APP, app_id=state["app_id"])
    product_ids = []
    for spec in DEMO_PRODUCTS:
        body = ProductCreate(
            title=spec["title"],
            kind=spec["kind"],
            period_days=spec.get("period_days"),
            creator_id=creator_id,
            prices=[
                MoneyIn(amount=amount, currency=currency) for amount, currency in spec["prices"]
            ],
        )
        product = catalog.create_product(
            session, caller, body, SystemClock().now(), accounts.principal_of
        )
        product_ids.append(product.id)
    state["product_ids"] = product_ids


def seed_demo(database: Database, settings: Settings) -> dict[str, Any]:
    """Create the demo data if missing (idempotent) and say where to click."""
    state = _load_state()
    hasher = SecretHasher(settings.password_hash)
    with database.session_scope() as session:
        _ensure_app(session, state)
        people = _ensure_people(session, hasher, state)
        _ensure_products(session, state, people["creator"])
    # The README sends newcomers here for the logins, and programs for the buyer's user id.
    state["logins"] = {
        name: {"email": email, "password": password, "user_id": people[name]}
        for name, (email, password, _role) in DEMO_PEOPLE.items()
    }
    state["logins"]["buyer"]["payment_password"] = DEMO_PAYMENT_PASSWORD
    _save_state(state)
    base = settings.public_url
    return {
        "api": f"{base}/docs",
        "app_id": state["app_id"],
        "api_key": state["api_key"],
        "products": list(state["product_ids"]),
        "logins": state["logins"],
        "credentials_file": str(DEMO_FILE),
    }


def readable(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as a person reads it in a table: one line per login."""
    flat = {key: value for key, value in summary.items() if key != "logins"}
    flat["products"] = ", ".join(summary["products"])
    for name, login in summary["logins"].items():
        flat[f"{name}_login"] = f"{login['email']} / {login['password']}"
        if "payment_password" in login:
            flat[f"{name}_login"] += f" (payment password {login['payment_password']})"
    return flat

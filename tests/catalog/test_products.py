"""The catalog: products with prices per currency, and the draft → published → archived rules."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.auth.principals import Role
from knowpay.catalog import service
from knowpay.catalog.errors import PriceNotAvailable, ProductNotForSale
from knowpay.catalog.models import Product
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from tests.builders import Builders


def test_create_read_and_list_a_product(client: TestClient, build: Builders) -> None:
    app = build.app()
    created = build.product(
        app,
        title="年度会员",
        kind="membership",
        period_days=365,
        prices=[{"amount": 19800, "currency": "CNY"}, {"amount": 4500, "currency": "jpy"}],
    )
    assert created["id"].startswith("prod_")
    assert created["status"] == "published"
    assert {(p["currency"], p["amount"]) for p in created["prices"]} == {
        ("CNY", 19800),
        ("JPY", 4500),
    }
    read = client.get(f"/v1/products/{created['id']}", headers=app.headers).json()
    assert read == created
    listed = client.get("/v1/products", headers=app.headers).json()
    assert listed["object"] == "list"
    assert [p["id"] for p in listed["data"]] == [created["id"]]


def test_list_is_newest_first_with_cursor_pagination(client: TestClient, build: Builders) -> None:
    app = build.app()
    ids = [build.product(app, title=f"p{i}")["id"] for i in range(5)]
    first = client.get("/v1/products?limit=2", headers=app.headers).json()
    assert [p["id"] for p in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = client.get(f"/v1/products?limit=10&starting_after={ids[3]}", headers=app.headers).json()
    assert [p["id"] for p in rest["data"]] == ids[::-1][2:]
    assert rest["has_more"] is False


def test_a_membership_needs_its_period(client: TestClient, build: Builders) -> None:
    app = build.app()
    response = client.post(
        "/v1/products",
        json={"title": "m", "kind": "membership", "prices": [{"amount": 1, "currency": "CNY"}]},
        headers=app.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_one_price_per_currency_and_known_currencies_only(
    client: TestClient, build: Builders
) -> None:
    app = build.app()
    for prices in (
        [{"amount": 1, "currency": "CNY"}, {"amount": 2, "currency": "CNY"}],
        [{"amount": 1, "currency": "XYZ"}],
    ):
        response = client.post(
            "/v1/products",
            json={"title": "t", "kind": "course", "prices": prices},
            headers=app.headers,
        )
        assert response.status_code == 422, prices


def test_publishing_needs_a_price(client: TestClient, build: Builders) -> None:
    app = build.app()
    response = client.post(
        "/v1/products", json={"title": "t", "kind": "course"}, headers=app.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "product_not_publishable"
    draft = build.product(app, prices=[], status="draft")
    refused = client.post(f"/v1/products/{draft['id']}/publish", headers=app.headers)
    assert refused.json()["code"] == "product_not_publishable"
    client.patch(
        f"/v1/products/{draft['id']}",
        json={"prices": [{"amount": 500, "currency": "CNY"}]},
        headers=app.headers,
    )
    published = client.post(f"/v1/products/{draft['id']}/publish", headers=app.headers)
    assert published.status_code == 200
    assert published.json()["status"] == "published"


def test_lifecycle_follows_the_transition_table(client: TestClient, build: Builders) -> None:
    app = build.app()
    product = build.product(app)
    archived = client.post(f"/v1/products/{product['id']}/archive", headers=app.headers)
    assert archived.json()["status"] == "archived"
    # Re-publishing an archived product is allowed; going back to draft is not a route at all.
    assert (
        client.post(f"/v1/products/{product['id']}/publish", headers=app.headers).json()["status"]
        == "published"
    )
    patch = client.patch(
        f"/v1/products/{product['id']}", json={"status": "draft"}, headers=app.headers
    )
    assert patch.status_code == 422


def test_an_app_sees_its_own_products_and_the_platforms_and_staff_see_all(
    client: TestClient, build: Builders
) -> None:
    from knowpay.auth.principals import Role

    web, other = build.app("web"), build.app("other")
    buyer = build.buyer(web)
    draft = build.product(web, status="draft")
    published = build.product(web)
    admin = build.staff(Role.ADMIN)
    platforms = build.product(admin, title="The platform's own course")
    assert client.get(f"/v1/products/{draft['id']}", headers=web.headers).status_code == 200
    assert client.get(f"/v1/products/{draft['id']}", headers=other.headers).status_code == 404
    assert client.get(f"/v1/products/{draft['id']}", headers=buyer.headers).status_code == 404
    assert client.get(f"/v1/products/{published['id']}", headers=other.headers).status_code == 404
    assert client.get(f"/v1/products/{published['id']}", headers=buyer.headers).status_code == 200
    support = build.staff(Role.SUPPORT)
    assert client.get(f"/v1/products/{draft['id']}", headers=support.headers).status_code == 200
    other_list = client.get("/v1/products", headers=other.headers).json()["data"]
    assert [p["id"] for p in other_list] == [platforms["id"]]
    web_list = client.get("/v1/products", headers=web.headers).json()["data"]
    assert [p["id"] for p in web_list] == [platforms["id"], published["id"], draft["id"]]
    buyer_list = client.get("/v1/products", headers=buyer.headers).json()["data"]
    assert [p["id"] for p in buyer_list] == [platforms["id"], published["id"]]
    web_drafts = client.get("/v1/products?status=draft", headers=web.headers).json()["data"]
    assert [p["id"] for p in web_drafts] == [draft["id"]]
    assert client.get("/v1/products?status=draft", headers=other.headers).json()["data"] == []


def test_only_the_owner_app_or_an_admin_may_change_a_product(
    client: TestClient, build: Builders
) -> None:
    from knowpay.auth.principals import Role

    web, other = build.app("web"), build.app("other")
    product = build.product(web)
    response = client.patch(
        f"/v1/products/{product['id']}", json={"title": "mine now"}, headers=other.headers
    )
    assert response.status_code == 404  # not there for another app
    admin = build.staff(Role.ADMIN)
    changed = client.patch(
        f"/v1/products/{product['id']}", json={"title": "renamed"}, headers=admin.headers
    )
    assert changed.json()["title"] == "renamed"


def test_only_published_products_with_a_price_are_sellable(
    build: Builders, database: Database
) -> None:
    app = build.app()
    product = build.product(app, prices=[{"amount": 9900, "currency": "CNY"}])
    draft = build.product(app, status="draft")
    with database.session_scope() as session:
        found, price = service.sellable_price(session, product["id"], "CNY")
        assert price == Money(9900, "CNY")
        assert found.id == product["id"]
        with pytest.raises(PriceNotAvailable):
            service.sellable_price(session, product["id"], "USD")
        with pytest.raises(ProductNotForSale):
            service.sellable_price(session, draft["id"], "CNY")


def test_an_unknown_creator_is_422_and_writes_nothing(
    client: TestClient, build: Builders, database: Database
) -> None:
    app = build.app()
    response = client.post(
        "/v1/products",
        json={
            "title": "t",
            "kind": "course",
            "creator_id": "usr_nope",
            "prices": [{"amount": 1, "currency": "CNY"}],
        },
        headers=app.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "creator_not_found"
    with database.session_scope(read_only=True) as session:
        assert session.scalars(select(Product)).all() == []


def test_a_creator_of_another_app_or_a_staff_member_is_answered_as_an_unknown_creator(
    client: TestClient, build: Builders, database: Database
) -> None:
    """An app names as a product's creator only a person it registered: naming another
    app's user (or staff) is answered exactly as an unknown id, and writes nothing. Before,
    only the foreign key was checked, so app B could make app A's buyer (or an admin) the
    creator of its product: their e-mail then showed on B's cashier and in the creators
    report, and the 422 / 201 difference told B which user ids exist in other apps."""
    mine, other = build.app(), build.app()
    others_user = build.buyer(other)
    admin = build.staff(Role.ADMIN)
    own = build.buyer(mine, role="creator")
    for creator_id in (others_user.id, admin.id, "usr_nope"):
        response = client.post(
            "/v1/products",
            json={
                "title": "t",
                "kind": "course",
                "creator_id": creator_id,
                "prices": [{"amount": 1, "currency": "CNY"}],
            },
            headers=mine.headers,
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "creator_not_found"
        assert response.json()["detail"] == f"No such creator: {creator_id}"
    with database.session_scope(read_only=True) as session:
        assert session.scalars(select(Product)).all() == []
    assert build.product(mine, creator_id=own.id)["creator_id"] == own.id

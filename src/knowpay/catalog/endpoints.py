"""Routes of the catalog."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from knowpay.auth.dependencies import CurrentPrincipal, require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.catalog import service
from knowpay.catalog.schemas import ProductCreate, ProductOut, ProductUpdate
from knowpay.catalog.states import ProductKind, ProductStatus
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, DbSession, SessionRoute

router = APIRouter(route_class=SessionRoute, prefix="/v1/products", tags=["catalog"])

CatalogEditor = Annotated[Principal, Depends(require_roles(Role.APP, Role.ADMIN))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProductOut)
def create_product(
    body: ProductCreate,
    caller: CatalogEditor,
    session: DbSession,
    clock: AppClock,
    request: Request,
) -> ProductOut:
    """Add a product (app or admin)."""
    people: service.PersonLookup = request.app.state.person_lookup
    return ProductOut.of(service.create_product(session, caller, body, clock.now(), people))


@router.get("", response_model=Page[ProductOut])
def list_products(
    caller: CurrentPrincipal,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    status_filter: Annotated[ProductStatus | None, Query(alias="status")] = None,
    kind: ProductKind | None = None,
) -> Page[ProductOut]:
    """Products the caller may see, newest first."""
    products, has_more = service.list_products(
        session,
        caller,
        params,
        status=status_filter.value if status_filter else None,
        kind=kind.value if kind else None,
    )
    return Page[ProductOut](data=[ProductOut.of(p) for p in products], has_more=has_more)


@router.get("/{product_id}", response_model=ProductOut)
def read_product(product_id: str, caller: CurrentPrincipal, session: DbSession) -> ProductOut:
    """One product."""
    return ProductOut.of(service.get_visible_product(session, caller, product_id))


@router.patch("/{product_id}", response_model=ProductOut)
def update_product(
    product_id: str, body: ProductUpdate, caller: CatalogEditor, session: DbSession, clock: AppClock
) -> ProductOut:
    """Change a product's title, description, period or prices (owner app or admin)."""
    return ProductOut.of(service.update_product(session, caller, product_id, body, clock.now()))


@router.post("/{product_id}/publish", response_model=ProductOut)
def publish_product(
    product_id: str, caller: CatalogEditor, session: DbSession, clock: AppClock
) -> ProductOut:
    """Put a product on sale (it needs a price; a membership its period)."""
    return ProductOut.of(
        service.change_status(session, caller, product_id, ProductStatus.PUBLISHED, clock.now())
    )


@router.post("/{product_id}/archive", response_model=ProductOut)
def archive_product(
    product_id: str, caller: CatalogEditor, session: DbSession, clock: AppClock
) -> ProductOut:
    """Take a product off sale; what buyers own stays theirs."""
    return ProductOut.of(
        service.change_status(session, caller, product_id, ProductStatus.ARCHIVED, clock.now())
    )

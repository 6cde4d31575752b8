"""/v1/admin/gateways: store gateway credentials encrypted (admin). Values are accepted,
never returned: responses name the stored fields and their fingerprints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.credentials import service
from knowpay.credentials.schemas import CredentialsUpdate, GatewayCredentialsOut
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretBox
from knowpay.kit.pagination import Page
from knowpay.kit.web import AppClock, AppSettings, DbSession, SessionRoute

router = APIRouter(route_class=SessionRoute, prefix="/v1/admin/gateways", tags=["admin"])

Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


async def _box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


Box = Annotated[SecretBox, Depends(_box)]


async def _env_settings(request: Request) -> Settings:
    """The settings from env/TOML alone: what a gateway falls back to without stored values."""
    settings: Settings = request.app.state.base_settings
    return settings


EnvSettings = Annotated[Settings, Depends(_env_settings)]


@router.get("", response_model=Page[GatewayCredentialsOut])
def list_gateway_credentials(
    caller: Admin, session: DbSession, settings: AppSettings
) -> Page[GatewayCredentialsOut]:
    """Every gateway and the fields stored for it (admin)."""
    rows = service.list_fields(session)
    refresh_s = settings.credentials_refresh_s
    return Page[GatewayCredentialsOut](
        data=[
            GatewayCredentialsOut.of(g, rows, refresh_s) for g in sorted(service.gateway_sections())
        ],
        has_more=False,
    )


@router.get("/{gateway}", response_model=GatewayCredentialsOut)
def read_gateway_credentials(
    gateway: str, caller: Admin, session: DbSession, settings: AppSettings
) -> GatewayCredentialsOut:
    """The fields stored for one gateway (admin)."""
    rows = service.list_fields(session, gateway)
    return GatewayCredentialsOut.of(gateway, rows, settings.credentials_refresh_s)


@router.put("/{gateway}", response_model=GatewayCredentialsOut)
def put_gateway_credentials(
    gateway: str,
    body: CredentialsUpdate,
    caller: Admin,
    session: DbSession,
    clock: AppClock,
    settings: EnvSettings,
    box: Box,
) -> GatewayCredentialsOut:
    """Store fields of a gateway's settings encrypted (null removes one); every process
    applies them within `applies_within_s` seconds (admin). Values its channels would not
    load with (with what else is stored for it) are refused: 422, nothing stored."""
    rows = service.set_fields(session, box, settings, gateway, body.fields, clock.now())
    return GatewayCredentialsOut.of(gateway, rows, settings.credentials_refresh_s)

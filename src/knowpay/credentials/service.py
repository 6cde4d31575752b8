"""Gateway credentials at rest: set (sealed, per field), list (never the values), and overlay
on the settings (at start-up, and by `credentials.refresh` while running) so the channel
registry is built from them. Never commits.

Any field of a gateway's settings section may be stored (`alipay.private_key`,
`wechatpay.apiv3_key`, `stripe.secret_key`, `alipay.app_id` …); every value is sealed with the
secret box under `gateway_credential:{gateway}:{field}`. Stored values win over the
environment and the TOML file (docs/configuration.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, get_origin

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from knowpay.audit import service as audit
from knowpay.channels.registry import ChannelRegistry, load_problem
from knowpay.credentials import repository
from knowpay.credentials.errors import (
    InvalidCredentials,
    StoredCredentialsUnreadable,
    UnknownGateway,
)
from knowpay.credentials.models import GatewayCredential
from knowpay.kit.clock import Clock, SystemClock
from knowpay.kit.config import GatewaySettings, Settings
from knowpay.kit.crypto import SecretBox, SecretBoxError, secret_box
from knowpay.kit.db import Database
from knowpay.kit.ids import new_id

logger = logging.getLogger("knowpay.credentials")

_ENV_NAME_PREFIX = re.compile(r"^KNOWPAY_[A-Z0-9_]+: ")
"""Adapters name the environment variable a bad value came from; a stored one came from here."""


def gateway_sections() -> dict[str, type[GatewaySettings]]:
    """The settings sections that configure a gateway: name → its settings model."""
    found: dict[str, type[GatewaySettings]] = {}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, GatewaySettings):
            found[name] = annotation
    return found


def sealing_context(gateway: str, field: str) -> str:
    """What a stored value is bound to: its gateway and field."""
    return f"gateway_credential:{gateway}:{field}"


def fingerprint(value: str) -> str:
    """A short, non-secret way to tell two values apart."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


def _model(gateway: str) -> type[GatewaySettings]:
    model = gateway_sections().get(gateway)
    if model is None:
        known = ", ".join(sorted(gateway_sections()))
        raise UnknownGateway(f"No gateway named {gateway!r}; known: {known}.")
    return model


def _parse(model: type[GatewaySettings], field: str, raw: str) -> Any:
    """A stored text as the field takes it: list fields are stored as JSON arrays."""
    if get_origin(model.model_fields[field].annotation) is list:
        try:
            return json.loads(raw)
        except ValueError:
            raise InvalidCredentials(f"{field} takes a JSON array.", fields=[field]) from None
    return raw


def _section(
    model: type[GatewaySettings], base: GatewaySettings, values: Mapping[str, str]
) -> GatewaySettings:
    """`base` with `values` laid over it, validated. The error names fields, never values."""
    data = base.model_dump()
    data.update({field: _parse(model, field, raw) for field, raw in values.items()})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
        raise InvalidCredentials(
            f"Invalid values for: {', '.join(fields)}.", fields=fields
        ) from None


def set_fields(
    session: Session,
    box: SecretBox,
    settings: Settings,
    gateway: str,
    fields: Mapping[str, str | None],
    now: datetime,
) -> list[GatewayCredential]:
    """Store (or, with None, remove) fields of a gateway; returns what is stored for it now.
    `settings` are the env/TOML ones (stored values are read here). Running processes apply it
    within `credentials_refresh_s` (`credentials.refresh`)."""
    model = _model(gateway)
    unknown = sorted(set(fields) - set(model.model_fields))
    if unknown:
        raise InvalidCredentials(
            f"{gateway} has no field {', '.join(unknown)}; fields: "
            f"{', '.join(sorted(model.model_fields))}.",
            fields=unknown,
        )
    new_values = {field: value for field, value in fields.items() if value is not None}
    try:
        stored = _opened(session, box, gateway).get(gateway, {})
    except StoredCredentialsUnreadable as exc:
        raise InvalidCredentials(str(exc), fields=sorted(fields)) from None
    # What the gateway will be built from: env/TOML, what stays stored, and the new values.
    after = {**{f: v for f, v in stored.items() if f not in fields}, **new_values}
    section = _section(model, getattr(settings, gateway), after)
    _refuse_what_does_not_load(
        settings.model_copy(update={gateway: section}), gateway, after, sorted(fields)
    )
    for field, value in sorted(new_values.items()):
        sealed = box.seal(value, context=sealing_context(gateway, field))
        row = repository.get(session, gateway, field)
        if row is None:
            repository.add(
                session,
                GatewayCredential(
                    id=new_id("gcred"),
                    gateway=gateway,
                    field=field,
                    value_sealed=sealed,
                    fingerprint=fingerprint(value),
                    created_at=now,
                    updated_at=now,
                ),
            )
        else:
            row.value_sealed, row.fingerprint, row.updated_at = sealed, fingerprint(value), now
    cleared = sorted(
        field
        for field, value in fields.items()
        if value is None and repository.remove(session, gateway, field)
    )
    session.flush()
    audit.record(
        session,
        action="gateway_credentials.updated",
        object_type="gateway",
        object_id=gateway,
        after={
            "set": {field: fingerprint(value) for field, value in sorted(new_values.items())},
            "cleared": cleared,
        },
        now=now,
    )
    return repository.all_rows(session, gateway)


def _refuse_what_does_not_load(
    settings: Settings, gateway: str, values: Mapping[str, str], fields: list[str]
) -> None:
    """InvalidCredentials, naming `fields`, when the gateway's channels would not load from
    `settings` (a PEM-shaped key that does not parse): stored, it would be refused by every
    process. The adapter's reason is given unless it quotes one of `values`."""
    problem = load_problem(gateway, settings, SystemClock())
    if problem is None:
        return
    reason = _ENV_NAME_PREFIX.sub("", str(problem))
    if any(value and value in reason for value in values.values()):
        reason = type(problem).__name__
    raise InvalidCredentials(
        f"The {gateway} channels do not load with these values: {reason}", fields=fields
    )


def list_fields(session: Session, gateway: str | None = None) -> list[GatewayCredential]:
    """What is stored (rows carry only sealed values and fingerprints)."""
    if gateway is not None:
        _model(gateway)
    return repository.all_rows(session, gateway)


def _opened(
    session: Session, box: SecretBox, gateway: str | None = None
) -> dict[str, dict[str, str]]:
    """Stored values, opened, per gateway (of one gateway when named). StoredCredentialsUnreadable
    when one does not open with this box's master keys."""
    sections = gateway_sections()
    by_gateway: dict[str, dict[str, str]] = {}
    for row in repository.all_rows(session, gateway):
        model = sections.get(row.gateway)
        if model is None or row.field not in model.model_fields:
            logger.warning(
                "stored credential %s.%s is not a setting; ignored", row.gateway, row.field
            )
            continue
        try:
            value = box.open(row.value_sealed, context=sealing_context(row.gateway, row.field))
        except SecretBoxError as exc:
            raise StoredCredentialsUnreadable(
                f"the stored {row.gateway}.{row.field} does not open with KNOWPAY_SECRET_KEY "
                f"({exc}); if it was sealed under an earlier master key, list that key in "
                "KNOWPAY_PREVIOUS_SECRET_KEYS (docs/audit.md, rotating the master key)"
            ) from None
        by_gateway.setdefault(row.gateway, {})[row.field] = value
    return by_gateway


def stored_settings(settings: Settings, session: Session, box: SecretBox) -> Settings:
    """`settings` with every stored credential opened and laid over its gateway's section.
    StoredCredentialsUnreadable when one does not open with this master key."""
    by_gateway = _opened(session, box)
    if not by_gateway:
        return settings
    sections = gateway_sections()
    update = {
        gateway: _section(sections[gateway], getattr(settings, gateway), values)
        for gateway, values in by_gateway.items()
    }
    return settings.model_copy(update=update)


def with_stored_credentials(settings: Settings, database: Database) -> Settings:
    """The start-up overlay (app and worker): stored credentials over env/TOML settings. A
    database that is not migrated yet (or not reachable) leaves the settings as they are.
    A stored gateway whose channels do not load falls back when the registry is built
    (`ChannelRegistry.from_settings(…, fallback=settings)`)."""
    box = secret_box(settings)
    try:
        with database.session_scope(read_only=True) as session:
            return stored_settings(settings, session, box)
    except (OperationalError, ProgrammingError) as exc:
        logger.error(
            "stored gateway credentials were not loaded (%s); gateways use env/TOML settings only",
            type(exc).__name__,
        )
        return settings


def channel_registry(base: Settings, database: Database, clock: Clock) -> ChannelRegistry:
    """A process's gateways at start-up (app and worker): stored credentials over env/TOML.
    A stored gateway whose channels do not load stays on env/TOML (`registry.settings` says
    what each process runs with)."""
    return ChannelRegistry.from_settings(
        with_stored_credentials(base, database), clock, fallback=base
    )


def reseal_all(session: Session, opener: SecretBox, sealer: SecretBox) -> int:
    """Re-encrypt every stored credential from `opener`'s keys to `sealer`'s (rotation)."""
    rows = repository.all_rows(session, for_update=True)
    for row in rows:
        context = sealing_context(row.gateway, row.field)
        row.value_sealed = opener.reseal(row.value_sealed, context=context, into=sealer)
    return len(rows)

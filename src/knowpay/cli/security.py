"""`knowpay audit verify`, `knowpay secrets rotate`, `knowpay gateways set|list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from knowpay.audit import service as audit
from knowpay.audit import tasks as audit_tasks
from knowpay.cli.output import console, emit, fail
from knowpay.credentials import service as credentials
from knowpay.credentials.models import GatewayCredential
from knowpay.credentials.schemas import applies_when
from knowpay.kit.clock import SystemClock
from knowpay.kit.config import get_settings
from knowpay.kit.crypto import SecretBox, SecretBoxError, secret_box
from knowpay.kit.db import Database
from knowpay.kit.errors import KnowpayError
from knowpay.kit.idempotency import reseal_bodies
from knowpay.webhooks import service as webhooks

audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
secrets_app = typer.Typer(help="Secrets stored encrypted at rest.", no_args_is_help=True)
gateways_app = typer.Typer(
    help="Gateway credentials stored encrypted in the database.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]
MIN_MASTER_KEY_CHARS = 32


def _database() -> Database:
    return Database(get_settings())


def _fail(code: str, detail: str, as_json: bool) -> NoReturn:
    fail(code, detail, as_json=as_json)


# Audit ----------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(as_json: JsonFlag = False) -> None:
    """Seal what is pending, then walk the whole chain; exit 1 naming the first broken record."""
    database = _database()
    try:
        sealed_now = audit_tasks.seal_pending(database, SystemClock(), wait=True)
        with database.session_scope(read_only=True) as session:
            result = audit.verify(session)
    finally:
        database.dispose()
    broken = result.broken
    report: dict[str, Any] = {
        "ok": result.ok,
        "records": result.records,
        "sealed_now": sealed_now,
        "unsealed": result.unsealed,
        "head": {"position": result.head_position, "hash": result.head_hash},
        "broken": None
        if broken is None
        else {"id": broken.record_id, "position": broken.position, "reason": broken.reason},
    }
    if as_json:
        emit(report, as_json=True)
    elif broken is None:
        console.print(
            f"[green]{result.records} records, chain intact[/green] "
            f"(head: position {result.head_position}, hash {result.head_hash})"
        )
    else:
        console.print(
            f"[red]audit chain broken[/red] at record {broken.record_id} "
            f"(position {broken.position}): {broken.reason}"
        )
    if broken is not None:
        raise typer.Exit(1)


# Secrets --------------------------------------------------------------------------------------


@secrets_app.command("rotate")
def secrets_rotate(
    new_key: Annotated[
        str,
        typer.Option(
            "--new-key",
            envvar="KNOWPAY_NEW_SECRET_KEY",
            help="The new master key (or set KNOWPAY_NEW_SECRET_KEY, which stays out of the "
            "shell history).",
        ),
    ],
    old_key: Annotated[
        str | None,
        typer.Option(
            "--old-key",
            envvar="KNOWPAY_OLD_SECRET_KEY",
            help="The master key the values are sealed under now (default KNOWPAY_SECRET_KEY).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-encrypt every stored secret (webhook endpoint secrets, gateway credentials, stored
    idempotent responses) under a new master key, in one transaction; then restart every
    process with the new key."""
    settings = get_settings()
    old = old_key or settings.secret_key.get_secret_value()
    if len(new_key) < MIN_MASTER_KEY_CHARS:
        _fail(
            "weak_master_key",
            f"The new master key must be at least {MIN_MASTER_KEY_CHARS} characters.",
            as_json,
        )
    # Also reads values already moved, and any still under a key the rotation before left.
    earlier = [key.get_secret_value() for key in settings.previous_secret_keys]
    opener = SecretBox(old, previous_keys=[new_key, *earlier])
    sealer = SecretBox(new_key)
    database = Database(settings)
    try:
        with database.session_scope() as session:
            webhook_values = webhooks.reseal_secrets(session, opener, sealer)
            gateway_values = credentials.reseal_all(session, opener, sealer)
            stored_responses = reseal_bodies(session, opener, sealer)
            audit.record(
                session,
                action="secrets.rotated",
                object_type="master_key",
                object_id=sealer.key_id,
                before={"key_id": opener.key_id},
                after={
                    "key_id": sealer.key_id,
                    "webhook_secrets": webhook_values,
                    "gateway_credentials": gateway_values,
                    "stored_responses": stored_responses,
                },
            )
    except SecretBoxError as exc:
        _fail(
            "secret_unreadable",
            f"Nothing was changed: a stored value cannot be read ({exc}).",
            as_json,
        )
    finally:
        database.dispose()
    emit(
        {
            "rotated": True,
            "key_id": sealer.key_id,
            "previous_key_id": opener.key_id,
            "webhook_secrets": webhook_values,
            "gateway_credentials": gateway_values,
            "stored_responses": stored_responses,
            "next": "run every knowpay process with KNOWPAY_SECRET_KEY set to the new key; drop "
            "KNOWPAY_PREVIOUS_SECRET_KEYS at the next restart (docs/audit.md)",
        },
        as_json=as_json,
        title="secrets re-encrypted",
    )


# Gateway credentials --------------------------------------------------------------------------


def _fields_out(rows: list[GatewayCredential]) -> list[dict[str, Any]]:
    return [
        {
            "gateway": r.gateway,
            "field": r.field,
            "fingerprint": r.fingerprint,
            "updated_at": r.updated_at,
        }
        for r in rows
    ]


def _parse_field(assignment: str) -> tuple[str, str]:
    name, sep, value = assignment.partition("=")
    if not sep or not name:
        raise typer.BadParameter(f"expected name=value or name=@file, got {name!r}…")
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        if not path.is_file():
            raise typer.BadParameter(f"no such file for {name}: {path}")
        value = _read_field_file(name, path)
    return name.strip(), value


def _read_field_file(name: str, path: Path) -> str:
    """A field's value from a text file; one that is not UTF-8 (a DER key, a UTF-16 export)
    or cannot be read is a usage error naming it, not a traceback."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(
            f"{path} for {name} is not UTF-8 text (byte {exc.start}); give a PEM or text file",
            param_hint="--field",
        ) from exc
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {path} for {name}: {exc.strerror}", param_hint="--field"
        ) from exc


@gateways_app.command("set")
def gateways_set(
    gateway: Annotated[str, typer.Argument(help="alipay, wechatpay, unionpay, stripe, paypal …")],
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="name=value or name=@file (e.g. private_key=@merchant.pem); repeat"
        ),
    ] = None,
    clear: Annotated[
        list[str] | None, typer.Option("--clear", help="Remove a stored field; repeat")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store a gateway's credentials encrypted (they win over env/TOML; running processes
    apply them within KNOWPAY_CREDENTIALS_REFRESH_S)."""
    fields: dict[str, str | None] = dict(_parse_field(f) for f in field or [])
    fields.update(dict.fromkeys(clear or []))
    if not fields:
        raise typer.BadParameter("give at least one --field or --clear")
    settings = get_settings()
    database = Database(settings)
    try:
        with database.session_scope() as session:
            rows = credentials.set_fields(
                session,
                secret_box(settings),
                settings,
                gateway,
                fields,
                SystemClock().now(),
            )
            out = _fields_out(rows)
    except KnowpayError as error:
        _fail(error.code, error.detail, as_json)
    finally:
        database.dispose()
    refresh_s = settings.credentials_refresh_s
    if as_json:
        emit({"gateway": gateway, "fields": out, "applies": applies_when(refresh_s)}, as_json=True)
    else:
        live = applies_when(refresh_s) == "live"
        when = f"applied within {refresh_s:g} s" if live else "applied on the next start"
        emit(out, as_json=False, title=f"{gateway}: stored fields ({when})")


@gateways_app.command("list")
def gateways_list(as_json: JsonFlag = False) -> None:
    """Which gateway fields are stored (names and fingerprints, never values)."""
    database = _database()
    try:
        with database.session_scope(read_only=True) as session:
            out = _fields_out(credentials.list_fields(session))
    finally:
        database.dispose()
    emit(out, as_json=as_json, title="stored gateway credentials")

"""`knowpay`: serve, migrate, demo, apps, users."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from typing import Annotated, NoReturn

import typer
import uvicorn
from pydantic import BaseModel, ValidationError
from sqlalchemy import exc as sqlalchemy_exc

from knowpay.accounts import service as accounts
from knowpay.accounts.schemas import AppCreate, UserCreate
from knowpay.auth.principals import STAFF_ROLES, Role
from knowpay.cli.backup import backup
from knowpay.cli.demo import readable, seed_demo
from knowpay.cli.output import console, emit, fail
from knowpay.cli.rates import rates_app
from knowpay.cli.reconcile import reconcile
from knowpay.cli.security import audit_app, gateways_app, secrets_app
from knowpay.kit import context
from knowpay.kit.clock import SystemClock
from knowpay.kit.config import ConfigFileError, Settings, get_settings
from knowpay.kit.crypto import SecretHasher
from knowpay.kit.db import Database
from knowpay.kit.errors import KnowpayError
from knowpay.kit.logs import configure_process_logging, log_config
from knowpay.kit.migrations import head_revision, revision_of, upgrade
from knowpay.refunds import integrity

app = typer.Typer(
    help="knowpay: the payment center of a paid-knowledge platform.", no_args_is_help=True
)
apps_app = typer.Typer(help="Platform apps and their API keys.", no_args_is_help=True)
users_app = typer.Typer(help="Staff and users.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
app.add_typer(apps_app, name="apps")
app.add_typer(users_app, name="users")
app.add_typer(ledger_app, name="ledger")
app.add_typer(audit_app, name="audit")
app.add_typer(secrets_app, name="secrets")
app.add_typer(gateways_app, name="gateways")
app.add_typer(rates_app, name="rates")
app.command()(backup)
app.command()(reconcile)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]
# Checked here: uvicorn would take 99999 and listen on 99999 mod 65536 (34463).
Port = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on (1-65535).")]


def _database() -> Database:
    return Database(get_settings())


@app.callback()
def _main(ctx: typer.Context) -> None:
    """knowpay: the payment center of a paid-knowledge platform."""
    # What an admin command changes is audited as done by `cli:<operating-system user>`; the
    # long-running processes act as `system` (or as each request's caller).
    if ctx.invoked_subcommand not in {"serve", "worker", "demo", "sandbox", "bench"}:
        ctx.with_resource(context.acting_as(f"cli:{_os_user()}"))


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _listening_at(host: str, port: int) -> None:
    """Without KNOWPAY_PUBLIC_URL, gateways and browsers reach knowpay where it listens:
    `notify_url`, return and cashier links, and the demo's simulators follow `--port`
    (the variable is set for this process and the server processes it starts)."""
    if "public_url" in get_settings().model_fields_set:
        return
    # Listening on every interface: this host's own address reaches it.
    reachable = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    if ":" in reachable and not reachable.startswith("["):
        reachable = f"[{reachable}]"  # an IPv6 address in a URL
    os.environ["KNOWPAY_PUBLIC_URL"] = f"http://{reachable}:{port}"
    get_settings.cache_clear()


def _fail(error: KnowpayError, as_json: bool) -> NoReturn:
    fail(error.code, error.detail, as_json=as_json)


def _valid(model: type[BaseModel], as_json: bool, **fields: str) -> None:
    """The values as the API's schema would take them; exit 2 with its reasons otherwise."""
    try:
        model(**fields)
    except ValidationError as invalid:
        reasons = "; ".join(f"{item['loc'][0]}: {item['msg']}" for item in invalid.errors())
        fail("validation_error", reasons, as_json=as_json, exit_code=2)


def _share_metrics_between_processes(workers: int) -> None:
    """Several server processes answer /metrics with all of their samples (a scrape reaches
    one at random): they write them to files in one directory, the operator's
    PROMETHEUS_MULTIPROC_DIR (made if missing) or, for more than one process, a fresh one."""
    import tempfile

    from knowpay.kit.metrics import MULTIPROCESS_DIR_VARIABLE

    chosen = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if chosen:
        os.makedirs(chosen, exist_ok=True)
    elif workers > 1:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="knowpay-metrics-")


def _refuse_gateway_keys_that_do_not_load(settings: Settings) -> None:
    """A configured gateway whose keys do not parse stops `serve` and `worker` with a
    sentence before they start, not with pages of tracebacks from every server process."""
    from knowpay.channels.registry import gateway_sections, load_problem

    for section in gateway_sections():
        problem = load_problem(section, settings, SystemClock())
        if problem is not None:
            # The type and the adapter's own sentence (knowpay's key errors name the setting,
            # never the value), not a library's message, which might quote what it read.
            told = str(problem) if str(problem).startswith("KNOWPAY_") else type(problem).__name__
            fail(
                "configuration_invalid",
                f"The {section} settings do not load: {told}",
                as_json=False,
                exit_code=2,
            )


def main() -> None:
    """The `knowpay` command. A configuration that does not parse, a database that cannot be
    reached or was never migrated are told in a sentence, not a traceback (exit 2, 1, 1)."""
    try:
        app()
    except ConfigFileError as error:
        try:
            fail("configuration_invalid", str(error), as_json="--json" in sys.argv, exit_code=2)
        except typer.Exit as told:
            raise SystemExit(told.exit_code) from None
    except (ValidationError, sqlalchemy_exc.DBAPIError) as error:
        if isinstance(error, ValidationError) and error.title != Settings.__name__:
            raise  # not the configuration: a bug to see whole
        try:
            _explain(error, as_json="--json" in sys.argv)
        except typer.Exit as told:  # outside the app, Click no longer turns it into an exit
            raise SystemExit(told.exit_code) from None


def _explain(error: ValidationError | sqlalchemy_exc.DBAPIError, *, as_json: bool) -> NoReturn:
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
        fail("configuration_invalid", f"The configuration is not valid: {problems}",
             as_json=as_json, exit_code=2)  # fmt: skip
    if _not_migrated(error):
        fail("database_not_migrated",
             "The database has no knowpay tables yet: run `knowpay migrate`.",
             as_json=as_json)  # fmt: skip
    reason = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else repr(error)
    fail("database_unavailable", f"The database cannot be used: {reason}", as_json=as_json)


def _not_migrated(error: sqlalchemy_exc.DBAPIError) -> bool:
    """SQLite's "no such table", PostgreSQL's undefined_table (42P01)."""
    return getattr(error.orig, "sqlstate", None) == "42P01" or "no such table" in str(error.orig)


@app.command()
def migrate(as_json: JsonFlag = False) -> None:
    """Bring the database named by KNOWPAY_DATABASE_URL up to date."""
    database = _database()
    with database.engine.connect() as connection:
        before = revision_of(connection)
    upgrade(database.engine)
    emit(
        {
            "migrated": True,
            "database": database.dialect,
            "from_revision": before,
            "revision": head_revision(),
        },
        as_json=as_json,
    )


WORKER_HEALTHCHECK_TIMEOUT_S = 30
"""How long a server process may take to answer the supervisor (`serve --workers N`)."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Port = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Serve the API, the notification endpoints and the pages (migrates SQLite on start)."""
    _listening_at(host, port)
    settings = get_settings()
    _refuse_gateway_keys_that_do_not_load(settings)
    database = _database()
    if database.dialect == "sqlite":
        upgrade(database.engine)
    database.dispose()
    _share_metrics_between_processes(workers)
    uvicorn.run(
        "knowpay.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # A child answers the supervisor's ping only once its imports are done: seconds on a
        # loaded machine, past uvicorn's 5 s, and it was killed and started again, for good.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_S,
        proxy_headers=True,
        timeout_keep_alive=settings.keep_alive_s,
        log_config=log_config(settings.log_level, settings.log_format),
    )


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Port = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start serving after seeding.")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Seed a demo catalog, app, buyer and staff, point every gateway (Alipay, WeChat Pay,
    UnionPay, Stripe, PayPal) at its simulator (mounted under /sandbox/), print where to
    click, then serve."""
    from knowpay.app import create_app
    from knowpay.cli.wiring import SANDBOX_PREFIX, wire_sandbox

    _listening_at(host, port)
    settings = get_settings()
    if settings.environment == "production":
        fail(
            "demo_in_production",
            "knowpay demo seeds logins everyone knows: it does not run in production.",
            as_json=as_json,
            exit_code=2,
        )
    database = _database()
    upgrade(database.engine)
    summary = seed_demo(database, settings)
    summary["simulators"] = f"{settings.public_url}{SANDBOX_PREFIX}/docs"
    emit(summary if as_json else readable(summary), as_json=as_json, title="knowpay demo")
    database.dispose()
    if serve_after:
        wired, sandbox = wire_sandbox(settings)
        app = create_app(wired)
        app.mount(SANDBOX_PREFIX, sandbox)
        uvicorn.run(
            app,
            host=host,
            port=port,
            timeout_keep_alive=settings.keep_alive_s,
            log_config=log_config(settings.log_level, settings.log_format),
        )


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Run every job and one dispatch round, then exit.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Outbox dispatch, webhook delivery and the scheduled jobs (several may run at once)."""
    import signal

    from knowpay.alerts.service import breaker_alerts
    from knowpay.credentials.refresh import credentials_refresher
    from knowpay.credentials.service import channel_registry
    from knowpay.worker.runner import Worker

    base_settings = get_settings()
    _refuse_gateway_keys_that_do_not_load(base_settings)
    configure_process_logging(base_settings.log_level, base_settings.log_format)
    database = Database(base_settings)
    clock = SystemClock()
    registry = channel_registry(base_settings, database, clock)
    settings = registry.settings
    registry.health.set_listener(breaker_alerts(database, clock))
    runner = Worker(settings, database, clock, registry)
    if once:
        outcome = {
            **runner.run_jobs_once(),
            "events_dispatched": runner.dispatcher.run_once(),
            "webhooks_sent": runner.deliverer.run_once(),
        }
        registry.close()
        emit(outcome, as_json=as_json, title="worker: one round")
        return
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    refresher = credentials_refresher(base_settings, database, registry)
    runner.start()
    # Through the logs, so that with LOG_FORMAT=json every line of the process is JSON.
    logging.getLogger("knowpay.worker").info("knowpay worker running; Ctrl-C stops it gracefully")
    runner.wait()
    runner.stop()
    if refresher is not None:
        refresher.stop()
    registry.close()
    database.dispose()


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Port = 8100,
    time_scale: Annotated[
        float,
        typer.Option(
            min=0.0, help="Multiply every notification retry wait by this (tests: e.g. 0.001)."
        ),
    ] = 1.0,
) -> None:
    """The gateway simulators on their own (Alipay, WeChat Pay …), like stripe-mock."""
    from knowpay.sandbox.app import SandboxConfig, create_sandbox_app

    config = SandboxConfig(public_url=f"http://{host}:{port}", time_scale=time_scale)
    uvicorn.run(create_sandbox_app(config), host=host, port=port, log_level="info")


@app.command()
def bench(
    server_url: Annotated[
        str,
        typer.Option(help="A PostgreSQL database; the run makes (and drops) its own beside it."),
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent paid flows.")] = 64,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds before measuring.")] = 10.0,
    duration: Annotated[float, typer.Option(min=1, help="Seconds measured per channel.")] = 30.0,
    storm: Annotated[int, typer.Option(min=1, help="Payments in the duplicate storm.")] = 1000,
    copies: Annotated[int, typer.Option(min=2, max=50, help="Copies of each.")] = 10,
    pgbench_seconds: Annotated[int, typer.Option(min=1, help="pgbench's -T.")] = 20,
    latency_sweep: Annotated[
        str,
        typer.Option(help="Fewer concurrent flows to time too (comma-separated; '' for none)."),
    ] = "1,4,16,32",
    out: Annotated[str, typer.Option(help="Where the raw JSON goes.")] = "docs/benchmarks.json",
    markdown: Annotated[
        str, typer.Option(help="The page whose results section is rewritten.")
    ] = "docs/benchmarks.md",
    as_json: JsonFlag = False,
) -> None:
    """Paid flows per second, latency per endpoint, a duplicate storm and pgbench's TPC-B on
    the same PostgreSQL (knowpay --workers 2, a worker and the simulators, all local)."""
    from pathlib import Path

    from knowpay.bench import report
    from knowpay.bench.run import BenchOptions, run_bench

    options = BenchOptions(
        server_url=server_url,
        concurrency=concurrency,
        warmup_s=warmup,
        duration_s=duration,
        storm_payments=storm,
        storm_copies=copies,
        pgbench_seconds=pgbench_seconds,
        latency_sweep=_concurrencies(latency_sweep),
    )
    result = run_bench(options, say=lambda line: console.print(line) if not as_json else None)
    report.write(result, Path(out), Path(markdown))
    if as_json:
        emit(result, as_json=True)
    else:
        console.print(report.render(result))
    runs = result["flows"] + result["latency_sweep"]["points"]
    failed = any(p["errors"] for p in runs) or not (
        result["after_run"]["ledger_check_ok"]
        and result["after_run"]["paid_orders_match_flows"]
        and result["duplicate_storm"]["exactly_one_entry_each"]
    )
    if failed:
        raise typer.Exit(1)


def _concurrencies(text: str) -> tuple[int, ...]:
    """`--latency-sweep`: positive whole numbers, comma-separated."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.isascii() and part.isdigit() and int(part) > 0 for part in parts):
        raise typer.BadParameter(
            f"{text!r}: give concurrencies like 8,16,32", param_hint="--latency-sweep"
        )
    return tuple(int(part) for part in parts)


@apps_app.command("create")
def apps_create(
    name: Annotated[str, typer.Option(help="The app's name.")],
    as_json: JsonFlag = False,
) -> None:
    """Create an app; its API key is printed once and only its hash is stored."""
    _valid(AppCreate, as_json, name=name)
    database = _database()
    with database.session_scope() as session:
        created = accounts.create_app(session, name=name, now=SystemClock().now())
        result = {
            "id": created.app.id,
            "name": created.app.name,
            "api_key": created.api_key,
            "api_key_id": created.api_key_id,
        }
    emit(result, as_json=as_json, title="app created (the key is shown only now)")


@apps_app.command("list")
def apps_list(as_json: JsonFlag = False) -> None:
    """List apps."""
    with _database().session_scope(read_only=True) as session:
        rows = [
            {"id": a.id, "name": a.name, "created_at": a.created_at, "disabled_at": a.disabled_at}
            for a in accounts.list_apps(session)
        ]
    emit(rows, as_json=as_json, title="apps")


@apps_app.command("new-key")
def apps_new_key(app_id: str, as_json: JsonFlag = False) -> None:
    """Issue another API key for an app (for rotation); printed once."""
    try:
        with _database().session_scope() as session:
            key_id, key = accounts.issue_api_key(session, app_id=app_id, now=SystemClock().now())
    except KnowpayError as error:
        _fail(error, as_json)
    emit({"app_id": app_id, "api_key_id": key_id, "api_key": key}, as_json=as_json)


@apps_app.command("revoke-keys")
def apps_revoke_keys(app_id: str, as_json: JsonFlag = False) -> None:
    """Revoke every API key of an app at once."""
    try:
        with _database().session_scope() as session:
            count = accounts.revoke_api_keys(session, app_id=app_id, now=SystemClock().now())
    except KnowpayError as error:
        _fail(error, as_json)
    emit({"app_id": app_id, "revoked": count}, as_json=as_json)


@users_app.command("create-staff")
def users_create_staff(
    email: Annotated[str, typer.Option(help="Login email.")],
    role: Annotated[str, typer.Option(help="admin, finance or support.")],
    password: Annotated[
        str | None, typer.Option(help="Password; generated and printed once if omitted.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a staff member."""
    if role not in {r.value for r in STAFF_ROLES}:
        raise typer.BadParameter("role must be admin, finance or support", param_hint="--role")
    chosen = password or secrets.token_urlsafe(12)
    _valid(UserCreate, as_json, email=email, password=chosen)  # the API's own rules
    settings = get_settings()
    try:
        with _database().session_scope() as session:
            user = accounts.create_staff(
                session,
                SecretHasher(settings.password_hash),
                email=email,
                password=chosen,
                role=Role(role),
                now=SystemClock().now(),
            )
            result = {"id": user.id, "email": user.email, "role": user.role}
    except KnowpayError as error:
        _fail(error, as_json)
    if password is None:
        result["password"] = chosen
    emit(result, as_json=as_json, title="staff created")


@ledger_app.command("check")
def ledger_check(as_json: JsonFlag = False) -> None:
    """Verify every ledger invariant; exit 1 naming each violation."""
    with _database().session_scope(read_only=True) as session:
        violations = integrity.check(session)
    found = [{"rule": v.rule, "object_id": v.object_id, "detail": v.detail} for v in violations]
    if as_json:
        emit({"ok": not found, "violations": found}, as_json=True)
    elif found:
        emit(found, as_json=False, title="ledger violations")
    else:
        console.print(
            "[green]ledger ok[/green]: every entry balances and every order matches its postings"
        )
    if found:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()

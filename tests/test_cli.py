"""The `knowpay` command: migrate, apps, users, demo — with `--json` for programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from knowpay.accounts.models import ApiKey, User
from knowpay.cli import main as cli_main
from knowpay.cli.main import app as cli
from knowpay.kit.config import get_settings
from knowpay.kit.crypto import sha256_hex
from knowpay.kit.db import Database
from knowpay.kit.migrations import head_revision

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The CLI on its own SQLite file, as an operator would run it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("KNOWPAY_PASSWORD_HASH__MEMORY_COST_KIB", "64")
    monkeypatch.setenv("KNOWPAY_PASSWORD_HASH__TIME_COST", "1")
    monkeypatch.setenv("KNOWPAY_PASSWORD_HASH__PARALLELISM", "1")
    # `serve` and `demo` set it from --port when unset: put back as it was afterwards.
    monkeypatch.setenv("KNOWPAY_PUBLIC_URL", "unset")
    monkeypatch.delenv("KNOWPAY_PUBLIC_URL")
    get_settings.cache_clear()
    result = runner.invoke(cli, ["migrate", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "migrated": True,
        "database": "sqlite",
        "from_revision": None,
        "revision": head_revision(),
    }
    again = json.loads(runner.invoke(cli, ["migrate", "--json"]).output)
    assert again["from_revision"] == again["revision"] == head_revision()
    yield Database(get_settings())
    get_settings.cache_clear()


def test_apps_create_prints_the_key_once_and_stores_its_hash(cli_env: Database) -> None:
    result = runner.invoke(cli, ["apps", "create", "--name", "web", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["id"].startswith("app_")
    assert created["api_key"].startswith("kp_live_")
    with cli_env.session_scope(read_only=True) as session:
        key = session.scalars(select(ApiKey)).one()
        assert key.key_hash == sha256_hex(created["api_key"])
    listed = runner.invoke(cli, ["apps", "list", "--json"])
    assert created["api_key"] not in listed.output
    assert json.loads(listed.output)[0]["id"] == created["id"]
    revoked = runner.invoke(cli, ["apps", "revoke-keys", created["id"], "--json"])
    assert json.loads(revoked.output) == {"app_id": created["id"], "revoked": 1}


def test_users_create_staff(cli_env: Database) -> None:
    result = runner.invoke(
        cli, ["users", "create-staff", "--email", "Fin@Example.com", "--role", "finance", "--json"]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["role"] == "finance"
    assert len(created["password"]) >= 12
    with cli_env.session_scope(read_only=True) as session:
        assert session.scalars(select(User.email)).one() == "fin@example.com"
    again = runner.invoke(
        cli, ["users", "create-staff", "--email", "fin@example.com", "--role", "admin", "--json"]
    )
    assert again.exit_code == 1
    assert json.loads(again.output)["error"]["code"] == "email_taken"
    bad = runner.invoke(
        cli, ["users", "create-staff", "--email", "x@example.com", "--role", "buyer"]
    )
    assert bad.exit_code == 2


def test_demo_seeds_once_and_can_be_run_again(cli_env: Database) -> None:
    first = runner.invoke(cli, ["demo", "--no-serve", "--json"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, ["demo", "--no-serve", "--json"])
    assert json.loads(first.output) == json.loads(second.output)
    printed = json.loads(first.output)
    assert isinstance(printed["products"], list)
    assert len(printed["products"]) >= 1
    assert printed["logins"]["admin"]["email"] == "admin@demo.knowpay.local"  # structured
    with cli_env.session_scope(read_only=True) as session:
        assert len(session.scalars(select(User)).all()) == 5
        buyer = session.scalars(select(User).where(User.email.startswith("buyer@"))).one()
    logins = json.loads(Path("var/demo.json").read_text())["logins"]
    assert logins["buyer"] == {
        "email": "buyer@demo.knowpay.local",
        "password": "demo-buyer-2026",
        "user_id": buyer.id,
        "payment_password": "135790",  # for paying from the wallet
    }
    assert set(logins) == {"buyer", "creator", "admin", "finance", "support"}


def test_the_demo_on_another_port_points_gateways_and_links_at_that_port(
    cli_env: Database,
) -> None:
    seeded = runner.invoke(cli, ["demo", "--no-serve", "--port", "18123", "--json"])
    assert seeded.exit_code == 0, seeded.output
    summary = json.loads(seeded.output)
    assert summary["api"] == "http://127.0.0.1:18123/docs"
    assert summary["simulators"] == "http://127.0.0.1:18123/sandbox/docs"


def test_an_explicit_public_url_wins_over_the_port(
    cli_env: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWPAY_PUBLIC_URL", "https://pay.example.com")
    get_settings.cache_clear()
    seeded = runner.invoke(cli, ["demo", "--no-serve", "--port", "18123", "--json"])
    assert json.loads(seeded.output)["api"] == "https://pay.example.com/docs"


# Found by a CLI audit --------------------------------------------------------------------------


def test_output_to_a_file_or_pipe_keeps_whole_values(cli_env: Database) -> None:
    """A table as wide as a terminal cut the API key printed once to `kp_live_hSMK…`."""
    result = runner.invoke(cli, ["apps", "create", "--name", "web"])
    assert result.exit_code == 0, result.output
    printed = dict(line.split(": ", 1) for line in result.output.splitlines())
    with cli_env.session_scope(read_only=True) as session:
        assert session.scalars(select(ApiKey.key_hash)).one() == sha256_hex(printed["api_key"])
    listed = runner.invoke(cli, ["apps", "list"])
    assert printed["id"] in listed.output.splitlines()[1].split("\t")


@pytest.mark.parametrize(
    "arguments",
    [
        ["users", "create-staff", "--email", "notanemail", "--role", "admin"],
        ["users", "create-staff", "--email", "a@example.com", "--role", "admin", "--password", "1"],
        ["apps", "create", "--name", ""],
    ],
)
def test_the_cli_refuses_what_the_api_refuses(cli_env: Database, arguments: list[str]) -> None:
    result = runner.invoke(cli, [*arguments, "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.output)["error"]["code"] == "validation_error"
    with cli_env.session_scope(read_only=True) as session:
        assert session.scalars(select(User)).all() == []


def _knowpay(
    tmp_path: Path, *arguments: str, **environment: str
) -> subprocess.CompletedProcess[str]:
    """`knowpay …` in a process of its own, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "knowpay.cli.main", *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, **environment},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("environment", "says"),
    [
        ({"KNOWPAY_ENVIRONMENT": "production"}, "it is the development key"),
        # Found by an operations audit: "Production" ran as development, on the dev key.
        ({"KNOWPAY_ENVIRONMENT": "Production"}, "it is the development key"),
        ({"KNOWPAY_ENVIRONMENT": "prod"}, "environment"),
        ({"KNOWPAY_ENVIRONMENT": "production", "KNOWPAY_SECRET_KEY": "abc"}, "32 characters"),
        ({"KNOWPAY_PUBLIC_URL": "knowpay.example.com"}, "KNOWPAY_PUBLIC_URL"),
        ({"KNOWPAY_REDIS_URL": "notaurl"}, "KNOWPAY_REDIS_URL"),
        ({"KNOWPAY_CONFIG": "/nonexistent/knowpay.toml"}, "cannot be read"),
        ({"KNOWPAY_CONFIG": "{tmp}"}, "cannot be read"),  # a directory
        ({"KNOWPAY_CONFIG": "{tmp}/bad.toml"}, "not TOML"),
    ],
)
def test_every_command_refuses_a_configuration_that_cannot_be_right(
    tmp_path: Path, environment: dict[str, str], says: str
) -> None:
    """Found by an operations audit: these ran on defaults without a word (a config file
    not found, "Production"), sealed secrets with the development key (`gateways set` in
    production), or died with a traceback (bad TOML, a Redis URL that is none)."""
    (tmp_path / "bad.toml").write_text("database_url sqlite\n")
    filled = {name: value.format(tmp=tmp_path) for name, value in environment.items()}
    for command in (["ledger", "check", "--json"], ["gateways", "list", "--json"]):
        done = _knowpay(tmp_path, *command, **filled)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        error = json.loads(done.stdout)["error"]
        assert error["code"] == "configuration_invalid"
        assert says in error["detail"]
        assert "Traceback" not in done.stderr


def test_toml_keys_are_read_in_any_case_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "knowpay.toml"
    config.write_text(
        'PUBLIC_URL = "https://pay.example.com"\n[ALIPAY]\nAPP_ID = "2021000"\n'
        '[SECURITY_HEADERS.CSP_BY_PREFIX]\n"/Docs/X" = "default-src \'none\'"\n'
    )
    monkeypatch.setenv("KNOWPAY_CONFIG", str(config))
    monkeypatch.delenv("KNOWPAY_PUBLIC_URL", raising=False)
    monkeypatch.delenv("KNOWPAY_ALIPAY__APP_ID", raising=False)
    from knowpay.kit.config import load_settings

    settings = load_settings()
    assert (settings.public_url, settings.alipay.app_id) == ("https://pay.example.com", "2021000")
    # The keys of a mapping are data, not setting names: kept as written.
    assert settings.security_headers.csp_by_prefix == {"/Docs/X": "default-src 'none'"}
    monkeypatch.setenv("KNOWPAY_ALIPAY__APP_ID", "from-env")
    assert load_settings().alipay.app_id == "from-env"


def test_serve_and_worker_refuse_a_gateway_key_that_does_not_load_before_they_start(
    cli_env: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an operations audit: `serve` died in every server process with 236 lines of
    tracebacks; `worker` too."""
    not_a_key = tmp_path / "hostname"
    not_a_key.write_text("knowpay-host\n")
    monkeypatch.setenv("KNOWPAY_ALIPAY__APP_ID", "2021000")
    monkeypatch.setenv("KNOWPAY_ALIPAY__PRIVATE_KEY", str(not_a_key))
    monkeypatch.setenv("KNOWPAY_ALIPAY__ALIPAY_PUBLIC_KEY", str(not_a_key))
    get_settings.cache_clear()
    for command in (["serve", "--port", "1"], ["worker", "--once"]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 2, result.output
        assert "configuration_invalid" in result.output
        assert "alipay" in result.output
        assert "knowpay-host" not in result.output


def test_demo_does_not_seed_known_logins_in_production(
    cli_env: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWPAY_ENVIRONMENT", "production")
    monkeypatch.setenv("KNOWPAY_SECRET_KEY", "k" * 40)
    get_settings.cache_clear()
    result = runner.invoke(cli, ["demo", "--no-serve", "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.output)["error"]["code"] == "demo_in_production"
    with cli_env.session_scope(read_only=True) as session:
        assert session.scalars(select(User)).all() == []


@pytest.mark.parametrize(
    ("database_url", "exit_code", "code"),
    [
        ("garbage", 2, "configuration_invalid"),
        ("sqlite:///{tmp}/never-migrated.db", 1, "database_not_migrated"),
        ("postgresql://postgres@127.0.0.1:1/nothing", 1, "database_unavailable"),
    ],
)
def test_a_bad_configuration_or_database_is_a_sentence_not_a_traceback(
    tmp_path: Path, database_url: str, exit_code: int, code: str
) -> None:
    environment = {
        **os.environ,
        "KNOWPAY_DATABASE_URL": database_url.format(tmp=tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "knowpay.cli.main", "ledger", "check", "--json"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == exit_code, done.stderr
    assert json.loads(done.stdout)["error"]["code"] == code
    assert "Traceback" not in done.stderr


def test_only_the_settings_validation_is_called_a_bad_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From a review: any pydantic error of a command was told as `configuration_invalid`."""
    from pydantic import BaseModel, ValidationError

    from knowpay.cli import main as cli_main

    class Other(BaseModel):
        count: int

    def raises_another_models_error() -> None:
        Other.model_validate({"count": "many"})

    monkeypatch.setattr(cli_main, "app", raises_another_models_error)
    with pytest.raises(ValidationError, match="count"):
        cli_main.main()


def test_a_gateway_field_from_a_file_that_is_not_utf8_is_a_usage_error_naming_it(
    cli_env: Database, tmp_path: Path
) -> None:
    (tmp_path / "merchant.der").write_bytes(b"\x30\x82\x04\xbe\xff\xfe not text")
    # a relative path (cli_env works in tmp_path), so the message fits the error box's lines
    result = runner.invoke(
        cli, ["gateways", "set", "alipay", "--field", "private_key=@merchant.der"]
    )
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, UnicodeDecodeError)
    assert "merchant.der" in result.output
    assert "not UTF-8" in result.output
    listed = runner.invoke(cli, ["gateways", "list", "--json"])
    assert "private_key" not in listed.output  # nothing was stored


@pytest.mark.parametrize("command", ["serve", "demo", "sandbox"])
@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1"])
def test_a_port_outside_1_to_65535_is_a_usage_error_before_anything_listens(
    cli_env: Database, monkeypatch: pytest.MonkeyPatch, command: str, port: str
) -> None:
    listened: list[object] = []
    monkeypatch.setattr(cli_main.uvicorn, "run", lambda *a, **kw: listened.append(kw["port"]))
    result = runner.invoke(cli, [command, "--port", port])
    assert result.exit_code == 2, result.output
    assert "--port" in result.output
    assert "running on" not in result.output
    assert listened == []


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serve_and_demo_keep_idle_connections_as_configured(
    cli_env: Database, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """(tests/test_serve_keep_alive.py shows `serve`'s default over a real socket.)"""
    kept: list[object] = []
    monkeypatch.setenv("KNOWPAY_KEEP_ALIVE_S", "90")
    get_settings.cache_clear()
    monkeypatch.setattr(
        cli_main.uvicorn, "run", lambda *a, **kw: kept.append(kw["timeout_keep_alive"])
    )
    result = runner.invoke(cli, [command, "--port", "18431"])
    assert result.exit_code == 0, result.output
    assert kept == [90]


@pytest.mark.parametrize("sweep", ["8,x", "0", "-4", "８"])
def test_a_latency_sweep_that_is_no_list_of_concurrencies_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, sweep: str
) -> None:
    from knowpay.bench import run as bench_run

    started: list[object] = []
    monkeypatch.setattr(bench_run, "run_bench", lambda *a, **kw: started.append(a))
    result = runner.invoke(cli, ["bench", "--latency-sweep", sweep])
    assert result.exit_code == 2, result.output
    assert "--latency-sweep" in result.output
    assert started == []


def test_backup_copies_the_sqlite_database_and_the_copy_runs_as_it_was(
    cli_env: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = runner.invoke(cli, ["apps", "create", "--name", "kept", "--json"])
    assert made.exit_code == 0, made.output
    app_id = json.loads(made.output)["id"]
    copy = tmp_path / "backup.db"
    done = runner.invoke(cli, ["backup", str(copy), "--json"])
    assert done.exit_code == 0, done.output
    answer = json.loads(done.output)
    assert (answer["backup"], answer["revision"]) == (str(copy), head_revision())
    assert answer["bytes"] > 0
    again = runner.invoke(cli, ["backup", str(copy), "--json"])
    assert (again.exit_code, json.loads(again.output)["error"]["code"]) == (1, "backup_exists")
    nowhere = runner.invoke(cli, ["backup", str(tmp_path / "no" / "such" / "dir.db"), "--json"])
    assert (nowhere.exit_code, json.loads(nowhere.output)["error"]["code"]) == (1, "backup_failed")
    # Restoring is pointing knowpay at the copy (or copying it back while knowpay is stopped).
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", f"sqlite:///{copy}")
    get_settings.cache_clear()
    listed = runner.invoke(cli, ["apps", "list", "--json"])
    assert app_id in listed.output
    checked = runner.invoke(cli, ["ledger", "check", "--json"])
    assert (checked.exit_code, json.loads(checked.output)["ok"]) == (0, True)


def test_backup_of_postgresql_points_at_its_own_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    get_settings.cache_clear()
    result = runner.invoke(cli, ["backup", str(tmp_path / "never.db"), "--json"])
    assert result.exit_code == 2
    assert "pg_dump" in json.loads(result.output)["error"]["detail"]

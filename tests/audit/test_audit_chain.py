"""The hash chain: sealed in one order by one sealer, append-only in the database, and
`knowpay audit verify` names the first record that was edited or follows a deleted one."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from knowpay.audit import service as audit
from knowpay.audit import tasks
from knowpay.audit.chain import GENESIS, ChainRow, record_hash
from knowpay.audit.models import AuditRecord
from knowpay.cli.main import app as cli
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings, get_settings
from knowpay.kit.db import Database
from knowpay.worker.runner import Worker
from tests.builders import Builders, Shop

runner = CliRunner()


def _write(database: Database, count: int, prefix: str = "t") -> None:
    for n in range(count):
        with database.session_scope() as session:
            audit.record(
                session,
                action="test.changed",
                object_type="thing",
                object_id=f"{prefix}{n}",
                before={"status": "a"},
                after={"status": "b", "amount": n},
            )


def _sealed(database: Database) -> list[AuditRecord]:
    with database.session_scope(read_only=True) as session:
        return list(
            session.scalars(
                select(AuditRecord).where(AuditRecord.seq.is_not(None)).order_by(AuditRecord.seq)
            ).all()
        )


def _verify(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, *, as_json: bool = True
) -> tuple[int, str]:
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        result = runner.invoke(cli, ["audit", "verify", *(["--json"] if as_json else [])])
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def _tamper(database: Database, sql: str, **params: object) -> None:
    """What someone with direct SQL access could do after switching the guards off."""
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
            connection.execute(text(sql), params)
            connection.execute(text("ALTER TABLE audit_records ENABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS audit_records_no_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS audit_records_no_delete"))
            connection.execute(text(sql), params)


def test_sealing_chains_every_record_in_id_order(database: Database, clock: FrozenClock) -> None:
    _write(database, 5)
    assert tasks.seal_pending(database, clock) == 5
    assert tasks.seal_pending(database, clock) == 0
    _write(database, 2, prefix="u")
    assert tasks.seal_pending(database, clock) == 2
    records = _sealed(database)
    assert [r.seq for r in records] == list(range(1, 8))
    assert [r.id for r in records[:5]] == sorted(r.id for r in records[:5])
    previous = GENESIS
    for record in records:
        row = ChainRow(
            record.id,
            record.created_at,
            record.actor,
            record.ip,
            record.request_id,
            record.action,
            record.object_type,
            record.object_id,
            record.before_json,
            record.after_json,
        )
        assert record.prev_hash == previous
        assert record.hash == record_hash(row, record.seq or 0, previous)
        assert record.sealed_at == clock.now()
        previous = record.hash


def test_sealing_is_a_scheduled_worker_job(
    app: FastAPI, build: Builders, database: Database, settings: Settings, clock: FrozenClock
) -> None:
    shop = Shop(build)
    shop.confirm(shop.pay(shop.order()))
    worker = Worker(settings, database, clock, app.state.channel_registry)
    sealed = worker.run_jobs_once()["seal_audit_log"]
    assert isinstance(sealed, int)
    assert sealed >= 2
    assert len(_sealed(database)) == sealed


def test_verify_passes_on_an_intact_chain(
    build: Builders, database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(build)
    for _ in range(2):
        shop.confirm(shop.pay(shop.order()))
    code, output = _verify(settings, monkeypatch)
    report = json.loads(output)
    assert code == 0, output
    assert report["ok"] is True
    assert report["broken"] is None
    assert report["records"] == report["sealed_now"] == report["head"]["position"] > 0
    assert report["unsealed"] == 0
    code, output = _verify(settings, monkeypatch, as_json=False)
    assert code == 0
    assert f"{report['records']} records, chain intact" in output


def test_verify_on_an_empty_log(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = _verify(settings, monkeypatch)
    assert code == 0
    assert json.loads(output)["records"] == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("after_json", '{"amount":999999,"status":"b"}'),
        ("actor", "staff:usr_someone_else"),
        ("object_id", "t_other"),
    ],
)
def test_verify_names_an_edited_record(
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    column: str,
    value: str,
) -> None:
    _write(database, 6)
    tasks.seal_pending(database, clock)
    victim = _sealed(database)[3]
    _tamper(
        database,
        f"UPDATE audit_records SET {column} = :value WHERE id = :id",
        value=value,
        id=victim.id,
    )
    code, output = _verify(settings, monkeypatch)
    report = json.loads(output)
    assert code == 1, output
    assert report["ok"] is False
    assert report["broken"] == {
        "id": victim.id,
        "position": 4,
        "reason": "hash mismatch: the record was changed after it was sealed",
    }
    code, output = _verify(settings, monkeypatch, as_json=False)
    assert code == 1
    assert victim.id in output
    assert "position 4" in output


def test_verify_names_the_record_after_a_deleted_one(
    database: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(database, 6)
    tasks.seal_pending(database, clock)
    records = _sealed(database)
    _tamper(database, "DELETE FROM audit_records WHERE id = :id", id=records[2].id)
    code, output = _verify(settings, monkeypatch)
    report = json.loads(output)
    assert code == 1
    assert report["broken"]["id"] == records[3].id
    assert report["broken"]["position"] == 4
    assert "position 3 missing" in report["broken"]["reason"]


def test_verify_names_a_record_whose_predecessor_was_rewritten_with_a_new_hash(
    database: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(database, 4)
    tasks.seal_pending(database, clock)
    records = _sealed(database)
    # Renumber after deleting the first record, as if it never existed. In two shifts: the
    # unique index on seq is checked row by row, and the rows' scan order need not be seq
    # order (ids made in the same millisecond sort at random), so `seq - 1` at once can
    # collide.
    _tamper(database, "DELETE FROM audit_records WHERE id = :id", id=records[0].id)
    _tamper(database, "UPDATE audit_records SET seq = seq + 1000")
    _tamper(database, "UPDATE audit_records SET seq = seq - 1001")
    code, output = _verify(settings, monkeypatch)
    report = json.loads(output)
    assert code == 1
    assert report["broken"]["id"] == records[1].id
    assert "prev_hash" in report["broken"]["reason"]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_records",
        "UPDATE audit_records SET actor = 'x'",
        "UPDATE audit_records SET hash = 'x'",
        "UPDATE audit_records SET seq = seq + 100",
    ],
)
def test_the_database_refuses_to_change_or_delete_sealed_records(
    database: Database, clock: FrozenClock, statement: str
) -> None:
    _write(database, 2)
    tasks.seal_pending(database, clock)
    with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as connection:
        connection.execute(text(statement))


def test_the_database_refuses_to_edit_an_unsealed_record_or_seal_it_with_other_changes(
    database: Database,
) -> None:
    _write(database, 1)
    for statement in (
        "UPDATE audit_records SET actor = 'x'",
        "UPDATE audit_records SET seq = 1, prev_hash = 'p', hash = 'h', "
        "sealed_at = created_at, actor = 'x'",
        "DELETE FROM audit_records",
    ):
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as c:
            c.execute(text(statement))


def test_concurrent_writers_and_sealers_produce_one_intact_chain(
    database: Database, clock: FrozenClock
) -> None:
    """On PostgreSQL: many transactions inserting records while two sealers race."""
    writers, per_writer = 8, 15
    done = threading.Event()
    errors: list[BaseException] = []

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        return run

    def write(n: int) -> Callable[[], None]:
        return lambda: _write(database, per_writer, prefix=f"w{n}-")

    def seal() -> None:
        while not done.is_set():
            tasks.seal_pending(database, clock)

    sealers = [threading.Thread(target=guarded(seal)) for _ in range(2)]
    threads = [threading.Thread(target=guarded(write(n))) for n in range(writers)]
    for thread in sealers + threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    for thread in sealers:
        thread.join(timeout=120)
    assert errors == []
    tasks.seal_pending(database, clock, wait=True)
    with database.session_scope(read_only=True) as session:
        result = audit.verify(session)
    assert result.ok, result.broken
    assert result.records == result.head_position == writers * per_writer
    assert result.unsealed == 0

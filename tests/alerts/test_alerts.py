"""Raising alerts: a subject longer than its column is kept at the column's width, and an
open alert about it is found again by the same (clamped) subject."""

from __future__ import annotations

from sqlalchemy import select

from knowpay.alerts.models import Alert
from knowpay.alerts.service import SUBJECT_WIDTH, raise_alert_once
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database


def test_a_long_subject_is_stored_at_the_columns_width_and_alerted_once(
    database: Database, clock: FrozenClock
) -> None:
    # A payment id and a gateway's trade number of 200 characters, as a mismatch names them.
    subject = "pay_1:" + "t" * 200
    with database.session_scope() as session:
        first = raise_alert_once(
            session, kind="gateway_trade_mismatch", subject_id=subject, message="m", now=clock.now()
        )
        again = raise_alert_once(
            session, kind="gateway_trade_mismatch", subject_id=subject, message="m", now=clock.now()
        )
    assert first is not None
    assert again is None
    with database.session_scope(read_only=True) as session:
        [stored] = session.scalars(select(Alert.subject_id)).all()
    assert stored == subject[:SUBJECT_WIDTH]

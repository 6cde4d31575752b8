"""Reconciliation for UnionPay against the simulator's settlement file, over real HTTP:
knowpay and the simulator each on a port of its own (the harness of the UnionPay contract
tests). Payments paid and refunded over the protocol match their lines; a payment whose
notification was lost, which UnionPay was paid for, is found and named."""

from __future__ import annotations

from datetime import UTC, datetime

from knowpay.channels.unionpay import transformers
from knowpay.reconciliation import service as reconciliation
from knowpay.reconciliation import tasks as reconciliation_tasks
from tests.contracts import test_unionpay_over_http as harness

# The UnionPay contract tests' simulator and knowpay, on their own ports.
sandbox = harness.sandbox
world = harness.world


def test_a_unionpay_day_reconciles_and_a_planted_discrepancy_is_found(
    world: harness.World,
) -> None:
    _, paid = world.paid()
    refunded_order, refunded = world.paid()
    refund = world.refund(refunded_order, amount=1500)
    harness.wait_for(lambda: world.refund_status(refund) == "succeeded")
    # Planted: the payer pays at UnionPay, but its notification never reaches knowpay.
    lost_order, lost = world.start()
    world.sandbox.fault("lost", lost["id"])
    world.open_at_unionpay(lost)
    world.sandbox.pay(lost["id"])
    harness.wait_for(lambda: bool(world.sandbox.deliveries(lost["id"])))
    assert world.order_status(lost_order) == "created"

    source = reconciliation_tasks.bill_sources(world.app.state.channel_registry)["unionpay"]
    now = datetime.now(UTC)
    day = now.astimezone(transformers.BEIJING).date()
    bill = source.fetch(day)
    with world.database.session_scope() as session:
        run_id = reconciliation.start_run(session, "unionpay", day, "finance:x", now).id
        reconciliation.finish_run(session, run_id, source, bill, now)
        found = {
            (d.kind, d.line_kind, d.payment_id or d.out_trade_no)
            for d in reconciliation.discrepancies_of(session, run_id)
        }
        run = reconciliation.get_run(session, run_id)
        status, matched = run.status, run.matched

    ids = {paid["id"], refunded["id"], lost["id"]}
    assert {entry for entry in found if entry[2] in ids} == {
        ("status_mismatch", "payment", lost["id"]),  # UnionPay was paid; knowpay: pending
    }
    assert status == "discrepancies"
    assert matched >= 3  # the two captures and the refund
    lines = [(x.kind, x.amount.amount_minor) for x in bill.lines if x.out_trade_no in ids]
    assert sorted(lines) == [("payment", 9900)] * 3 + [("refund", 1500)]

"""The simulated UnionPay's own records: in memory, one lock.

A front consume is opened when the browser posts it and becomes a transaction only when the
payer pays: until then a query answers 34 (no such transaction), as UnionPay's does. A
transaction is found by orderId and txnTime together, or by its queryId."""

from __future__ import annotations

import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Literal

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y%m%d%H%M%S"
ConsumeStatus = Literal["opened", "paid"]


class TxnError(Exception):
    """A refusal, answered with UnionPay's respCode and respMsg."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def now_beijing() -> datetime:
    return datetime.now(BEIJING).replace(microsecond=0)


@dataclass
class Refund:
    order_id: str
    txn_time: str
    amount: int
    query_id: str
    back_url: str | None
    req_reserved: str | None
    created_at: datetime
    trace_no: str
    done: bool = False


@dataclass
class Consume:
    order_id: str
    txn_time: str
    amount: int
    channel_type: str
    front_url: str | None
    back_url: str | None
    pay_timeout: datetime | None
    commodity: str
    token: str
    opened_at: datetime
    status: ConsumeStatus = "opened"
    query_id: str | None = None
    trace_no: str | None = None
    paid_at: datetime | None = None
    refunds: dict[str, Refund] = field(default_factory=dict)

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds.values())

    def expired(self, now: datetime) -> bool:
        return self.pay_timeout is not None and now > self.pay_timeout


class Book:
    """Every consume and refund of the simulated merchant."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._consumes: dict[tuple[str, str], Consume] = {}
        self._by_token: dict[str, Consume] = {}
        self._by_query_id: dict[str, Consume] = {}
        self._refunds: dict[tuple[str, str], tuple[Consume, Refund]] = {}
        self._serial = itertools.count(1)

    def _query_id(self, now: datetime) -> str:
        """21 digits, as UnionPay's queryId."""
        return f"{now:%y%m%d%H%M%S}{next(self._serial) % 1000:03d}{secrets.randbelow(10**6):06d}"

    def open(
        self,
        *,
        order_id: str,
        txn_time: str,
        amount: int,
        channel_type: str,
        front_url: str | None,
        back_url: str | None,
        pay_timeout: datetime | None,
        commodity: str,
    ) -> Consume:
        """The browser posted a front consume: open it, or show the same one again."""
        with self._lock:
            key = (order_id, txn_time)
            found = self._consumes.get(key)
            if found is not None:
                if found.status == "paid" or found.amount != amount:
                    raise TxnError("12", "重复交易")
                return found
            if any(r_key == key for r_key in self._refunds):
                raise TxnError("12", "重复交易")
            consume = Consume(
                order_id=order_id,
                txn_time=txn_time,
                amount=amount,
                channel_type=channel_type,
                front_url=front_url,
                back_url=back_url,
                pay_timeout=pay_timeout,
                commodity=commodity,
                token=secrets.token_urlsafe(12),
                opened_at=now_beijing(),
            )
            self._consumes[key] = consume
            self._by_token[consume.token] = consume
            return consume

    def by_token(self, token: str) -> Consume | None:
        with self._lock:
            return self._by_token.get(token)

    def latest(self, order_id: str) -> Consume | None:
        """The consume with this orderId opened last."""
        with self._lock:
            found = [c for (o, _), c in self._consumes.items() if o == order_id]
            return max(found, key=lambda c: c.opened_at) if found else None

    def by_query_id(self, query_id: str) -> Consume | None:
        with self._lock:
            return self._by_query_id.get(query_id)

    def find(self, order_id: str, txn_time: str) -> Consume | tuple[Consume, Refund] | None:
        """The transaction a query names (a consume not paid yet is none)."""
        with self._lock:
            consume = self._consumes.get((order_id, txn_time))
            if consume is not None:
                return consume if consume.status == "paid" else None
            return self._refunds.get((order_id, txn_time))

    def consume_order_of(self, order_id: str | None, txn_time: str | None) -> str | None:
        """The consume's orderId behind a refund's orderId (else the orderId itself)."""
        with self._lock:
            pair = self._refunds.get((order_id or "", txn_time or ""))
            return pair[0].order_id if pair else order_id

    def pay(self, consume: Consume) -> None:
        """The payer pays: TxnError when it cannot be paid (paid already, timed out)."""
        with self._lock:
            now = now_beijing()
            if consume.status == "paid":
                raise TxnError("12", "重复交易")
            if consume.expired(now):
                raise TxnError("40", "订单已超过支付时限")  # the simulator's wording
            consume.status = "paid"
            consume.paid_at = now
            consume.query_id = self._query_id(now)
            consume.trace_no = f"{secrets.randbelow(10**6):06d}"
            self._by_query_id[consume.query_id] = consume

    def refund(
        self,
        *,
        orig_query_id: str,
        order_id: str,
        txn_time: str,
        amount: int,
        back_url: str | None,
        req_reserved: str | None,
    ) -> tuple[Consume, Refund]:
        """Accept a refund of a paid consume (its result comes later)."""
        with self._lock:
            if (order_id, txn_time) in self._refunds or (order_id, txn_time) in self._consumes:
                raise TxnError("12", "重复交易")
            consume = self._by_query_id.get(orig_query_id)
            if consume is None or consume.status != "paid":
                raise TxnError("35", "原交易不存在或状态不正确")
            if amount <= 0 or consume.refunded + amount > consume.amount:
                raise TxnError("36", "退货金额超过原交易可退金额")  # the simulator's wording
            now = now_beijing()
            refund = Refund(
                order_id=order_id,
                txn_time=txn_time,
                amount=amount,
                query_id=self._query_id(now),
                back_url=back_url,
                req_reserved=req_reserved,
                created_at=now,
                trace_no=f"{secrets.randbelow(10**6):06d}",
            )
            consume.refunds[order_id] = refund
            self._refunds[(order_id, txn_time)] = (consume, refund)
            return consume, refund

    def finish_refund(self, refund: Refund) -> None:
        with self._lock:
            refund.done = True

    def settled_on(self, day: date) -> list[tuple[Consume, Refund | None]]:
        """The paid consumes and done refunds whose settleDate is that (Beijing) day, in
        the order they happened: a consume alone, a refund with its consume."""
        with self._lock:
            found: list[tuple[datetime, Consume, Refund | None]] = []
            for consume in self._consumes.values():
                if consume.paid_at is not None and consume.paid_at.date() == day:
                    found.append((consume.paid_at, consume, None))
                for refund in consume.refunds.values():
                    if refund.done and refund.created_at.date() == day:
                        found.append((refund.created_at, consume, refund))
            found.sort(key=lambda item: item[0])
            return [(consume, refund) for _, consume, refund in found]

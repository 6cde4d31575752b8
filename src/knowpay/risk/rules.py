"""How each rule kind matches one attempt. Facts about the attempt (counts, history, the
account's age, blacklist hits) are loaded on first use and at most once per assessment."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from knowpay.accounts import service as accounts
from knowpay.accounts.errors import UserNotFound
from knowpay.risk import repository
from knowpay.risk.models import RiskBlacklistEntry, RiskRule
from knowpay.risk.schemas import (
    AmountAnomalyParams,
    BlacklistKind,
    FailedStreakParams,
    NewAccountParams,
    RuleKind,
    VelocityParams,
    parse_params,
)
from knowpay.risk.states import AttemptOutcome

logger = logging.getLogger("knowpay.risk")


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched, and why in words staff can act on."""

    rule: RiskRule
    detail: str


@dataclass(slots=True)
class Facts:
    """What the rules may ask about one attempt; each answer is queried once."""

    session: Session
    user_id: str
    client_ip: str | None
    device_id: str | None
    amount_minor: int
    currency: str
    now: datetime
    _counts: dict[tuple[str, str, int], int] = field(default_factory=dict)
    _blacklist: list[RiskBlacklistEntry] | None = None
    _succeeded: tuple[int, int] | None = None
    _account_created_at: tuple[datetime | None] | None = None

    def subject_value(self, subject: str) -> str | None:
        return {"buyer": self.user_id, "ip": self.client_ip, "device": self.device_id}[subject]

    def attempts_within(self, subject: str, value: str, window_s: int) -> int:
        key = (subject, value, window_s)
        if key not in self._counts:
            since = self.now - timedelta(seconds=window_s)
            self._counts[key] = repository.count_attempts(self.session, subject, value, since)
        return self._counts[key]

    def blacklist_hits(self) -> list[RiskBlacklistEntry]:
        if self._blacklist is None:
            candidates = [
                (BlacklistKind.BUYER.value, self.user_id),
                *([(BlacklistKind.IP.value, self.client_ip)] if self.client_ip else []),
                *([(BlacklistKind.DEVICE.value, self.device_id)] if self.device_id else []),
            ]
            self._blacklist = repository.blacklist_hits(self.session, candidates)
        return self._blacklist

    def succeeded_history(self) -> tuple[int, int]:
        """How many payments the buyer completed in this currency, and their total."""
        if self._succeeded is None:
            self._succeeded = repository.outcome_totals(
                self.session, self.user_id, self.currency, AttemptOutcome.SUCCEEDED.value
            )
        return self._succeeded

    def account_created_at(self) -> datetime | None:
        if self._account_created_at is None:
            try:
                created = accounts.get_user(self.session, self.user_id).created_at
            except UserNotFound:
                created = None
            self._account_created_at = (created,)
        return self._account_created_at[0]


def _velocity(params: VelocityParams, facts: Facts) -> str | None:
    value = facts.subject_value(params.subject)
    if value is None:
        return None
    count = facts.attempts_within(params.subject, value, params.window_s)
    if count < params.max_attempts:
        return None
    return (
        f"{params.subject} {value} made {count} attempts in the last {params.window_s} s "
        f"(at most {params.max_attempts} allowed)"
    )


def _failed_streak(params: FailedStreakParams, facts: Facts) -> str | None:
    since = facts.now - timedelta(seconds=params.window_s)
    finished = (AttemptOutcome.SUCCEEDED.value, AttemptOutcome.FAILED.value)
    outcomes = repository.latest_finished_outcomes(
        facts.session, facts.user_id, since, finished, params.max_failures
    )
    if len(outcomes) < params.max_failures or any(o != AttemptOutcome.FAILED for o in outcomes):
        return None
    return (
        f"the buyer's last {params.max_failures} attempts in the last {params.window_s} s "
        "all failed"
    )


def _blacklist(_params: Any, facts: Facts) -> str | None:
    hits = facts.blacklist_hits()
    if not hits:
        return None
    return "blacklisted " + ", ".join(f"{hit.kind} {hit.value}" for hit in hits)


def _amount_anomaly(params: AmountAnomalyParams, facts: Facts) -> str | None:
    count, total = facts.succeeded_history()
    if count < params.min_history or count == 0:
        return None
    # amount > multiplier × total / count, in exact arithmetic.
    if Decimal(facts.amount_minor * count) <= params.multiplier * Decimal(total):
        return None
    return (
        f"amount {facts.amount_minor} {facts.currency} is more than {params.multiplier} × the "
        f"buyer's average of {total // count} over {count} succeeded payments"
    )


def _new_account(params: NewAccountParams, facts: Facts) -> str | None:
    if facts.currency != params.currency or facts.amount_minor <= params.max_amount_minor:
        return None
    created_at = facts.account_created_at()
    # An account risk control cannot find is treated as brand new.
    age_s = 0 if created_at is None else int((facts.now - created_at).total_seconds())
    if age_s >= params.max_account_age_s:
        return None
    return (
        f"account is {age_s} s old (younger than {params.max_account_age_s} s) and pays "
        f"{facts.amount_minor} {facts.currency} (more than {params.max_amount_minor})"
    )


_MATCHERS: dict[RuleKind, Callable[[Any, Facts], str | None]] = {
    RuleKind.VELOCITY: _velocity,
    RuleKind.FAILED_STREAK: _failed_streak,
    RuleKind.BLACKLIST: _blacklist,
    RuleKind.AMOUNT_ANOMALY: _amount_anomaly,
    RuleKind.NEW_ACCOUNT: _new_account,
}


def parsed(rules: list[RiskRule]) -> list[tuple[RiskRule, Any]]:
    """Each rule with its params parsed. Params are validated on every write, so a rule that
    fails here was edited behind the API: it is logged and left out, not allowed to stop
    every payment."""
    result: list[tuple[RiskRule, Any]] = []
    for rule in rules:
        try:
            result.append((rule, parse_params(RuleKind(rule.kind), rule.params)))
        except (ValueError, ValidationError):
            logger.error("risk rule %s has invalid params; skipped", rule.id)
    return result


def velocity_lock_keys(rules: list[tuple[RiskRule, Any]], facts: Facts) -> list[str]:
    """The subjects whose attempt counts this assessment reads."""
    keys = []
    for rule, params in rules:
        if rule.kind == RuleKind.VELOCITY:
            value = facts.subject_value(params.subject)
            if value is not None:
                keys.append(f"{params.subject}:{value}")
    return keys


def evaluate(rules: list[tuple[RiskRule, Any]], facts: Facts) -> list[Match]:
    """Every matching rule, in the given (priority) order."""
    matches = []
    for rule, params in rules:
        detail = _MATCHERS[RuleKind(rule.kind)](params, facts)
        if detail is not None:
            matches.append(Match(rule, detail))
    return matches

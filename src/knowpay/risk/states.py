"""The risk domain's statuses and the only place they change."""

from __future__ import annotations

from enum import StrEnum

from knowpay.risk.errors import ReviewAlreadyDecided


class Decision(StrEnum):
    """What risk control says about one payment attempt."""

    ALLOW = "allow"
    """No enabled rule matched: the attempt goes to the gateway."""
    REVIEW = "review"
    """A review rule matched (and no deny rule): the attempt is held until staff decide."""
    DENY = "deny"
    """A deny rule matched: the attempt never reaches the gateway."""


class ReviewStatus(StrEnum):
    """Where a held attempt stands with staff."""

    OPEN = "open"
    """Waiting for staff; the attempt has not been sent to the gateway."""
    RELEASED = "released"
    """Staff let it through; the payments domain sends it to the gateway."""
    REJECTED = "rejected"
    """Staff refused it; the attempt never reaches the gateway."""
    CLOSED = "closed"
    """Nobody decided: the attempt closed first (its order expired or was closed, or another
    attempt paid it), so there is nothing left to release."""


class ReviewOutcome(StrEnum):
    RELEASE = "release"
    REJECT = "reject"


class AttemptOutcome(StrEnum):
    """What became of an assessed attempt, as the risk log knows it."""

    PENDING = "pending"
    """No final word yet (sent, held for review, or abandoned)."""
    SUCCEEDED = "succeeded"
    """The buyer paid: counts in the buyer's history of amounts."""
    FAILED = "failed"
    """The gateway said no or the attempt failed: counts towards a failed streak."""
    DENIED = "denied"
    """Risk control stopped it (deny, or a rejected review): no payment evidence either way."""


_REVIEW_MOVES: dict[tuple[ReviewStatus, ReviewOutcome], ReviewStatus] = {
    (ReviewStatus.OPEN, ReviewOutcome.RELEASE): ReviewStatus.RELEASED,
    (ReviewStatus.OPEN, ReviewOutcome.REJECT): ReviewStatus.REJECTED,
}

# A success is final; a late success after a failure wins (the gateway is the authority);
# what risk control stopped stays stopped.
_OUTCOME_MOVES: dict[AttemptOutcome, frozenset[AttemptOutcome]] = {
    AttemptOutcome.PENDING: frozenset(
        {AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED, AttemptOutcome.DENIED}
    ),
    AttemptOutcome.FAILED: frozenset({AttemptOutcome.SUCCEEDED}),
    AttemptOutcome.SUCCEEDED: frozenset(),
    AttemptOutcome.DENIED: frozenset(),
}


def next_review_status(current: ReviewStatus, outcome: ReviewOutcome) -> ReviewStatus:
    """The review status after staff's outcome; 409 when it was already decided."""
    after = _REVIEW_MOVES.get((current, outcome))
    if after is None:
        raise ReviewAlreadyDecided(
            f"This review is already {current.value}.", review_status=current.value
        )
    return after


def outcome_may_move(current: AttemptOutcome, to: AttemptOutcome) -> bool:
    """Whether an attempt's recorded outcome may change from `current` to `to`."""
    return to in _OUTCOME_MOVES[current]


def outcomes_allowing(to: AttemptOutcome) -> frozenset[AttemptOutcome]:
    """The outcomes from which `to` may be recorded."""
    return frozenset(current for current, moves in _OUTCOME_MOVES.items() if to in moves)

"""Shared by the fuzz tests: how much to fuzz (KNOWPAY_FUZZ_EXAMPLES) and a tally of what was
sent, which tests/fuzz/conftest.py prints at the end of the run."""

from __future__ import annotations

import os
from collections import Counter

FUZZ_EXAMPLES_ENV = "KNOWPAY_FUZZ_EXAMPLES"

TALLY: dict[str, Counter[str]] = {}
"""What each fuzz target saw: label → Counter of outcomes (HTTP statuses, exception names)."""


def fuzz_examples(default: int) -> int:
    """Hypothesis examples per fuzzed target: KNOWPAY_FUZZ_EXAMPLES, else `default`."""
    raw = os.environ.get(FUZZ_EXAMPLES_ENV, "").strip()
    return max(1, int(raw)) if raw else default


def record(label: str, outcome: object) -> None:
    """Count one generated input of a fuzz target and what became of it."""
    TALLY.setdefault(label, Counter())[str(outcome)] += 1

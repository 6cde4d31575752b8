"""Shared by the fuzz tests: how much to fuzz (KNOWPAY_FUZZ_EXAMPLES) and a tally of what was
sent, which tests/fuzz/conftest.py prints at the end of the run."""

from __future__ import annotations

import os
from collections import Counter

FUZZ_EXAMPLES_ENV = "KNOWPAY_FUZZ_EXAMPLES"
BASELINE = 2
"""KNOWPAY_FUZZ_EXAMPLES's default: examples per API operation, mode and caller."""

TALLY: dict[str, Counter[str]] = {}
"""What each fuzz target saw: label → Counter of outcomes (HTTP statuses, exception names)."""


def fuzz_examples(default: int) -> int:
    """Hypothesis examples per fuzzed target: `default`, scaled by KNOWPAY_FUZZ_EXAMPLES
    against its own default (KNOWPAY_FUZZ_EXAMPLES=10 makes every suite five times bigger;
    the API fuzz, whose default is the baseline, gets exactly 10)."""
    raw = os.environ.get(FUZZ_EXAMPLES_ENV, "").strip()
    if not raw:
        return default
    return max(1, round(default * int(raw) / BASELINE))


def record(label: str, outcome: object) -> None:
    """Count one generated input of a fuzz target and what became of it."""
    TALLY.setdefault(label, Counter())[str(outcome)] += 1

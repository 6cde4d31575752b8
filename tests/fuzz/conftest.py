"""Print what the fuzz tests sent (how many inputs, and what became of them) after the run."""

from __future__ import annotations

import pytest

from tests.fuzz.support import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    terminalreporter.section("fuzzing")
    total = 0
    for label, outcomes in sorted(TALLY.items()):
        count = sum(outcomes.values())
        total += count
        summary = ", ".join(f"{outcome}: {n}" for outcome, n in sorted(outcomes.items()))
        terminalreporter.write_line(f"{label}: {count} ({summary})")
    terminalreporter.write_line(f"total generated inputs: {total}")

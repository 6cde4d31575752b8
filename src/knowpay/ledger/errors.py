"""Errors of the ledger."""

from __future__ import annotations


class UnbalancedEntry(ValueError):
    """A journal entry whose postings do not sum to zero in some currency (a programming error)."""

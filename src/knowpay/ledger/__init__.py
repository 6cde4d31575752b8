"""The double-entry ledger: accounts per currency, journal entries, immutable postings."""

"""Spending limits: per transaction, day and month, for buyers (by level), apps and channels."""

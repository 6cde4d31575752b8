"""Shared code that knows no domain."""

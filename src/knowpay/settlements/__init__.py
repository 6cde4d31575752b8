"""Creators' share of sales: monthly settlement statements and their payouts."""

"""Reconciliation: each gateway's daily bill matched against knowpay's payments and refunds,
with the discrepancies kept until finance resolves them."""

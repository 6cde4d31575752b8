"""Refunds: full and partial, automatic or approved by finance, through the original channel,
with a timeline the buyer can follow; duplicate payments refunded automatically."""

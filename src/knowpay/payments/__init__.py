"""Payment attempts; recording a payment once (payment, ledger, entitlement, outbox together)."""

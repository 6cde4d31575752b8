"""Orders: what a buyer buys, its server-computed amount, expiry and its state machine."""

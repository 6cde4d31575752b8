"""What the gateway simulators share: fault books, the retrying notifier, the control routes.

Only the simulators use it; like the rest of knowpay.sandbox it imports nothing from knowpay."""

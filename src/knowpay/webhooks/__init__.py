"""Signed webhooks to the platform's apps: endpoints, fan-out from the outbox, delivery."""

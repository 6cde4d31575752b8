"""`knowpay worker`: the outbox dispatcher, webhook delivery and the scheduled jobs."""

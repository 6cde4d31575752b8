"""The benchmark and the chaos harness: a whole knowpay deployment driven from outside."""

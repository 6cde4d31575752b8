"""The `knowpay` command."""

"""knowpay: the payment center of a paid-knowledge platform."""

__version__ = "0.1.0"

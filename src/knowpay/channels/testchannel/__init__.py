"""The built-in `test` channel: a development gateway whose outcomes the caller decides."""

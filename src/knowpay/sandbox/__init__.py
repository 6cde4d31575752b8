"""The gateway simulators (`knowpay sandbox`): the gateways' side of each protocol.

This package imports nothing from the rest of knowpay, not even kit, so that a signing
mistake cannot be shared by the client and the simulator (checked by import-linter)."""

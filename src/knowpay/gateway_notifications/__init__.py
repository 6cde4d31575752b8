"""POST /notify/{gateway}: verify, store in a unique inbox, dispatch, answer as the gateway
expects."""

"""Serve an ASGI app (knowpay, or the gateway simulators) on a free port in a thread, so that
tests can talk real HTTP both ways."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


KEEP_IDLE_S = 60
"""How long the servers of the tests keep an idle connection open."""


@contextmanager
def serve_in_thread(
    app: Any, *, port: int | None = None, ready_path: str = "/healthz"
) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 in a daemon thread; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            # Longer than a client keeps an idle connection (httpx: 5 s). uvicorn's own 5 s
            # raced the tests' clients: a request sent on a connection idle for 5 s could meet
            # the server closing it ("connection reset by peer"), seen once in a loaded run.
            timeout_keep_alive=KEEP_IDLE_S,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + ready_path, timeout=1, trust_env=False).status_code < 500:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        server.should_exit = True
        raise TimeoutError(f"{base_url} did not start")
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)

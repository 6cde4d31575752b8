"""`knowpay serve` keeps an idle client connection open longer than the clients and load
balancers in front of it do, so that the client, never knowpay, closes it: a request sent on
a connection the server is closing at that very moment fails at the client (a platform's
HTTP client kept for 5 s, aiohttp's 15 s, a load balancer's 60 s)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from knowpay.kit.config import Settings
from tests.serving import running_server

UVICORN_DEFAULT_KEEP_ALIVE_S = 5


def _get_healthz(connection: socket.socket) -> bytes:
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        chunk = connection.recv(4096)
        if not chunk:
            return answer
        answer += chunk
    return answer


def test_an_idle_connection_outlives_the_common_client_idle_timeouts(settings: Settings) -> None:
    with running_server(settings, workers=1) as base_url:
        address = urlsplit(base_url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as kept:
            assert _get_healthz(kept).startswith(b"HTTP/1.1 200")
            time.sleep(UVICORN_DEFAULT_KEEP_ALIVE_S + 1.5)
            assert _get_healthz(kept).startswith(b"HTTP/1.1 200")

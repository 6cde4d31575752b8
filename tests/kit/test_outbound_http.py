"""The outbound client does not send a request on a kept-alive connection the gateway may be
closing at that moment.

Servers close a connection idle for their keep-alive timeout (uvicorn's and Apache's default:
5 s). A client that keeps idle connections just as long sends, now and then, a request on one
whose close is still on its way: the gateway resets it, and a payment's creation (sent once,
never retried) failed with 503 `channel_unavailable` in a benchmark run.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from knowpay.kit.http import KEEPALIVE_EXPIRY_S, make_client

COMMON_SERVER_KEEPALIVE_S = 5.0


class ClosingServer:
    """Answers `200 ok` to each request; a request arriving on a connection that had been
    idle for `closes_after_s` is reset instead (the server's close, already under way)."""

    def __init__(self, closes_after_s: float) -> None:
        self.closes_after_s = closes_after_s
        self.connections = 0
        self.resets = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        answered_at: float | None = None
        with connection:
            while _read_request(connection):
                if answered_at is not None and self._idle_since(answered_at):
                    self.resets += 1  # closed with a reset: SO_LINGER on, zero seconds
                    connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    return
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                answered_at = time.monotonic()

    def _idle_since(self, answered_at: float) -> bool:
        return time.monotonic() - answered_at >= self.closes_after_s

    def close(self) -> None:
        self._listener.close()


def _read_request(connection: socket.socket) -> bool:
    """Read one request without a body; False when the client closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True


@pytest.fixture
def server() -> Iterator[ClosingServer]:
    server = ClosingServer(closes_after_s=0.5)
    yield server
    server.close()


def test_a_connection_idle_past_the_expiry_is_not_reused(server: ClosingServer) -> None:
    with make_client(base_url=f"http://127.0.0.1:{server.port}", keepalive_expiry_s=0.3) as client:
        assert client.get("/one").status_code == 200
        time.sleep(0.6)  # past the server's 0.5 s: reused, the request would be reset
        assert client.get("/two").status_code == 200
    assert (server.connections, server.resets) == (2, 0)


def test_a_connection_used_again_soon_is_kept_alive(server: ClosingServer) -> None:
    with make_client(base_url=f"http://127.0.0.1:{server.port}", keepalive_expiry_s=0.3) as client:
        for _ in range(3):
            assert client.get("/again").status_code == 200
    assert server.connections == 1


def test_the_default_expiry_is_well_inside_the_common_server_timeout() -> None:
    """A second's margin below uvicorn's and Apache's 5 s, for the close in flight."""
    assert KEEPALIVE_EXPIRY_S <= COMMON_SERVER_KEEPALIVE_S - 1
    with make_client() as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == KEEPALIVE_EXPIRY_S

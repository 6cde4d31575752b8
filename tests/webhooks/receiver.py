"""A webhook receiver on 127.0.0.1 for tests: records what it gets, answers as scripted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.event for r in self.received]

    def wait_for(self, count: int, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"got {len(self.received)} of {count} webhooks")


Script = Callable[[int], tuple[int, float]]
"""Request number (from 1) → (status code, seconds to wait before answering)."""


def always_ok(_: int) -> tuple[int, float]:
    return 200, 0.0


@contextmanager
def receiver(script: Script = always_ok) -> Iterator[Receiver]:
    """Serve on a free port; every POST is recorded, then answered as `script` says."""
    counter = {"n": 0}
    guard = threading.Lock()
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            expected = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(expected)
            if len(body) != expected:
                return  # the sender died mid-request: nothing was delivered
            with guard:
                counter["n"] += 1
                number = counter["n"]
            target = box["receiver"]
            with target.lock:
                target.received.append(
                    Received(body, {k.lower(): v for k, v in self.headers.items()})
                )
            status, delay = script(number)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"not now")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["receiver"]
    finally:
        server.shutdown()
        server.server_close()

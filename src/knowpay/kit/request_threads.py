"""How many of a process's requests run in worker threads at once, and a thread that waits
on a gateway lending its turn meanwhile.

FastAPI runs sync endpoints (and knowpay its other blocking steps: an Idempotency-Key's
claim, an API key's lookup) in AnyIO worker threads, as many at once as the event loop's
default thread limiter allows (40 unless told). Those threads share one GIL: forty runnable
threads make no more progress than a few, they spend the CPU on handing the GIL over, and
each holds its database connection for as long as its slowest turn takes. So a process runs
`KNOWPAY_REQUEST_THREADS` of them at once (`limit_request_threads`); the other requests wait
on the event loop, where waiting costs nothing.

A thread that blocks on something other than this process's CPU (a gateway's answer, a
pause between retries) widens the limit by one while it waits (`lending_turn`): a slow gateway
never holds every turn, and a simulator mounted in the same process (`knowpay demo`) always
has a thread to answer in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.from_thread
import anyio.to_thread

_lending = threading.local()


def limit_request_threads(threads: int) -> None:
    """Let this event loop run at most `threads` worker threads at once (call it on the loop)."""
    if threads < 1:
        raise ValueError("a process needs at least one request thread")
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads


@contextmanager
def lending_turn() -> Iterator[None]:
    """While the block waits on something outside this process (an HTTP call, a pause), let
    one more worker thread run. Outside an AnyIO worker thread (the worker's jobs, a test
    calling an adapter) and inside a block that already lends, it just runs the block."""
    if getattr(_lending, "active", False) or not _widen(1):
        yield
        return
    _lending.active = True
    try:
        yield
    finally:
        _lending.active = False
        _widen(-1)


def _widen(by: int) -> bool:
    try:
        anyio.from_thread.run_sync(_add_threads, by)
    except (anyio.NoEventLoopError, anyio.RunFinishedError):
        return False
    return True


def _add_threads(by: int) -> None:
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens += by

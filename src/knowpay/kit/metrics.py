"""Prometheus metrics of the HTTP server, and their exposition across server processes.

`serve --workers N` runs N processes behind one port: a scrape reaches one of them at random,
so each process's own counters would seem to jump back and forth. With
`PROMETHEUS_MULTIPROC_DIR` set (by `serve` when it starts more than one process, or by the
operator), every process writes its samples to files there and `/metrics` reads them all
(prometheus_client's multiprocess mode); without it, a process shows its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

HTTP_REQUESTS = Counter(
    "knowpay_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "knowpay_http_request_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

UNMATCHED = "unmatched"
"""The route label of a request no route answered (404s of unknown paths): one value, so that
scanners cannot grow the metrics without bound."""


class HttpMetricsMiddleware:
    """Counts every HTTP request and its latency by route template (never the raw path:
    ids in paths would make a series per object)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = _route_template(scope)
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's template, under the path of the app it is mounted in (a mount
    sets `root_path`: `/sandbox` + `/v1/{path:path}` is not knowpay's own `/v1/…`)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    return str(scope.get("root_path") or "") + path


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text a scrape gets: every server process's samples in multiprocess mode, else this
    process's; then `extra` collectors, read at scrape time (from the database)."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        gathered = CollectorRegistry()
        MultiProcessCollector(gathered)  # type: ignore[no-untyped-call]
        text = generate_latest(gathered)
    else:
        text = generate_latest(REGISTRY)
    more = CollectorRegistry(auto_describe=True)
    for collector in extra:
        more.register(collector)
    return text + generate_latest(more)

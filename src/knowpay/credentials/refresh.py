"""Stored gateway credentials applied while the processes run: each API process and each
worker looks every `credentials_refresh_s` seconds for a change and rebuilds the channels of
the gateways it touches, keeping their breakers' state. A change that does not load (a value
that does not open with the master key, a key that does not parse) is logged and leaves the
channels as they were."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import OperationalError, ProgrammingError

from knowpay.channels.registry import ChannelRegistry
from knowpay.credentials import repository
from knowpay.credentials.service import stored_settings
from knowpay.kit.config import Settings
from knowpay.kit.crypto import secret_box
from knowpay.kit.db import Database

logger = logging.getLogger("knowpay.credentials")

Revision = list[tuple[str, str, str]]


class CredentialsRefresher:
    """Keeps one process's channels on the credentials stored in the database."""

    def __init__(
        self,
        base: Settings,
        database: Database,
        registry: ChannelRegistry,
        interval_s: float,
        on_change: Callable[[Settings], None] | None = None,
    ) -> None:
        self._base = base  # env/TOML only: a field removed from the store falls back to it
        self._database = database
        self._registry = registry
        self._on_change = on_change
        self._interval_s = interval_s
        self._box = secret_box(base)
        self._applied: Revision | None = None
        self._refused: Revision | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> list[str]:
        """One look at the store; the gateways whose channels were rebuilt. A stored value that
        does not open raises; that change is not tried again (it is logged once, not every
        turn), the next one is. A gateway whose values open but do not load keeps its channels
        (the registry logs it) and holds back no other gateway's change."""
        with self._database.session_scope(read_only=True) as session:
            revision = repository.revision(session)
            if revision in (self._applied, self._refused):
                return []
            try:
                settings = stored_settings(self._base, session, self._box)
            except (OperationalError, ProgrammingError):
                raise  # the database, not the change: try again next turn
            except Exception:
                self._refused = revision
                raise
        # A gateway whose new values do not load keeps the channels it has; the others apply.
        try:
            rebuilt = self._registry.reconfigure(settings)
        except Exception:
            self._refused = revision
            raise
        self._applied = revision
        if rebuilt:
            # Only a real change is published: the first look finds what the process started
            # with, and the settings requests read are left as they are.
            if self._on_change is not None:
                self._on_change(self._registry.settings)
            logger.info("gateway credentials changed: rebuilt %s", ", ".join(rebuilt))
        return rebuilt

    def start(self) -> CredentialsRefresher:
        self._thread = threading.Thread(
            target=self._run, name="knowpay-credentials-refresh", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check()
            except (OperationalError, ProgrammingError) as exc:
                logger.warning("gateway credentials not checked: %s", type(exc).__name__)
            except Exception:
                logger.exception("stored gateway credentials were not applied; channels unchanged")


def credentials_refresher(
    base: Settings,
    database: Database,
    registry: ChannelRegistry,
    on_change: Callable[[Settings], None] | None = None,
) -> CredentialsRefresher | None:
    """A started refresher for a process, or None when `credentials_refresh_s` is 0."""
    if base.credentials_refresh_s <= 0:
        return None
    interval_s = base.credentials_refresh_s
    return CredentialsRefresher(base, database, registry, interval_s, on_change).start()

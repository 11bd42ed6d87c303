"""What a server process holds while it runs (``ApiState``): built by the app's lifespan
(``api.app``), read by the routes through ``api.deps.State``.

Routes import this module, never ``api.app``: the app imports the routes, not the other way round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from npistack.api.metrics import Metrics
from npistack.services.accounts import Accounts, Meter
from npistack.services.lookup import LookupService
from npistack.services.upstream import Upstream
from npistack.settings import Settings
from npistack.storage.base import SqlStore
from npistack.storage.loads import LoadRecord


@dataclass
class ApiState:
    settings: Settings
    store: SqlStore
    accounts: Accounts
    meter: Meter
    lookup: LookupService
    upstream: Upstream | None
    metrics: Metrics
    now: Callable[[], datetime]
    _load: tuple[float, LoadRecord | None] = field(default=(0.0, None))
    store_check: tuple[float, str] = field(default=(0.0, ""))  # (when, result) of /readyz's deep check
    store_check_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def today(self) -> date:
        return self.now().date()

    def current_load(self) -> LoadRecord | None:
        """The current load, re-read at most every 5 seconds."""
        at, rec = self._load
        if time.monotonic() - at > 5:
            rec = self.store.current_load()
            self._load = (time.monotonic(), rec)
        return rec


def app_state(app: Any) -> ApiState:
    """The state of a running app (``app.state.api``, set by its lifespan)."""
    st: ApiState = app.state.api
    return st

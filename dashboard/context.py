"""What every page reads from: the open store, the SLOs, the alert engine's state dir and a clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tsdb.times import utc_now

if TYPE_CHECKING:
    from alerts.slo import SLO
    from tsdb.store import Store

#: the key under which create_app keeps the context in the Flask app's config
CONFIG_KEY = "VIRTWATCH_DASHBOARD_CONTEXT"


@dataclass
class DashboardContext:
    """The dashboard's dependencies: one per app, shared by every callback of that app."""

    store: Store
    slos: list[SLO] = field(default_factory=list)
    state_dir: Path | None = None
    clock: Callable[[], dt.datetime] = utc_now

    def now_ns(self) -> int:
        """Return the clock's time in nanoseconds since the epoch."""
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError(f"the dashboard clock must return timezone-aware times, got {now.isoformat()}")
        return int(now.timestamp()) * 10**9 + now.microsecond * 1000


def current_context() -> DashboardContext:
    """Return the context of the app serving the current request (pages never import the app)."""
    import flask

    return flask.current_app.config[CONFIG_KEY]

"""Where the alert engine keeps its files under `[alerts] state_dir`: the one place that names them.

The engine, `virtwatch silence` and the dashboard all find the same files through these functions.
"""

from __future__ import annotations

import os
from pathlib import Path


def alert_state_path(state_dir: str | os.PathLike) -> Path:
    """Return the alert lifecycle file (alerts.state.AlertTracker): pending and firing alerts."""
    return Path(state_dir) / "alerts.json"


def silences_path(state_dir: str | os.PathLike) -> Path:
    """Return the silences file (alerts.silences.SilenceStore)."""
    return Path(state_dir) / "silences.json"


def outbox_path(state_dir: str | os.PathLike) -> Path:
    """Return the outbox directory (alerts.notify.Outbox): notifications not yet delivered."""
    return Path(state_dir) / "outbox"

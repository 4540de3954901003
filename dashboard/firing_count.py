"""The number of alerts firing now, for the navigation's badge: the engine's state file, read again only when it
changed (one stat per page load or refresh tick otherwise)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

_lock = threading.Lock()
#: state file path -> ((inode, mtime ns, size) it was read at, firing count then)
_counted: dict[str, tuple[tuple[int, int, int], int]] = {}


def firing_count(state_dir: Path | None) -> int:
    """Return how many alerts of the engine's state fire now (the firing rows of the Alerts page; pending ones not
    counted); 0 without a state dir or file. The engine replaces the file whole at each change, so its inode,
    mtime and size say when to read it again; StateError (alerts.state) when it cannot be understood."""
    from alerts.paths import alert_state_path
    from alerts.state import count_firing

    if state_dir is None:
        return 0
    path = str(alert_state_path(state_dir))
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return 0
    version = (found.st_ino, found.st_mtime_ns, found.st_size)
    with _lock:
        known = _counted.get(path)
    if known is not None and known[0] == version:
        return known[1]
    count = count_firing(path)
    with _lock:
        _counted[path] = (version, count)
    return count

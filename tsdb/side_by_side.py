"""Independent store reads run at once, each on its own thread: a read waits on the store's server, so several
take about the time of the slowest instead of their sum (the engine's rules round; the dashboard's fleet-wide
reads, through dashboard.data.concurrently).

Only for small reads: heavy ones at once on a loaded store pass its deadline together (alerts.sli keeps a
roll-up's counts one after the other for that reason). Each call has a pool of its own, so a read that itself
reads side by side never waits on a busy shared pool."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def side_by_side(*reads: Callable[[], Any]) -> list[Any]:
    """Run `reads` at once and return their answers in order; the first read that raised raises here, after
    every read has finished (none is left running behind the caller)."""
    if len(reads) <= 1:
        return [read() for read in reads]
    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="store-read") as pool:
        futures = [pool.submit(read) for read in reads]
    return [future.result() for future in futures]

"""Soak points written on a thread of their own, so a slow or unreachable store never stalls the soak."""

from __future__ import annotations

import logging
import threading

from tsdb import Point, Store, StoreError

log = logging.getLogger("virtwatch.soak")

MAX_PENDING_POINTS = 100_000


class PointWriter:
    """Write batches of points in order on a daemon thread; keep (bounded) what the store refused for later."""

    def __init__(self, store: Store):
        self.store = store
        self.written = 0
        self.dropped = 0  # points given up on because more than MAX_PENDING_POINTS waited
        self._pending: list[Point] = []
        self._queued: list[Point] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="soak-writer", daemon=True)
        self._thread.start()

    def put(self, points: list[Point]) -> None:
        """Queue points for writing."""
        if points:
            with self._lock:
                self._queued += points
            self._wake.set()

    def close(self, timeout_seconds: float) -> int:
        """Write what is queued (waiting at most `timeout_seconds`) and return how many points were not written."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout_seconds)
        with self._lock:
            return len(self._pending) + len(self._queued) + self.dropped

    def _loop(self) -> None:
        """Write what is queued each time points arrive, until closed."""
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                self._pending += self._queued
                self._queued = []
                if len(self._pending) > MAX_PENDING_POINTS:
                    self.dropped += len(self._pending) - MAX_PENDING_POINTS
                    del self._pending[:-MAX_PENDING_POINTS]
                batch = list(self._pending)
            if batch:
                self._write(batch)
            with self._lock:
                done = not self._pending and not self._queued
            if self._closing and (done or self._failing):
                return

    def _write(self, batch: list[Point]) -> None:
        """Write one batch; on success forget it, on failure keep it for the next try."""
        try:
            self.written += self.store.write(batch)
        except StoreError as error:
            if not self._failing:
                log.warning("cannot write soak points to %s, keeping them for the next try: %s",
                            self.store.display_url, error)
            self._failing = True
            return
        self._failing = False
        with self._lock:
            del self._pending[:len(batch)]

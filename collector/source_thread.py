"""One source read on a thread of its own: asked once per interval, never waited on for longer than the
caller chooses. An ask while the last read still runs is an overrun: counted and logged, never queued."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Generic, TypeVar

log = logging.getLogger("virtwatch.agent")

T = TypeVar("T")
OVERRUN_LOG_EVERY_SECONDS = 60.0


class SourceThread(Generic[T]):
    """Runs `read()` on its own thread each time it is asked; hands over each result once."""

    def __init__(self, name: str, read: Callable[[], T]):
        self.name = name
        self.overruns_total = 0
        self._read = read
        self._asked = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopped = False
        self._results: list[T] = []
        self._lock = threading.Lock()
        self._last_overrun_log = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"virtwatch-{name}", daemon=True)
        self._thread.start()

    def request(self) -> bool:
        """Start a read; return False (an overrun) when the last one has not finished."""
        if not self._idle.is_set():
            self.overruns_total += 1
            now = time.monotonic()
            if now - self._last_overrun_log >= OVERRUN_LOG_EVERY_SECONDS:
                self._last_overrun_log = now
                log.warning("%s source did not complete within its interval (%d overruns so far)", self.name,
                            self.overruns_total)
            return False
        self._idle.clear()
        self._asked.set()
        return True

    def take(self, wait_seconds: float) -> list[T]:
        """Wait up to `wait_seconds` for the read to finish; return the results not taken yet, oldest first
        (a read that finished late comes with the next take)."""
        self._idle.wait(max(0.0, wait_seconds))
        with self._lock:
            results, self._results = self._results, []
        return results

    def stop(self) -> None:
        """Stop after the read in progress (without waiting for it)."""
        self._stopped = True
        self._asked.set()

    def _loop(self) -> None:
        while True:
            self._asked.wait()
            self._asked.clear()
            if self._stopped:
                return
            try:
                result = self._read()
                with self._lock:
                    self._results.append(result)
            except Exception:  # noqa: BLE001 - one failed read must not end the source
                log.exception("%s source failed", self.name)
            finally:
                self._idle.set()

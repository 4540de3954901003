"""The newest frame of each live (relative) range the pages asked for recently, re-read in the background.

A relative range ("last 24 hours") moves with the clock, so a cache keyed by its resolved ends misses at every
auto-refresh and the page waits for the store. `LiveFrames` keeps the newest frame of each such range (by a key
the caller chooses: its name and length, not its ends) while someone watches it, that is asked for it in the
last `watched_seconds`, and one daemon thread re-reads it every `every_seconds`; nobody watching, no reads.
Each read starts early by as long as the last kept read took (at most half of every_seconds), so that it is kept
before the frame it replaces is too old to serve.

A kept frame is served while `now - started <= every_seconds + duration` (monotonic seconds; `started` is when
the read that gave it began, so the frame is as of then, and `duration` how long that read took); past that it is
dropped and the caller reads the store itself. A background read that fails is logged and leaves the older frame
to age out; one that hangs holds only its own key (never a second reader for it) and delays no caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: a range not asked for this long is no longer re-read, and forgotten: longer than the longest auto-refresh
#: (dashboard.timerange.REFRESHES, 5 min), so a page with any auto-refresh stays warm
WATCHED_SECONDS = 360


@dataclass
class _Watched:
    """One watched range: how to read it, when it was last asked for, its newest frame and the reads of it."""

    read: Callable[[], Any]
    asked: float
    label: str = ""          # what the log calls it
    failing: bool = False    # its last background read failed (said once, until one succeeds)
    frame: Any = None
    started: float = 0.0
    duration: float = 0.0
    last_started: float = float("-inf")
    reading: bool = False


class LiveFrames:
    """The newest frame of each watched live range, re-read every `every_seconds` by one background thread."""

    def __init__(self, every_seconds: float, *, watched_seconds: float = WATCHED_SECONDS, max_keys: int = 16,
                 monotonic: Callable[[], float] = time.monotonic, background: bool = True):
        self.every_seconds = every_seconds
        self.watched_seconds = watched_seconds
        self.max_keys = max_keys
        self.now = monotonic
        self._background = background
        self._lock = threading.Lock()
        self._watched: OrderedDict[Hashable, _Watched] = OrderedDict()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def served(self, key: Hashable, read: Callable[[], Any], label: str = "") -> Any:
        """Return the kept frame of `key` when it is fresh (see the module), else None; either way note that `key`
        is watched now and is re-read with `read` (no argument: it resolves the range when called); `label` is
        what the log calls it."""
        now = self.now()
        with self._lock:
            watched = self._watched.get(key)
            if watched is None:
                watched = self._watched[key] = _Watched(read, now)
                while len(self._watched) > self.max_keys:
                    self._watched.popitem(last=False)
            watched.read, watched.asked, watched.label = read, now, label or repr(key)
            self._watched.move_to_end(key)
            frame = watched.frame if watched.frame is not None and self._fresh(watched, now) else None
            if frame is None:  # the caller reads it now: counted as a read begun now (_due)
                watched.frame, watched.last_started = None, max(watched.last_started, now)
        self._start_thread()
        return frame

    def keep(self, key: Hashable, frame: Any, started: float, finished: float) -> None:
        """Keep `frame`, read from `started` to `finished` (this keeper's monotonic seconds), as key's newest frame
        unless a newer read is kept already; a key nobody watches is not kept."""
        with self._lock:
            watched = self._watched.get(key)
            if watched is None or (watched.frame is not None and watched.started > started):
                return
            watched.frame, watched.started, watched.duration = frame, started, max(0.0, finished - started)
            watched.last_started = max(watched.last_started, started)

    def refresh_due(self, now: float) -> int:
        """Forget the keys not asked for in watched_seconds and drop the frames too old to serve, then read once
        each watched key that is due (_due) and none of whose reads is running, one after the other on this
        thread; return how many reads were started."""
        with self._lock:
            for key in [key for key, watched in self._watched.items() if now - watched.asked > self.watched_seconds]:
                del self._watched[key]
            due = []
            for key, watched in self._watched.items():
                if watched.frame is not None and not self._fresh(watched, now):
                    watched.frame = None
                if not watched.reading and now >= self._due(watched):
                    watched.reading, watched.last_started = True, now
                    due.append((key, watched))
        for key, watched in due:
            self._refresh(key, watched)
        return len(due)

    def stop(self) -> None:
        """End the background thread after the read it is doing, if any (a stopped keeper only serves and keeps)."""
        self._stopped = True
        self._wake.set()

    def clear(self) -> None:
        """Forget every key and kept frame (reads still running keep nothing)."""
        with self._lock:
            self._watched.clear()

    def _refresh(self, key: Hashable, watched: _Watched) -> None:
        """Read one key's frame now and keep it; a failure is logged, never raised (the older frame ages out)."""
        started = self.now()
        try:
            frame = watched.read()
        except Exception as error:  # a store down or past its deadline: callers read themselves once it is too old
            if not watched.failing:  # once per streak, not every every_seconds while the store is down
                log.warning("%s: the background read failed (pages read the store themselves until one succeeds): "
                            "%s", watched.label, error)
            watched.failing = True
            return
        finally:
            with self._lock:
                watched.reading = False
        if watched.failing:
            log.info("%s: the background read succeeds again", watched.label)
            watched.failing = False
        with self._lock:
            if self._watched.get(key) is not watched:  # forgotten or cleared meanwhile
                return
        self.keep(key, frame, started, self.now())

    def _due(self, watched: _Watched) -> float:
        """Return when a key's next read is due: every_seconds after its newest read began, less the duration of
        the read that gave its frame (at most half of every_seconds), so it ends about when that frame expires."""
        return watched.last_started + self.every_seconds - min(watched.duration, self.every_seconds / 2)

    def _fresh(self, watched: _Watched, now: float) -> bool:
        """Return whether a kept frame may be served at `now` (the module's rule)."""
        return now - watched.started <= self.every_seconds + watched.duration

    def _start_thread(self) -> None:
        """Start the background thread on first use (when this keeper has one)."""
        if not self._background or self._thread is not None or self._stopped:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-frames", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        """Read what is due, then sleep until the next key is due (at most every_seconds), until stopped."""
        while not self._stopped:
            try:
                self.refresh_due(self.now())
            except Exception:  # never let the thread die: the callers would then read every time
                log.exception("live frames: refreshing failed")
            with self._lock:
                now = self.now()
                waits = [self._due(watched) - now for watched in self._watched.values() if not watched.reading]
            self._wake.wait(max(0.0, min([self.every_seconds, *waits])))
            self._wake.clear()

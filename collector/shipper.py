"""The shipper: the one owner of the store and the spool, on a thread of its own.

Collection hands each interval's points to `put`, which never waits. The shipper writes them with ONE
attempt each (its retry is the spool, not a loop inside a write): when a write fails, the points go to the
durable spool and the store is known to be down; while it is, new points go straight to the spool and one
replay of the oldest spooled segment per interval is the cheap attempt that tells when the store is back.
While a backlog replays (at most `replay_segments_per_round` segments a round), new points queue behind it
on disk, so the store receives everything in the order it was collected.

A store that accepts connections and never answers holds one write for the store's timeout; meanwhile the
queue in memory grows (bounded by `max_queued_points`, beyond which `put` spools directly) and collection goes
on at its cadence. `stop` spools what the queue and an unfinished write hold, so an agent stopped at any
moment loses nothing (a write that lands after all is replayed again: the store keeps one copy of a point,
InfluxDB overwriting a series' point at the same time).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

from collector.spool import Spool
from tsdb import Point, PointError, Store, StoreRejected, StoreUnavailable

log = logging.getLogger("virtwatch.agent")


class Shipper:
    """Writes points to the store from a bounded in-memory queue, through the spool while the store is down."""

    def __init__(self, store: Store, spool: Spool | None, interval_seconds: float = 10.0,
                 replay_segments_per_round: int = 50, max_queued_points: int = 1_000_000,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.spool = spool
        self.interval_seconds = interval_seconds
        self.replay_segments_per_round = replay_segments_per_round
        self.max_queued_points = max_queued_points
        self.points_written_total = 0
        self.points_rejected_total = 0
        self.points_lost_total = 0  # no spool and the store unavailable
        self.store_reachable = True
        self._clock = clock
        self._queue: collections.deque[list[Point]] = collections.deque()
        self._queued_points = 0
        self._cond = threading.Condition()
        self._ship_lock = threading.Lock()  # one shipping round at a time (the thread, or ship_now)
        self._next_attempt = 0.0
        self._in_flight: list[Point] | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lost: list[str] = []  # why points were lost, for a points_dropped event

    # --- handing points over ---------------------------------------------------------------------------------

    def put(self, points: list[Point]) -> None:
        """Queue points for the store; never waits (beyond `max_queued_points` they go to the spool at once)."""
        if not points:
            return
        with self._cond:
            if self._queued_points + len(points) <= self.max_queued_points or self.spool is None:
                self._queue.append(points)
                self._queued_points += len(points)
                self._cond.notify()
                return
        log.warning("%d points queued for %s already: %d more go to the spool directly", self._queued_points,
                    self.store.display_url, len(points))
        self._spool(points, "the queue in memory was full")

    @property
    def queued_points(self) -> int:
        """Points waiting in memory (not yet written nor spooled)."""
        return self._queued_points

    def take_lost(self) -> list[str]:
        """Return and forget the reasons points were lost since the last call (for a points_dropped event)."""
        lost, self._lost = self._lost, []
        return lost

    # --- the thread ------------------------------------------------------------------------------------------

    def start(self) -> "Shipper":
        """Ship from a thread of its own until `stop`."""
        self._thread = threading.Thread(target=self._loop, name="virtwatch-shipper", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping and not self._backlog_due():
                    self._cond.wait(self._idle_wait())
                if self._stopping:
                    return
                points = self._take_queue()
            try:
                self._ship(points)
            except Exception:  # noqa: BLE001 - keep shipping; the points are spooled below
                log.exception("shipping %d points failed", len(points))
                self._spool(points, "shipping raised")

    def _idle_wait(self) -> float:
        if self.spool is not None and self.spool.pending_segments:
            return max(0.05, self._next_attempt - self._clock())
        return 1.0

    def _backlog_due(self) -> bool:
        return (self.spool is not None and self.spool.pending_segments > 0
                and self._clock() >= self._next_attempt)

    def _take_queue(self) -> list[Point]:
        points: list[Point] = []
        while self._queue:
            points += self._queue.popleft()
        self._queued_points = 0
        self._in_flight = points
        return points

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop the thread; spool the queue and a write that has not finished within `timeout`; return False
        when a write is still stuck in the store (then do not wait for the store's close)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        finished = True
        if self._thread is not None:
            self._thread.join(timeout)
            finished = not self._thread.is_alive()
        with self._cond:
            left = self._in_flight if not finished else None
            queued = self._take_queue()
            self._in_flight = None
        if left:
            log.warning("a write of %d points to %s has not finished: spooled again", len(left),
                        self.store.display_url)
            self._spool(left, "the agent stopped during the write")
        if queued:
            self._spool(queued, "the agent stopped")
        return finished

    # --- shipping --------------------------------------------------------------------------------------------

    def ship_now(self, points: list[Point]) -> tuple[int, bool]:
        """Ship in the caller's thread (one collection, `--once`), trying the store now even while it is known
        to be down; return (points written, whether nothing was left spooled)."""
        with self._cond:
            points = self._take_queue() + points
        return self._ship(points, attempt_now=True)

    def _ship(self, points: list[Point], attempt_now: bool = False) -> tuple[int, bool]:
        """One round: replay the backlog if due (or `attempt_now`), then write `points` behind it, or spool them."""
        with self._ship_lock:
            if attempt_now:
                self._next_attempt = 0.0
            try:
                return self._ship_round(points)
            finally:
                self._in_flight = None

    def _ship_round(self, points: list[Point]) -> tuple[int, bool]:
        written = 0
        if self.spool is not None and self.spool.pending_segments:
            if self._clock() < self._next_attempt:
                self._spool(points, None)
                return 0, False
            try:
                replayed = self.spool.replay(self._write, self.replay_segments_per_round)
            except StoreUnavailable as error:
                self._down(error)
                self._spool(points, None)
                return 0, False
            if replayed:
                self._up()
                log.info("replayed %d spooled points into %s (%d still spooled)", replayed, self.store.display_url,
                         self.spool.pending_points)
            written += replayed
            if self.spool.pending_segments:  # keep the order: new points queue behind the backlog
                self._spool(points, None)
                return written, False
        elif not self.store_reachable and self._clock() < self._next_attempt:
            self._spool(points, None)
            return 0, False
        if not points:
            return written, True
        try:
            written += self._write(points)
        except StoreUnavailable as error:
            self._down(error)
            self._spool(points, None)
            return written, False
        self._up()
        return written, True

    def _write(self, points: list[Point]) -> int:
        """Write once; points the store refuses (4xx) or that cannot be stored are counted and logged, not kept."""
        try:
            written = self.store.write(points, retry=False)
        except (StoreRejected, PointError) as error:
            self.points_rejected_total += len(points)
            log.error("the store refused %d points (not retried): %s", len(points), error)
            self._lost.append(f"the store refused {len(points)} points: {error}")
            return 0
        self.points_written_total += written
        return written

    def _down(self, error: Exception) -> None:
        self._next_attempt = self._clock() + self.interval_seconds
        if self.store_reachable:
            log.warning("store %s unavailable, spooling until it answers (one attempt per %g s): %s",
                        self.store.display_url, self.interval_seconds, error)
        self.store_reachable = False

    def _up(self) -> None:
        if not self.store_reachable:
            log.info("store %s answers again", self.store.display_url)
        self.store_reachable = True
        self._next_attempt = 0.0

    def _spool(self, points: list[Point], why: str | None) -> None:
        if not points or (self._stopping and threading.current_thread() is self._thread):
            return  # a write that outlived stop(): stop() has spooled its points already
        if self.spool is None:
            self.points_lost_total += len(points)
            log.error("%d points for %s lost: the store is unavailable and there is no spool", len(points),
                      self.store.display_url)
            self._lost.append(f"{len(points)} points lost: {self.store.display_url} unavailable, no spool")
            return
        dropped = self.spool.put(points)
        if dropped:
            self._lost.append(f"the spool was full ({self.spool.size_bytes} bytes held, limit reached): "
                              f"{dropped} oldest points dropped while {self.store.display_url} was unavailable")
        log.debug("%d points spooled%s (%d spooled in all, %d bytes)", len(points), f" ({why})" if why else "",
                  self.spool.pending_points, self.spool.size_bytes)

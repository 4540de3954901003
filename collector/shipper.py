"""The shipper: the one owner of the store and the spool, on a thread of its own.

Collection hands each interval's points to `put`, which never waits on the store. The shipper writes them
with ONE attempt each (its retry is the spool, not a loop inside a write). When a write fails, the points go
to the durable spool; while the spool holds a backlog, new points go straight behind it on disk (by `put`
itself, so an agent killed meanwhile loses nothing), and one replay of the oldest segments per interval is the
cheap attempt that tells when the store is back, delivering everything in the order it was collected.

A store that accepts connections and never answers holds one write until the store's timeout. Once that
write has been in flight for an interval, the store is STALLED: `put` spools the batch in flight (again: if
the write lands after all, the replay writes the same points twice, and InfluxDB keeps one copy of a series'
point at one time), the queue and every new batch, so again a kill loses nothing. Only a kill within the
first interval of a stuck write can lose that interval's points. `stop` spools whatever is still in memory.
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
        self._cond = threading.Condition()  # guards the queue, the batch in flight and every put into the spool
        self._ship_lock = threading.Lock()  # one shipping round at a time (the thread, or ship_now)
        self._next_attempt = 0.0
        self._in_flight: list[Point] = []
        self._in_flight_since: float | None = None
        self._in_flight_spooled = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lost: list[str] = []  # why points were lost, for a points_dropped event

    # --- handing points over ---------------------------------------------------------------------------------

    def put(self, points: list[Point]) -> None:
        """Hand points over for the store; never waits on it. While the spool holds a backlog or the store is
        stalled, they go to the spool at once (a local write), behind everything collected before them."""
        if not points:
            return
        with self._cond:
            if self.spool is not None and (self._spilling() or self._stalled()
                                           or self._queued_points + len(points) > self.max_queued_points):
                if self._stalled() and not self._in_flight_spooled:
                    self._in_flight_spooled = True
                    log.warning("a write of %d points to %s has waited %.0f s: spooling it and what follows",
                                len(self._in_flight), self.store.display_url, self._clock() - self._in_flight_since)
                    self._spool(self._in_flight, "the write in flight is stalled")
                self._spool(self._take_queue() + points, None)
                return
            self._queue.append(points)
            self._queued_points += len(points)
            self._cond.notify()

    def _spilling(self) -> bool:
        return self.spool is not None and self.spool.pending_segments > 0

    def _stalled(self) -> bool:
        return (self._in_flight_since is not None and bool(self._in_flight)
                and self._clock() - self._in_flight_since > self.interval_seconds)

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
            except Exception:  # noqa: BLE001 - keep shipping; the points are spooled
                log.exception("shipping %d points failed", len(points))
                with self._cond:
                    self._spool(points, "shipping raised")

    def _idle_wait(self) -> float:
        if self._spilling():
            return max(0.05, self._next_attempt - self._clock())
        return 1.0

    def _backlog_due(self) -> bool:
        return self._spilling() and self._clock() >= self._next_attempt

    def _take_queue(self) -> list[Point]:
        points: list[Point] = []
        while self._queue:
            points += self._queue.popleft()
        self._queued_points = 0
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
            if not finished and self._in_flight and not self._in_flight_spooled:
                log.warning("a write of %d points to %s has not finished: spooled", len(self._in_flight),
                            self.store.display_url)
                self._in_flight_spooled = True
                self._spool(self._in_flight, "the agent stopped during the write")
            self._spool(self._take_queue(), "the agent stopped")
        return finished

    # --- shipping --------------------------------------------------------------------------------------------

    def ship_now(self, points: list[Point]) -> tuple[int, bool]:
        """Ship in the caller's thread (one collection, `--once`), trying the store now even while it is known
        to be down; return (points written, whether nothing was left spooled)."""
        with self._cond:
            points = self._take_queue() + points
        return self._ship(points, attempt_now=True)

    def _ship(self, points: list[Point], attempt_now: bool = False) -> tuple[int, bool]:
        """One round: points behind a backlog go to the spool; the backlog is replayed when an attempt is due
        (or `attempt_now`); otherwise the points are written, or spooled when the store does not take them."""
        with self._ship_lock:
            if attempt_now:
                self._next_attempt = 0.0
            with self._cond:
                if self._spilling():
                    self._spool(points, None)
                    points = []
            written = self._replay() if self._spilling() else 0
            if self._spilling():
                return written, False
            if not points:
                return written, True
            return self._write_batch(points, written)

    def _replay(self) -> int:
        """Replay spooled segments if an attempt is due; return the points replayed."""
        if self._clock() < self._next_attempt:
            return 0
        try:
            replayed = self.spool.replay(self._write, self.replay_segments_per_round)
        except StoreUnavailable as error:
            self._down(error)
            return 0
        if replayed:
            self._up()
            log.info("replayed %d spooled points into %s (%d still spooled)", replayed, self.store.display_url,
                     self.spool.pending_points)
        return replayed

    def _write_batch(self, points: list[Point], written: int) -> tuple[int, bool]:
        with self._cond:
            self._in_flight, self._in_flight_since, self._in_flight_spooled = points, self._clock(), False
        try:
            written += self._write(points)
        except StoreUnavailable as error:
            self._down(error)
            with self._cond:
                if not self._in_flight_spooled:
                    self._spool(points, None)
            return written, False
        finally:
            with self._cond:
                spooled_meanwhile = self._in_flight_spooled
                self._in_flight, self._in_flight_since, self._in_flight_spooled = [], None, False
        self._up()
        return written, not spooled_meanwhile

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
        if self.store_reachable and not self._stopping:  # a write that outlived stop() spools nothing more
            log.warning("store %s unavailable, spooling until it answers (one attempt per %g s): %s",
                        self.store.display_url, self.interval_seconds, error)
        self.store_reachable = False

    def _up(self) -> None:
        if not self.store_reachable:
            log.info("store %s answers again", self.store.display_url)
        self.store_reachable = True
        self._next_attempt = 0.0

    def _spool(self, points: list[Point], why: str | None) -> None:
        """Put points in the spool (call with the condition held, so spooled points keep their order)."""
        if not points:
            return
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

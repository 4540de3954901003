"""The engine's memory of an SLO's rollups: good and total per host per minute (the last hours) and per hour (the
period), in numpy arrays, so an evaluation sums window pieces without a query.

At 2000 hosts every query of InfluxDB 1.x costs 80-200 ms whatever its time range, since it touches every host's
series; an evaluation of the 4 shipped SLOs through the store is ~50 such queries (8 s measured). The memory is
loaded once from the store (the rollups of the period: a few seconds per SLO at 2000 hosts), then kept current
from the rollups the engine writes itself (alerts.rollups.roll_up's `written`), including the minutes it rolls a
second time. `CountsReader` answers a piece from memory when the memory covers it and from the store otherwise,
so the figures are the same either way (tests/alerts/test_sli_memory.py holds them equal).
"""

from __future__ import annotations

import numpy as np

from alerts.rollups import HOUR_NS, MINUTE_NS
from alerts.sli import ROLLUP_MEASUREMENT, Counts, SLIResult
from alerts.slo import SLO
from tsdb.point import Point
from tsdb.store import Store

#: minutes kept: the longest window shorter than a day (6 h) and the hour before its start, and the tail
MINUTES_KEPT = 8 * 60
#: the load reads two days of hours (96k rows at 2000 hosts) or two hours of minutes (240k) at a time: the
#: frames, not the grids, set the engine's peak memory
LOAD_CHUNK_SECONDS = {"1h": 2 * 86400, "1m": 2 * 3600}


class Grid:
    """Good and total per host per step (a minute or an hour) over the last `slots` steps, in numpy arrays."""

    def __init__(self, step_ns: int, slots: int) -> None:
        self.step_ns, self.slots = step_ns, slots
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self.start_ns: int | None = None  # the time of column 0
        self.good = np.zeros((0, slots))
        self.total = np.zeros((0, slots))
        self.present = np.zeros((0, slots), dtype=bool)  # a rollup exists (its total may be 0)

    def put(self, times_ns: np.ndarray, hosts, good: np.ndarray, total: np.ndarray) -> None:
        """Set the cells of these (time, host) steps; the grid slides forward to hold the newest."""
        if not len(times_ns):
            return
        times_ns = np.asarray(times_ns, dtype="int64") // self.step_ns * self.step_ns
        newest = int(times_ns.max())
        if self.start_ns is None:
            self.start_ns = newest - (self.slots - 1) * self.step_ns
        elif newest >= self.start_ns + self.slots * self.step_ns:
            self._slide(newest - (self.slots - 1) * self.step_ns)
        rows = np.fromiter((self._row(host) for host in hosts), dtype="int64", count=len(times_ns))
        columns = (times_ns - self.start_ns) // self.step_ns
        inside = columns >= 0
        self.good[rows[inside], columns[inside]] = np.asarray(good, dtype=float)[inside]
        self.total[rows[inside], columns[inside]] = np.asarray(total, dtype=float)[inside]
        self.present[rows[inside], columns[inside]] = True

    def _row(self, host: str) -> int:
        row = self.index.get(host)
        if row is None:
            row = self.index[host] = len(self.names)
            self.names.append(host)
            if row >= len(self.good):
                grow = max(16, len(self.good))
                self.good = np.vstack([self.good, np.zeros((grow, self.slots))])
                self.total = np.vstack([self.total, np.zeros((grow, self.slots))])
                self.present = np.vstack([self.present, np.zeros((grow, self.slots), dtype=bool)])
        return row

    def _slide(self, start_ns: int) -> None:
        shift = (start_ns - self.start_ns) // self.step_ns
        for array in (self.good, self.total, self.present):
            if shift < self.slots:
                array[:, :self.slots - shift] = array[:, shift:]
            array[:, max(0, self.slots - shift):] = 0
        self.start_ns += shift * self.step_ns

    def holds(self, start_ns: int, end_ns: int) -> bool:
        """True when [start, end) lies inside the grid's span, on its steps."""
        return (self.start_ns is not None and start_ns >= self.start_ns
                and end_ns <= self.start_ns + self.slots * self.step_ns
                and start_ns % self.step_ns == 0 and end_ns % self.step_ns == 0)

    def sums(self, start_ns: int, end_ns: int) -> SLIResult:
        """Return good and total per host over [start, end) (hosts with no rollup there left out)."""
        a = (start_ns - self.start_ns) // self.step_ns
        b = (end_ns - self.start_ns) // self.step_ns
        rows = len(self.names)
        good = self.good[:rows, a:b].sum(axis=1)
        total = self.total[:rows, a:b].sum(axis=1)
        found = np.flatnonzero(self.present[:rows, a:b].any(axis=1))
        return SLIResult({self.names[i]: Counts(float(good[i]), float(total[i])) for i in found})


class SLIMemory:
    """One SLO's minute and hour rollups in memory: valid from `loaded_from_ns` (minutes) on, once loaded."""

    def __init__(self, slo: SLO) -> None:
        self.slo = slo
        self.minutes = Grid(MINUTE_NS, MINUTES_KEPT)
        self.hours = Grid(HOUR_NS, slo.period_seconds // 3600 + 2)
        self.loaded = False
        self.minutes_from_ns = self.hours_from_ns = 0  # the memory holds every rollup at or after these

    def load(self, store: Store, minute_until_ns: int, hour_until_ns: int) -> int:
        """Read the rollups the windows need from the store (the period's hours, the last minutes); return the
        rows read."""
        rows = 0
        self.minutes_from_ns = max(0, minute_until_ns - (MINUTES_KEPT - 1) * MINUTE_NS)
        self.hours_from_ns = max(0, hour_until_ns - (self.hours.slots - 1) * HOUR_NS)
        for grid, resolution, start, end in ((self.hours, "1h", self.hours_from_ns, hour_until_ns),
                                             (self.minutes, "1m", self.minutes_from_ns, minute_until_ns)):
            if grid.start_ns is None and end > 0:
                grid.start_ns = end - grid.slots * grid.step_ns  # so a load in chunks never slides the grid
            width = LOAD_CHUNK_SECONDS[resolution] * 10**9
            for chunk in range(start, end, width):
                frame = store.query(ROLLUP_MEASUREMENT, ["good_total", "valid_total"], chunk, min(end, chunk + width),
                                    where={"slo": self.slo.name, "resolution": resolution}, group_by=["host"])
                frame = frame[frame["valid_total"].notna()]
                grid.put(frame["time"].astype("int64").to_numpy(), frame["host"].tolist(),
                         frame["good_total"].fillna(0.0).to_numpy(), frame["valid_total"].to_numpy())
                rows += len(frame)
        self.loaded = True
        return rows

    def written(self, points: list[Point]) -> None:
        """Take in the rollup points the engine just wrote (new minutes, minutes rolled again, new hours)."""
        for resolution, grid in (("1m", self.minutes), ("1h", self.hours)):
            mine = [p for p in points if p.tags.get("resolution") == resolution]
            if mine:
                grid.put(np.fromiter((p.time_ns for p in mine), dtype="int64", count=len(mine)),
                         [p.tags["host"] for p in mine],
                         np.fromiter((p.fields["good_total"] for p in mine), dtype=float, count=len(mine)),
                         np.fromiter((p.fields["valid_total"] for p in mine), dtype=float, count=len(mine)))

    def answers(self, resolution: str, start_ns: int, end_ns: int) -> bool:
        """True when the memory holds every rollup of this resolution in [start, end)."""
        if not self.loaded:
            return False
        grid, since = (self.minutes, self.minutes_from_ns) if resolution == "1m" else (self.hours, self.hours_from_ns)
        return start_ns >= since and grid.holds(start_ns, end_ns)

    def sums(self, resolution: str, start_ns: int, end_ns: int) -> SLIResult:
        """Return good and total per host over [start, end) of this resolution's rollups."""
        return (self.minutes if resolution == "1m" else self.hours).sums(start_ns, end_ns)

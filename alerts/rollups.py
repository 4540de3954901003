"""SLI rollups: each SLO's good and total per host per minute and per hour, kept in the store, and read back exactly.

The alert engine calls `roll_up` every round. A minute is rolled twice: once it ended `LAG_SECONDS` ago, and
again when it is `REROLL_SECONDS` old, five minutes of them at a time (a point of the same series and time
replaces the old one in both stores), so points that arrive up to 10 minutes late, from an agent's spool replay
of a short store outage say, are counted too. A round reads the raw points of the minutes that settled since the
last one, never the whole re-roll window (at 2000 hosts that window is 2.4M domain points). An hour is rolled
(the sum of its minute rollups) once the second pass is past its last minute. On its first round the engine
backfills `BACKFILL_SECONDS`, from the start of an hour, so every hourly rollup holds all of its minutes.

`CountsReader.between` reads good and total over any range whose start is on a whole minute by splitting it into the
pieces each resolution can answer exactly:

    start ─ minute rollups ─ whole hours: hour rollups ─ minute rollups ─ minute_until ─ raw points ─ end

so a 30-day window reads about 720 rows per host, and only the minutes not rolled yet read raw points.
`Coverage` says how far each resolution reaches; `coverage` finds it from the store, so the dashboard and a
restarted engine know it without any state file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alerts.sli import ROLLUP_MEASUREMENT, SLIResult, compute_sli, fleet_rollup_points, read_rollups, rollup_points
from alerts.slo import SLO
from tsdb.point import Point
from tsdb.query import TimeLike, to_ns
from tsdb.store import Store

if TYPE_CHECKING:
    from alerts.sli_memory import SLIMemory

MINUTE_NS = 60 * 10**9
HOUR_NS = 3600 * 10**9
LAG_SECONDS = 60            # a minute is rolled this long after it ends: behind the settled edge (windows.py)
REROLL_SECONDS = 600        # a minute is rolled again when it is 10 minutes old, for late points
REROLL_BATCH_SECONDS = 300  # ... five minutes of them at a time
BACKFILL_SECONDS = 86400    # how far back the first round rolls
MINUTE, HOUR = "1m", "1h"   # the `resolution` tag
ROLL_UP_THREADS = 4         # SLOs rolled up side by side (roll_up_each)
#: an hour is rolled up about 70 minutes after it ends (once the second pass, LAG_SECONDS + REROLL_SECONDS +
#: REROLL_BATCH_SECONDS behind, is past its last minute, on the round after): a reader that does not look the
#: coverage up (rollup_pieces) takes the hour rollups to reach this far before the end of what it reads
HOUR_ROLLUPS_LAG_SECONDS = 2 * 3600


def floor_to(time_ns: int, step_ns: int) -> int:
    """Return time_ns rounded down to a multiple of step_ns."""
    return time_ns - time_ns % step_ns


def ceil_to(time_ns: int, step_ns: int) -> int:
    """Return time_ns rounded up to a multiple of step_ns."""
    return -((-time_ns) // step_ns) * step_ns


@dataclass(frozen=True)
class Coverage:
    """How far an SLO's rollups reach: minutes before `minute_until_ns` and hours before `hour_until_ns` exist."""

    minute_until_ns: int = 0
    hour_until_ns: int = 0
    #: minutes before this were rolled the second time (0: unknown, taken as minute_until - REROLL_SECONDS)
    rerolled_until_ns: int = field(default=0, compare=False)

    @property
    def second_pass_until_ns(self) -> int:
        """Where the second pass reached (minutes before it will not be rolled again)."""
        return self.rerolled_until_ns or max(0, self.minute_until_ns - REROLL_SECONDS * 10**9)


NO_ROLLUPS = Coverage()


def coverage(store: Store, slo: SLO, now: TimeLike) -> Coverage:
    """Return the coverage of an SLO's rollups found in the store (the newest rollup of each resolution)."""
    now_ns = to_ns(now, "now")
    since = now_ns - slo.period_seconds * 10**9

    def reach(resolution: str, width_ns: int) -> int:
        found = store.latest(ROLLUP_MEASUREMENT, ["valid_total"], since, now_ns,
                             where={"slo": slo.name, "resolution": resolution})
        return int(found["time"].astype("int64").max()) + width_ns if len(found) else 0

    return Coverage(reach(MINUTE, MINUTE_NS), reach(HOUR, HOUR_NS))


def _hour_points(store: Store, slo: SLO, start_ns: int, end_ns: int) -> list[Point]:
    """Return the hour rollup points of [start, end) summed from its minute rollups, tagged resolution=1h."""
    frame = store.query(ROLLUP_MEASUREMENT, ["good_total", "valid_total"], start_ns, end_ns,
                        where={"slo": slo.name, "resolution": MINUTE}, window_seconds=3600, aggregate="sum",
                        group_by=["host"])
    frame = frame[frame["valid_total"].notna()]
    return [Point(ROLLUP_MEASUREMENT, {"host": host, "slo": slo.name, "resolution": HOUR},
                  {"good_total": float(good), "valid_total": float(total)}, int(time.value))
            for time, host, good, total in frame[["time", "host", "good_total", "valid_total"]]
            .itertuples(index=False)]


def roll_up(store: Store, slo: SLO, now: TimeLike, done: Coverage, *,
            backfill_seconds: int = BACKFILL_SECONDS, chunk_seconds: int = 3600,
            progress: Callable[[int, int], None] | None = None,
            written: Callable[[list[Point]], None] | None = None) -> Coverage:
    """Write the minute and hour rollups due at `now` after `done`; return the new coverage.

    Rolls the minutes `due_ranges` names, but never from further back than `backfill_seconds`, reading
    raw points `chunk_seconds` at a time (a whole number of hours) so memory stays bounded;
    `progress(done_ns, total_ns)` hears of each chunk; `written(points)` gets every rollup point written (the
    engine's memory of them, alerts.sli_memory).
    """
    if chunk_seconds <= 0 or chunk_seconds % 3600:
        raise ValueError(f"chunk_seconds must be a positive whole number of hours, got {chunk_seconds!r}")
    now_ns = to_ns(now, "now")
    end = floor_to(now_ns - LAG_SECONDS * 10**9, MINUTE_NS)
    earliest = floor_to(end - backfill_seconds * 10**9, HOUR_NS)
    minute_until = done.minute_until_ns
    ranges, rerolled_until = due_ranges(done.minute_until_ns, done.second_pass_until_ns, end, earliest)
    total = sum(b - a for a, b in ranges)
    rolled = 0
    for start, stop in ranges:
        for chunk in range(start, stop, chunk_seconds * 10**9):
            chunk_end = min(chunk + chunk_seconds * 10**9, stop)
            points = rollup_points(store, slo, chunk, chunk_end)
            store.write(points + fleet_rollup_points(points))
            if written:
                written(points)
            minute_until = max(minute_until, chunk_end)
            rolled += chunk_end - chunk
            if progress:
                progress(rolled, total)
    final = floor_to(rerolled_until, HOUR_NS)  # hours whose minutes will not change
    hour_from = max(done.hour_until_ns, earliest)
    hour_until = done.hour_until_ns
    if final > hour_from:
        points = _hour_points(store, slo, hour_from, final)
        store.write(points + fleet_rollup_points(points))
        if written:
            written(points)
        hour_until = final
    return Coverage(minute_until, hour_until, rerolled_until)


def roll_up_each(store: Store, slos: list[SLO], roll: Callable[[SLO, Store], Coverage]) -> dict[str, Coverage]:
    """Run `roll(slo, shared)` (a roll_up through `shared`) for every SLO, side by side on up to ROLL_UP_THREADS
    threads (each SLO waits on its own store reads), where `shared` is `store` reading each distinct query once
    for them all (tsdb.shared_reads: availability and latency count the same probes); return each SLO's new
    coverage by name."""
    from concurrent.futures import ThreadPoolExecutor

    from tsdb.shared_reads import SharedReads

    # a minute's reads of all the SLOs fit (5-6 distinct), a backfill's hour chunks are let go as the SLOs move on
    shared = SharedReads(store, keep=2 * max(1, len(slos)))
    with ThreadPoolExecutor(max_workers=max(1, min(ROLL_UP_THREADS, len(slos))),
                            thread_name_prefix="engine-rollup") as pool:
        return {slo.name: done for slo, done in zip(slos, pool.map(lambda slo: roll(slo, shared), slos))}


def due_ranges(minute_until_ns: int, rerolled_until_ns: int, end_ns: int, earliest_ns: int
               ) -> tuple[list[tuple[int, int]], int]:
    """Return the [start, end) ranges of minutes to roll, and where the second pass then reaches, when the
    rollups reach `minute_until` (the second pass `rerolled_until`) and minutes before `end` have settled: the
    new minutes, and once at least REROLL_BATCH_SECONDS of minutes reached the re-roll age, those (rolled a second
    time, for their late points: one query for 5 minutes, not one per round); never before `earliest`.
    Overlapping ranges are merged."""
    second = (max(rerolled_until_ns, earliest_ns), max(end_ns - REROLL_SECONDS * 10**9, earliest_ns))
    first = (max(minute_until_ns, earliest_ns), end_ns)
    found = [first] if first[0] < first[1] else []
    reached = rerolled_until_ns
    if second[1] - second[0] >= REROLL_BATCH_SECONDS * 10**9 or (second[0] < second[1] and second[1] >= first[0]):
        found.insert(0, second)
        reached = second[1]
    if len(found) == 2 and found[0][1] >= found[1][0]:
        found = [(found[0][0], max(found[0][1], found[1][1]))]
    return [(floor_to(a, MINUTE_NS), b) for a, b in found], reached


def pieces(start_ns: int, end_ns: int, done: Coverage) -> list[tuple[str, int, int]]:
    """Split [start, end) into (source, start, end) pieces: "1m" and "1h" rollups, and "raw" points."""
    if start_ns % MINUTE_NS:
        raise ValueError("a range read through rollups must start on a whole minute")
    minute_end = max(start_ns, min(floor_to(end_ns, MINUTE_NS), done.minute_until_ns))
    hour_start = min(ceil_to(start_ns, HOUR_NS), minute_end)
    hour_end = max(hour_start, min(floor_to(minute_end, HOUR_NS), done.hour_until_ns))
    found = [(MINUTE, start_ns, hour_start), (HOUR, hour_start, hour_end), (MINUTE, hour_end, minute_end),
             ("raw", minute_end, end_ns)]
    return [piece for piece in found if piece[1] < piece[2]]


def rollup_pieces(start_ns: int, end_ns: int, min_hours: int = 1) -> list[tuple[str, int, int]]:
    """Split [start, end) into the "1m" and "1h" rollup pieces that answer it without looking the coverage up: as
    `pieces` splits it for hour rollups reaching HOUR_ROLLUPS_LAG_SECONDS before `end` and minute rollups to `end`
    (the minutes not rolled yet have none: a reader of rollups alone sees what was rolled of them), adjacent
    minute pieces merged; all of it from the minute rollups when the hour rollups would answer fewer than
    `min_hours` whole hours. `start` may fall inside a minute (rollups sit on whole minutes: none is missed)."""
    first = ceil_to(start_ns, MINUTE_NS)
    if first >= end_ns:
        return [(MINUTE, start_ns, end_ns)] if start_ns < end_ns else []
    reach = Coverage(ceil_to(end_ns, MINUTE_NS), floor_to(end_ns - HOUR_ROLLUPS_LAG_SECONDS * 10**9, HOUR_NS))
    found: list[tuple[str, int, int]] = []
    for source, a, b in pieces(first, end_ns, reach):
        source = HOUR if source == HOUR else MINUTE
        if found and found[-1][0] == source:
            found[-1] = (source, found[-1][1], b)
        else:
            found.append((source, a, b))
    if sum(b - a for source, a, b in found if source == HOUR) < min_hours * HOUR_NS:
        return [(MINUTE, start_ns, end_ns)]
    return [(found[0][0], start_ns, found[0][2]), *found[1:]]


class CountsReader:
    """Read an SLO's good and total over ranges through rollups where they exist, caching what it read.

    Each piece is summed by the store (one row per host): fetching rollups per hour or minute and summing here
    costs more in rows than it saves in queries (measured on InfluxDB 1.6: 4,800 hourly rows take 150 ms, a
    summed piece 10-30 ms).
    """

    def __init__(self, store: Store, slo: SLO, done: Coverage = NO_ROLLUPS, memory: "SLIMemory | None" = None) -> None:
        self.store, self.slo, self.done, self.memory = store, slo, done, memory
        self._cache: dict[tuple[str, int, int], SLIResult] = {}
        self.queries = 0  # pieces read from the store (not from the cache or the memory)

    def between(self, start_ns: int, end_ns: int) -> SLIResult:
        """Return good and total per host over [start, end); start on a whole minute when rollups exist."""
        if self.done == NO_ROLLUPS:
            return self._piece("raw", start_ns, end_ns)
        hosts: dict = {}
        for source, a, b in pieces(start_ns, end_ns, self.done):
            for host, counts in self._piece(source, a, b).hosts.items():
                hosts[host] = hosts[host] + counts if host in hosts else counts
        return SLIResult(hosts)

    def _piece(self, source: str, start_ns: int, end_ns: int) -> SLIResult:
        key = (source, start_ns, end_ns)
        if key not in self._cache:
            if source != "raw" and self.memory is not None and self.memory.answers(source, start_ns, end_ns):
                self._cache[key] = self.memory.sums(source, start_ns, end_ns)
                return self._cache[key]
            self.queries += 1
            if source == "raw":
                self._cache[key] = compute_sli(self.store, self.slo, start_ns, end_ns)
            else:
                self._cache[key] = read_rollups(self.store, self.slo, start_ns, end_ns, source)
        return self._cache[key]

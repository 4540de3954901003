"""Every SLO evaluated for every host at once: alerts.burn's figures, read in a few batched queries.

`alerts.burn.evaluate_hosts` reads one SLO at a time, about fifteen small queries each. A page shows all SLOs,
so this module asks for the same pieces (alerts.rollups.pieces: minute and hour rollups, raw points after them)
but reads each rollup piece once for every SLO that needs it (`where slo` is a list, grouped by slo and host).
The figures are the same as evaluate_hosts' (a test holds them equal); only the number of queries differs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from alerts.burn import Evaluation, budget_remaining, burn_windows, evaluation_end
from alerts.rollups import HOUR_NS, MINUTE_NS, NO_ROLLUPS, Coverage, ceil_to, pieces
from alerts.sli import ROLLUP_MEASUREMENT, Counts, SLIResult, compute_sli
from alerts.windows import alert_windows

if TYPE_CHECKING:
    from alerts.slo import SLO
    from tsdb.store import Store

Piece = tuple[str, int, int]  # (source "1m", "1h" or "raw", start_ns, end_ns)
RECENT_MINUTES_SECONDS = 3 * 3600   # minute rollups are looked for here first
RECENT_HOURS_SECONDS = 6 * 3600     # hour rollups (written about 70 minutes after their hour) here first
READ_THREADS = 6                    # pieces are read in parallel (each DuckDB read has its own cursor)


def coverages(store: Store, slos: list[SLO], now_ns: int) -> dict[str, Coverage]:
    """Return each SLO's rollup coverage (as alerts.rollups.coverage finds it) from two queries for all SLOs."""
    if not slos:
        return {}
    reach: dict[str, dict[str, int]] = defaultdict(dict)
    longest = max(slo.period_seconds for slo in slos)
    for resolution, width, recent_seconds in (("1m", MINUTE_NS, RECENT_MINUTES_SECONDS),
                                              ("1h", HOUR_NS, RECENT_HOURS_SECONDS)):
        # the engine rolls up every round: look among recent rollups first (reading the newest row of a long
        # range costs a scan of it), and over the whole period only for SLOs with none recently
        names = [slo.name for slo in slos]
        for lookback in (min(recent_seconds, longest), longest):
            if not names:
                break
            found = store.latest(ROLLUP_MEASUREMENT, ["valid_total"], now_ns - lookback * 10**9, now_ns,
                                 where={"slo": names, "resolution": resolution}, group_by=["slo"])
            for name, time in zip(found["slo"], found["time"].astype("int64")):
                reach[name][resolution] = int(time) + width
            names = [name for name in names if resolution not in reach[name]]
            if lookback == longest:
                break
    out = {}
    for slo in slos:
        own_since = now_ns - slo.period_seconds * 10**9
        minute, hour = reach[slo.name].get("1m", 0), reach[slo.name].get("1h", 0)
        out[slo.name] = Coverage(minute if minute >= own_since + MINUTE_NS else 0,
                                 hour if hour >= own_since + HOUR_NS else 0)
    return out


class BatchedCounts:
    """Good and total per host of several SLOs over several ranges, each rollup piece read once for all SLOs."""

    def __init__(self, store: Store, slos: list[SLO], done: dict[str, Coverage]) -> None:
        self.store = store
        self.slos = {slo.name: slo for slo in slos}
        self.done = done
        self._wanted: dict[Piece, set[str]] = defaultdict(set)
        self._read: dict[tuple[Piece, str], SLIResult] = {}

    def _pieces(self, name: str, start_ns: int, end_ns: int) -> list[Piece]:
        """Return the pieces of [start, end) for one SLO, as alerts.rollups.CountsReader splits it."""
        done = self.done.get(name, NO_ROLLUPS)
        if done == NO_ROLLUPS:
            return [("raw", start_ns, end_ns)]
        return pieces(start_ns, end_ns, done)

    def want(self, name: str, start_ns: int, end_ns: int) -> None:
        """Note that SLO `name` needs [start, end); read() fetches every noted piece."""
        for piece in self._pieces(name, start_ns, end_ns):
            self._wanted[piece].add(name)

    def read(self) -> None:
        """Read every noted piece, in parallel: one query per rollup piece for all its SLOs, raw pieces per SLO."""
        from concurrent.futures import ThreadPoolExecutor

        jobs: list[tuple[Piece, list[str]]] = []
        for piece, names in sorted(self._wanted.items()):
            pending = sorted(name for name in names if (piece, name) not in self._read)
            if piece[0] == "raw":
                jobs.extend((piece, [name]) for name in pending)
            elif pending:
                jobs.append((piece, pending))
        if not jobs:
            return
        with ThreadPoolExecutor(min(READ_THREADS, len(jobs))) as pool:
            for (piece, names), found in zip(jobs, pool.map(lambda job: self._fetch(*job), jobs)):
                for name in names:
                    self._read[(piece, name)] = found[name]

    def _fetch(self, piece: Piece, names: list[str]) -> dict[str, SLIResult]:
        """Read one piece for some SLOs: raw points for one SLO, or one rollup query for all of them."""
        source, start_ns, end_ns = piece
        if source == "raw":
            return {names[0]: compute_sli(self.store, self.slos[names[0]], start_ns, end_ns)}
        # one window as long as the piece: at most two epoch-aligned windows per group, summed
        window_seconds = max(60, -(-(end_ns - start_ns) // 10**9))
        frame = self.store.query(ROLLUP_MEASUREMENT, ["good_total", "valid_total"], start_ns, end_ns,
                                 where={"slo": names, "resolution": source}, window_seconds=window_seconds,
                                 aggregate="sum", group_by=["slo", "host"])
        sums = frame.groupby(["slo", "host"], sort=True)[["good_total", "valid_total"]].sum()
        hosts: dict[str, dict[str, Counts]] = {name: {} for name in names}
        for (name, host), row in sums.iterrows():
            hosts[name][host] = Counts(float(row.good_total), float(row.valid_total))
        return {name: SLIResult(hosts[name]) for name in names}

    def between(self, name: str, start_ns: int, end_ns: int) -> SLIResult:
        """Return SLO `name`'s counts per host over [start, end) (reading any piece not read yet)."""
        wanted = self._pieces(name, start_ns, end_ns)
        if any((piece, name) not in self._read for piece in wanted):
            for piece in wanted:
                self._wanted[piece].add(name)
            self.read()
        hosts: dict[str, Counts] = {}
        for piece in wanted:
            for host, counts in self._read[(piece, name)].hosts.items():
                hosts[host] = hosts[host] + counts if host in hosts else counts
        return SLIResult(hosts)


def _window_start(end_ns: int, seconds: int) -> int:
    """Return where a trailing window of `seconds` starts: the first whole minute at or after end - seconds."""
    return ceil_to(end_ns - seconds * 10**9, MINUTE_NS)


def evaluate_all(store: Store, slos: list[SLO], now_ns: int, *, windows: bool = True
                 ) -> dict[str, dict[str | None, Evaluation]]:
    """Return {slo name: {host or None (the fleet): Evaluation}} at now_ns, as evaluate_hosts gives them.

    Without `windows`, only the period is read (budgets); the evaluations' burn windows are then empty.
    """
    reader = BatchedCounts(store, slos, coverages(store, slos, now_ns))
    ends = {slo.name: evaluation_end(slo, now_ns) for slo in slos}
    lengths = {}
    for slo in slos:
        seconds = {slo.period_seconds}
        if windows:
            for window in alert_windows(slo.period):
                seconds |= {window.long_seconds, window.short_seconds}
        lengths[slo.name] = seconds
        for length in seconds:
            reader.want(slo.name, _window_start(ends[slo.name], length), ends[slo.name])
    reader.read()
    out: dict[str, dict[str | None, Evaluation]] = {}
    for slo in slos:
        end = ends[slo.name]

        def result(seconds: int, name: str = slo.name, end: int = end) -> SLIResult:
            return reader.between(name, _window_start(end, seconds), end)

        period = result(slo.period_seconds)
        evaluations: dict[str | None, Evaluation] = {}
        for host in [None, *sorted(period.hosts)]:
            counts = period.counts(host)
            burns = (burn_windows(slo, lambda seconds, host=host, result=result: result(seconds).counts(host))
                     if windows else ())
            evaluations[host] = Evaluation(slo, host, now_ns, counts, budget_remaining(counts, slo.objective), burns)
        out[slo.name] = evaluations
    return out

"""Error budgets and burn rates: pure functions on counts, and `evaluate` which reads them from the store.

The math is exact: counts and the objective become fractions (99.9 is 999/10, never 99.900000000000006), so
one bad probe in a hundred against 99.9% burns at exactly 10.0. A range with no events has no rate (None),
and a window pair with no rate does not fire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from alerts.rollups import HOUR_NS, MINUTE_NS, NO_ROLLUPS, Coverage, CountsReader, ceil_to
from alerts.sli import Counts, SLIResult
from alerts.sli_memory import SLIMemory
from alerts.slo import SLO, error_budget
from alerts.windows import SETTLED_LAG_SECONDS, AlertWindow, alert_windows
from tsdb.query import TimeLike, to_ns
from tsdb.store import Store

if TYPE_CHECKING:
    import numpy as np

HOUR_ALIGNED_FROM_SECONDS = 86400  # windows this long start on a whole hour


def _whole(good: float, total: float) -> tuple[int, int] | None:
    """Return (bad, total) as ints when both counts are whole numbers (every built-in SLI), else None."""
    good, total = float(good), float(total)
    if good.is_integer() and total.is_integer():
        return int(total) - int(good), int(total)
    return None


def error_rate(counts: Counts) -> float | None:
    """Return 1 - good/total, or None when there were no events."""
    if counts.total <= 0:
        return None
    return float(1 - Fraction(counts.good) / Fraction(counts.total))


def sli_percent(counts: Counts) -> float | None:
    """Return the SLI, 100 x good/total in percent (correctly rounded for whole counts); None when there were no
    events."""
    if counts.total <= 0:
        return None
    whole = _whole(counts.good, counts.total)
    if whole is not None:
        bad, total = whole
        return _percent_of(total - bad, total)
    return float(Fraction(counts.good) * 100 / Fraction(counts.total))


def burn_rate(counts: Counts, objective: float) -> float | None:
    """Return the error rate divided by the error budget (1 - objective/100); None when there were no events.

    Whole counts take the integer path: Python's int / int is correctly rounded, so bad x q / (total x p) for a
    budget p/q is the same float as the Fraction, at a tenth of the cost (16,000 of these per SLO at 2000 hosts)."""
    if counts.total <= 0:
        return None
    budget = error_budget(objective)
    whole = _whole(counts.good, counts.total)
    if whole is not None:
        bad, total = whole
        return _burn_of(bad, total, budget)
    return float((1 - Fraction(counts.good) / Fraction(counts.total)) / budget)


def _percent_of(good, total):
    """Return 100 x good / total of whole numbers: Python ints, or int64 arrays below 2**53 / 100 (converted to
    floats exactly, then divided once: the same correctly rounded float)."""
    return (good * 100) / total


def _burn_of(bad, total, budget: Fraction):
    """Return bad x q / (total x p) for a budget p/q of whole numbers: Python ints, or int64 arrays whose products
    stay below 2**53 (converted to floats exactly, then divided once: the same correctly rounded float)."""
    return (bad * budget.denominator) / (total * budget.numerator)


def series_figures(goods: Sequence[float], totals: Sequence[float], objective: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Return the SLI (percent) and burn rate of each window of a series of good and total events, NaN where a
    window has none: the same floats as sli_percent and burn_rate of its Counts, figured for whole arrays at once
    (a dashboard series has up to 300 windows per SLO) and one by one only for counts that are not whole."""
    import numpy as np

    goods, totals = np.asarray(goods, dtype="float64"), np.asarray(totals, dtype="float64")
    slis, burns = np.full(len(goods), np.nan), np.full(len(goods), np.nan)
    budget = error_budget(objective)
    exact_below = 2**53 // max(100, budget.denominator)
    whole = ((goods == np.floor(goods)) & (totals == np.floor(totals)) & (totals > 0) & (totals < exact_below)
             & (goods >= 0) & (goods <= totals))
    good, total = goods[whole].astype("int64"), totals[whole].astype("int64")
    slis[whole], burns[whole] = _percent_of(good, total), _burn_of(total - good, total, budget)
    for index in np.flatnonzero(~whole & (totals > 0) & np.isfinite(goods) & np.isfinite(totals)).tolist():
        counts = Counts(float(goods[index]), float(totals[index]))
        slis[index], burns[index] = sli_percent(counts), burn_rate(counts, objective)
    return slis, burns


def budget_remaining(counts: Counts, objective: float) -> float | None:
    """Return the share of the period's budget left, 1 - (bad/total)/(1 - objective/100); negative when overspent."""
    if counts.total <= 0:
        return None
    budget = error_budget(objective)
    whole = _whole(counts.good, counts.total)
    if whole is not None:
        bad, total = whole
        return (total * budget.numerator - bad * budget.denominator) / (total * budget.numerator)
    return float(1 - (Fraction(counts.bad) / Fraction(counts.total)) / budget)


@dataclass(frozen=True)
class WindowBurn:
    """One window pair of the catalog evaluated: both burn rates and whether the alert condition holds."""

    window: AlertWindow
    long_burn: float | None
    short_burn: float | None

    @property
    def firing(self) -> bool:
        """True when both windows burn at least the window's factor."""
        factor = self.window.factor
        return (self.long_burn is not None and self.short_burn is not None
                and self.long_burn >= factor and self.short_burn >= factor)


@dataclass(frozen=True)
class Evaluation:
    """An SLO evaluated for one host (or the fleet, host None) at `now_ns`."""

    slo: SLO
    host: str | None
    now_ns: int
    period: Counts
    budget_remaining: float | None
    windows: tuple[WindowBurn, ...]

    @property
    def firing(self) -> tuple[WindowBurn, ...]:
        """The window pairs whose condition holds."""
        return tuple(w for w in self.windows if w.firing)


def burn_windows(slo: SLO, counts_over) -> tuple[WindowBurn, ...]:
    """Evaluate every catalog window of the SLO's period; `counts_over(seconds)` returns the trailing counts."""
    return tuple(WindowBurn(window, burn_rate(counts_over(window.long_seconds), slo.objective),
                            burn_rate(counts_over(window.short_seconds), slo.objective))
                 for window in alert_windows(slo.period))




def evaluation_end(slo: SLO, now_ns: int) -> int:
    """Return where an SLO's windows end at `now`: the settled edge, SETTLED_LAG_SECONDS before now; for
    collection freshness the end of the last whole interval whose next interval is settled too (whether a
    collection was missed depends on the point after it), so the current, incomplete interval never counts."""
    settled = now_ns - SETTLED_LAG_SECONDS * 10**9
    if slo.sli == "collection_freshness":
        step = slo.interval_seconds * 10**9
        return settled - settled % step - step
    return settled


def evaluate_hosts(store: Store, slo: SLO, now: TimeLike, coverage: Coverage = NO_ROLLUPS,
                   memory: SLIMemory | None = None) -> dict[str | None, Evaluation]:
    """Evaluate an SLO for every host with events in its period, and for the fleet (key None), at `now`.

    Every window ends at `evaluation_end` and starts on the first whole minute (for windows of a day or more:
    the first whole hour) at or after its end minus its length: a day-long window then reads whole hours and one
    raw tail, never a minute head, and is at most an hour (4%) short. With a `coverage` (alerts.rollups), windows read the minute and hour rollups where they exist and
    raw points after them; the figures are the same as from raw points alone, only cheaper. With a `memory`
    (alerts.sli_memory, the engine's), the rollup pieces it holds are summed there instead of read.
    """
    now_ns = to_ns(now, "now")
    end = evaluation_end(slo, now_ns)
    reader = CountsReader(store, slo, coverage, memory)
    results: dict[int, SLIResult] = {}

    def result_over(seconds: int) -> SLIResult:
        if seconds not in results:
            align = HOUR_NS if seconds >= HOUR_ALIGNED_FROM_SECONDS else MINUTE_NS
            results[seconds] = reader.between(ceil_to(end - seconds * 10**9, align), end)
        return results[seconds]

    period = result_over(slo.period_seconds)
    evaluations = {}
    for host in [None, *sorted(period.hosts)]:
        counts = period.counts(host)
        evaluations[host] = Evaluation(
            slo, host, now_ns, counts, budget_remaining(counts, slo.objective),
            burn_windows(slo, lambda seconds, host=host: result_over(seconds).counts(host)))
    return evaluations


def evaluate(store: Store, slo: SLO, now: TimeLike, host: str | None = None, *,
             coverage: Coverage = NO_ROLLUPS) -> Evaluation:
    """Evaluate an SLO for one host (or the fleet, host None) at `now`; see evaluate_hosts."""
    evaluations = evaluate_hosts(store, slo, now, coverage)
    if host in evaluations:
        return evaluations[host]
    fleet = evaluations[None]
    empty = Counts()
    return Evaluation(slo, host, fleet.now_ns, empty, None,
                      burn_windows(slo, lambda seconds: empty))


def evaluate_slos(store: Store, slos: list[SLO], now: TimeLike, coverages: dict[str, Coverage] | None = None,
                  workers: int = 4, memories: dict[str, SLIMemory] | None = None
                  ) -> dict[str, dict[str | None, Evaluation]]:
    """Evaluate several SLOs at once, in `workers` threads (both stores serve reads in parallel), reading what they
    share once (tsdb.shared_reads: availability and latency read the same probes); by SLO name."""
    from concurrent.futures import ThreadPoolExecutor

    from tsdb.shared_reads import SharedReads

    coverages = coverages or {}
    shared = SharedReads(store, keep=16 * max(1, len(slos)))  # every window's pieces: sums, and a short raw tail
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(slos) or 1))) as pool:
        memories = memories or {}
        futures = {slo.name: pool.submit(evaluate_hosts, shared, slo, now, coverages.get(slo.name, NO_ROLLUPS),
                                         memories.get(slo.name))
                   for slo in slos}
        return {name: future.result() for name, future in futures.items()}

"""Load versus failure for one scope, range and failure kind: every analysis, the verdict and the finding.

    inputs = load_inputs(store, scope=None, start="2024-05-01", end="2024-05-15", kinds="restart")
    result = analyze(inputs)
    print(result.finding)

`analyze` returns one CorrelationResult holding what a page draws: rates per load bucket with Garwood
intervals, the top/bottom rate ratio of each signal at each lag looked at (lag 0 and lag 1 by default), tested
against circular shifts of the failures and adjusted over every signal and lag at once by the maximum statistic,
with the interval of the same test (analysis.ratio_test), the event-triggered average of each signal, the AUC
ranking of signals by lead time (shift-calibrated p-values, Benjamini-Hochberg), the verdict, the lag that
carries it, and one sentence. The two families of tests share the error budget `alpha` (half each), so on data
with no effect the result calls anything significant with probability at most alpha; the ranking claims that
a signal precedes failures only for a signal the verdict found an effect of.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from analysis import verdict as v
from analysis.buckets import BucketRates, bucket_rates, codes_of, ratio_or_nan
from analysis.exposure import NS, Grid, Inputs, build_grid
from analysis.lead import LeadRanking, lead_steps_of, rank_leads
from analysis.ratio_test import RatioTest, run_ratio_tests
from analysis.shifts import draw_offsets
from analysis.signals import parse_signal
from analysis.stats import Ordering
from analysis.triggered import TriggeredAverage, triggered_average

RATIO_COLUMNS = ("signal", "label", "lag_steps", "buckets", "ratio", "lower", "upper", "p_value", "p_shift",
                 "p_adjusted", "z", "null_ratio", "raw_ratio", "exact_lower", "exact_upper", "failures",
                 "failures_without_signal", "bottom_host_days", "top_host_days", "status")
NO_VARIATION = "no_variation"


@dataclass(frozen=True)
class Settings:
    """How the analysis looks at the data; every default is a choice the result reports."""

    #: a failure in step s is attributed to the load of step s - lag for each lag looked at (0: the failure's own
    #: step, which sees load shorter than a step; 1: load measured before it, which the failure cannot have
    #: caused); one lag or several, the test adjusts for every lag looked at
    lag_steps: int | tuple[int, ...] = (0, 1)
    #: quantile buckets of exposure per signal (4: quartiles)
    n_buckets: int = 4
    #: the event-triggered average spans -window_seconds to +window_seconds around each failure
    window_seconds: int = 3600
    #: lead times of the AUC ranking, and the window "a failure within the next N" they look ahead
    lead_seconds: tuple[int, ...] = (0, 300, 900, 1800, 3600)
    horizon_seconds: int = 1800
    #: circular shifts of failure times that calibrate the AUC p-values (their spread, normal approximation)
    shifts: int = 200
    #: circular shifts behind the rate ratios' permutation test (its p-value's floor: 1 / (ratio_shifts + 1))
    ratio_shifts: int = 2000
    #: the error budget of everything the result calls significant, split in two equal halves: the rate ratios
    #: (maximum statistic over signals x lags: the verdict) and the AUC ranking (Benjamini-Hochberg over signals
    #: x leads). With no effect at all, the chance that anything is called significant is at most alpha.
    alpha: float = 0.05
    confidence: float = 0.95
    #: below these the verdict says "not enough" instead of testing
    min_failures: int = 10
    min_bucket_host_days: float = 1.0
    #: baseline draws of the triggered average: this many per failure, at least baseline_min
    baseline_factor: int = 5
    baseline_min: int = 200
    seed: int = 0

    @property
    def family_alpha(self) -> float:
        """The level each of the two families of tests is held to: alpha / 2."""
        return self.alpha / 2

    @property
    def lags(self) -> tuple[int, ...]:
        """The lags looked at, in order."""
        return (self.lag_steps,) if isinstance(self.lag_steps, int) else tuple(self.lag_steps)

    def checked(self) -> "Settings":
        """Return self (its lags a sorted tuple), or raise ValueError naming the setting and why it is wrong."""
        lags = self.lag_steps if isinstance(self.lag_steps, (tuple, list)) else (self.lag_steps,)
        if not lags or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in lags):
            raise ValueError(f"lag_steps = {self.lag_steps!r}: expected a whole number of steps, 0 or more, or "
                             f"a list of them")
        checked = replace(self, lag_steps=tuple(sorted(set(lags))))
        for name in ("n_buckets", "window_seconds", "horizon_seconds", "shifts", "ratio_shifts",
                     "min_failures",
                     "baseline_factor", "baseline_min", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} = {value!r}: expected a whole number, 0 or more")
        for name in ("alpha", "confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"{name} = {value!r}: expected a number between 0 and 1")
        if not isinstance(self.min_bucket_host_days, (int, float)) or self.min_bucket_host_days < 0:
            raise ValueError(f"min_bucket_host_days = {self.min_bucket_host_days!r}: expected a number, 0 or more")
        return checked


@dataclass(frozen=True)
class CorrelationResult:
    """Everything the correlation page shows for one scope, range and set of failure kinds."""

    kinds: tuple[str, ...]
    #: the scope: None for the fleet, else the hosts asked for
    scope: tuple[str, ...] | None
    start: pd.Timestamp
    end: pd.Timestamp
    step_seconds: int
    settings: Settings
    #: hosts with load data in the range
    hosts: tuple[str, ...]
    #: failures placed on the grid, and the hosts they happened on
    failures: int
    failing_hosts: int
    #: failures of hosts that sent no load data at all in the range (left out)
    unplaced_failures: int
    #: the lag the result reports: the one carrying the effect, or the strongest evidence (one of settings.lags)
    lag_steps: int
    #: per signal: rates per load bucket and the top/bottom ratio, at lag_steps
    rates: dict[str, BucketRates]
    #: one row per signal (RATIO_COLUMNS) at lag_steps, in the order asked
    ratios: pd.DataFrame
    triggered: dict[str, TriggeredAverage]
    leads: LeadRanking
    verdict: v.Verdict
    finding: str
    #: the failures themselves: host, time, kind, step_index
    failure_events: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    #: every lag looked at: lag -> one row per signal (RATIO_COLUMNS)
    ratios_by_lag: dict[int, pd.DataFrame] = field(repr=False, default_factory=dict)


def analyze(data: Inputs | Grid, settings: Settings | None = None, **overrides) -> CorrelationResult:
    """Run every analysis on inputs (or a grid built from them) and return one result with verdict and finding.

    Settings come from `settings` and/or keyword overrides (analyze(inputs, lag_steps=0)); unknown keywords
    raise ValueError naming them.
    """
    settings = settings or Settings()
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"analyze: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if "lead_seconds" in overrides and not isinstance(overrides["lead_seconds"], tuple):
        lead = overrides["lead_seconds"]
        overrides["lead_seconds"] = tuple(lead) if isinstance(lead, (list, tuple)) else (lead,)
    settings = replace(settings, **overrides).checked()
    if isinstance(data, Inputs):
        scope, end_ns = data.hosts, data.end_ns
        grid = build_grid(data)
    elif isinstance(data, Grid):
        scope, end_ns, grid = None, data.start_ns + data.steps * data.step_ns, data
    else:
        raise ValueError(f"data: expected analysis Inputs (load_inputs) or a Grid, got {type(data).__name__}")
    s = settings
    events = grid.failure_events
    host_index = events["host_index"].to_numpy(dtype="int64")
    step_index = events["step_index"].to_numpy(dtype="int64")
    reach = max(s.lags) + lead_steps_of(s.lead_seconds, grid.step_seconds)[-1] + \
        max(1, int(round(s.horizon_seconds / grid.step_seconds)))
    offsets = draw_offsets(len(grid.hosts), grid.steps, reach, s.ratio_shifts, s.seed)
    orderings = {name: Ordering(values) for name, values in grid.values.items()}  # one sort per signal
    codes: dict = {}  # each signal's bucket per cell, shared by the lags with the same cuts and the shift test
    rates_by_lag = {lag: {name: bucket_rates(name, values, grid.failures, grid.step_seconds, lag, s.n_buckets,
                                             s.confidence, orderings[name], codes)
                          for name, values in grid.values.items()} for lag in s.lags}
    ratios_by_lag = _ratio_tables(rates_by_lag, grid, host_index, step_index, offsets, s, codes)
    lag = _reported_lag(ratios_by_lag, s)
    rates, ratios = rates_by_lag[lag], ratios_by_lag[lag]
    triggered = {name: triggered_average(name, values, host_index, step_index, grid.step_seconds,
                                         s.window_seconds, s.baseline_factor, s.baseline_min, s.confidence, s.seed)
                 for name, values in grid.values.items()}
    leads = rank_leads(grid.values, host_index, step_index, grid.step_seconds, s.lead_seconds, s.horizon_seconds,
                       lag, s.shifts, s.family_alpha, s.seed, orderings)
    leads = _gated(leads, ratios)
    failing_hosts = int(len(np.unique(host_index)))
    judged = judge(ratios, s)
    evidence = _evidence(ratios, rates, judged, grid, int(len(events)), failing_hosts, end_ns, s, lag)
    frame = pd.DataFrame({
        "host": np.asarray(grid.hosts, dtype=object)[host_index] if len(grid.hosts) else np.zeros(0, dtype=object),
        "time": pd.to_datetime(events["time_ns"].to_numpy(dtype="int64"), unit="ns", utc=True),
        "kind": events["kind"].to_numpy(), "step_index": step_index,
    })
    return CorrelationResult(
        kinds=grid.kinds, scope=scope, start=pd.Timestamp(grid.start_ns, unit="ns", tz="UTC"),
        end=pd.Timestamp(end_ns, unit="ns", tz="UTC"), step_seconds=grid.step_seconds, settings=s,
        hosts=grid.hosts, failures=int(len(events)), failing_hosts=failing_hosts,
        unplaced_failures=grid.unplaced_failures, lag_steps=lag, rates=rates, ratios=ratios, triggered=triggered,
        leads=leads, verdict=judged, finding=v.finding(judged, evidence), failure_events=frame,
        ratios_by_lag=ratios_by_lag)


def _ratio_tables(rates_by_lag: dict[int, dict[str, BucketRates]], grid: Grid, host_index: np.ndarray,
                  step_index: np.ndarray, offsets: np.ndarray, s: Settings,
                  codes: dict | None = None) -> dict[int, pd.DataFrame]:
    """Return per lag one row per signal: its top/bottom ratio and interval from the shift test, its p-values
    (adjusted over every signal and lag that could be tested), and its status.

    ratio, lower and upper are the shift test's estimate and interval, p_shift its own permutation p-value and
    p_adjusted the maximum-statistic one (analysis.ratio_test), z its standardized statistic, null_ratio where
    the shifted failures' ratios centre; raw_ratio,
    exact_lower, exact_upper and p_value are the plain ratio with its exact Poisson interval and test (which assume
    independent failures: for reference only).
    """
    rows, tests, where = [], [], []
    for lag, rates in rates_by_lag.items():
        for name, r in rates.items():
            raw, exact_lower, exact_upper, p_exact = ratio_or_nan(r)
            buckets = r.buckets
            bottom = float(buckets["exposure_host_days"].iloc[0]) if len(buckets) else 0.0
            top = float(buckets["exposure_host_days"].iloc[-1]) if len(buckets) else 0.0
            if len(buckets) < 2:
                status = NO_VARIATION if len(buckets) else v.NOT_ENOUGH_EXPOSURE
            elif r.failures < s.min_failures:
                status = v.NOT_ENOUGH_FAILURES
            elif min(bottom, top) < s.min_bucket_host_days:
                status = v.NOT_ENOUGH_EXPOSURE
            else:
                status = "testable"
                tests.append(RatioTest(codes_of(name, grid.values[name], r.cuts, codes), len(buckets) - 1, top,
                                       bottom, lag))
                where.append(len(rows))
            rows.append([name, parse_signal(name).label, lag, len(buckets), math.nan, math.nan, math.nan, p_exact,
                         math.nan, math.nan, math.nan, math.nan, raw, exact_lower, exact_upper, r.failures,
                         r.failures_without_signal, bottom, top, status])
    for row_at, outcome in zip(where, run_ratio_tests(tests, host_index, step_index, offsets, grid.steps,
                                                     s.confidence)):
        row = rows[row_at]
        row[4:7] = [outcome.estimate, outcome.lower, outcome.upper]
        row[8:12] = [outcome.p_value, outcome.p_adjusted, outcome.z, outcome.null_ratio]
        if math.isnan(outcome.p_adjusted):
            row[-1] = NO_VARIATION
            continue
        # an effect needs the adjusted test AND the interval: both away from 1, on the same side
        same_side = (outcome.lower > 1 and outcome.z > 0) or (outcome.upper < 1 and outcome.z < 0)
        row[-1] = v.EFFECT if outcome.p_adjusted < s.family_alpha and same_side else v.NO_SIGNIFICANT_EFFECT
    table = pd.DataFrame(rows, columns=list(RATIO_COLUMNS))
    return {lag: table[table["lag_steps"] == lag].reset_index(drop=True) for lag in rates_by_lag}


def _reported_lag(ratios_by_lag: dict[int, pd.DataFrame], s: Settings) -> int:
    """Return the lag whose test carries the most evidence: the smallest exact p-value among effects, else the
    smallest adjusted p-value (as judge names its signal)."""
    table = pd.concat(ratios_by_lag.values(), ignore_index=True)
    tested = table[table["status"].isin([v.EFFECT, v.NO_SIGNIFICANT_EFFECT])]
    if tested.empty:
        return 1 if 1 in s.lags else s.lags[0]
    effects = tested[tested["status"] == v.EFFECT].assign(strength=lambda t: -t["z"].abs())
    if len(effects):
        return int(effects.sort_values(["p_value", "strength"], kind="mergesort").iloc[0]["lag_steps"])
    ranked = tested.assign(strength=-tested["z"].abs())
    return int(ranked.sort_values(["p_adjusted", "p_value", "strength"], kind="mergesort").iloc[0]["lag_steps"])


def _gated(leads: LeadRanking, ratios: pd.DataFrame) -> LeadRanking:
    """Return the ranking with `precedes`: significant at some lead, and an effect in the verdict's test too
    (a gate, so the ranking never claims more than the verdict)."""
    effects = set(ratios.loc[ratios["status"] == v.EFFECT, "signal"])
    leaders = leads.leaders.assign(precedes=leads.leaders["significant"].astype(bool)
                                   & leads.leaders["signal"].isin(effects))
    return replace(leads, leaders=leaders)


def judge(ratios: pd.DataFrame, s: Settings) -> v.Verdict:
    """Return the verdict from the per-signal table (see analysis.verdict)."""
    tested = ratios[ratios["status"].isin([v.EFFECT, v.NO_SIGNIFICANT_EFFECT])]
    most_failures = int(ratios["failures"].max()) if len(ratios) else 0
    if most_failures < s.min_failures:
        return v.Verdict(v.NOT_ENOUGH_FAILURES, f"at least {s.min_failures} needed")
    if tested.empty:
        days = f"{s.min_bucket_host_days:g} host-day{'' if s.min_bucket_host_days == 1 else 's'}"
        return v.Verdict(v.NOT_ENOUGH_EXPOSURE, f"no signal has {days} or more of load data in both its lowest "
                                                f"and its highest bucket")
    # The signal named: among those with an effect, the smallest exact p-value (permutation p-values stop at
    # 1 / (shifts + 1), so far in the tail they no longer rank signals); with no effect, the smallest adjusted
    # p-value.
    ranked = tested.assign(strength=tested["z"].abs())
    effects = ranked[ranked["status"] == v.EFFECT]
    looked = f"over {_count_tests(ratios, s)}"
    if len(effects):
        best = effects.sort_values(["p_value", "strength"], ascending=[True, False], kind="mergesort").iloc[0]
        reason = f"shift-permutation p = {best['p_adjusted']:.2g} < {s.family_alpha:g}, adjusted {looked}"
        return v.Verdict(v.EFFECT, reason, best["signal"])
    best = ranked.sort_values(["p_adjusted", "p_value", "strength"], ascending=[True, True, False],
                              kind="mergesort").iloc[0]
    reason = f"no shift-permutation p-value below {s.family_alpha:g}, adjusted {looked}"
    return v.Verdict(v.NO_SIGNIFICANT_EFFECT, reason, best["signal"])


def _count_tests(ratios: pd.DataFrame, s: Settings) -> str:
    """Return what the adjustment covered: "6 signals at lags 0 and 1"."""
    signals = int(ratios["status"].isin([v.EFFECT, v.NO_SIGNIFICANT_EFFECT]).sum())
    return f"{signals} signal{'' if signals == 1 else 's'} at {v.lags_words(s.lags)}"


def _evidence(ratios: pd.DataFrame, rates: dict[str, BucketRates], judged: v.Verdict, grid: Grid, failures: int,
              failing_hosts: int, end_ns: int, s: Settings, lag: int) -> v.Evidence:
    """Return the numbers the finding sentence quotes."""
    tested = int(ratios["status"].isin([v.EFFECT, v.NO_SIGNIFICANT_EFFECT]).sum())
    base = v.Evidence(kinds=grid.kinds, failures=failures, failing_hosts=failing_hosts,
                      range_seconds=(end_ns - grid.start_ns) / NS, step_seconds=grid.step_seconds,
                      lag_steps=lag, tested_signals=tested, lags=s.lags)
    if judged.signal is None:
        return base
    row = ratios.set_index("signal").loc[judged.signal]
    buckets = rates[judged.signal].buckets
    return replace(base, signal=judged.signal, signal_label=row["label"], ratio=row["ratio"], lower=row["lower"],
                   upper=row["upper"], p_value=row["p_shift"], p_adjusted=row["p_adjusted"],
                   null_ratio=row["null_ratio"], alpha=s.family_alpha, confidence=s.confidence,
                   top_from=float(buckets["lower"].iloc[-1]), bottom_below=float(buckets["upper"].iloc[0]))

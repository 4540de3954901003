"""Load versus failure for one scope, range and failure kind: every analysis, the verdict and the finding.

    inputs = load_inputs(store, scope=None, start="2024-05-01", end="2024-05-15", kinds="restart")
    result = analyze(inputs)
    print(result.finding)

`analyze` returns one CorrelationResult holding what a page draws: rates per load bucket with Garwood
intervals, the top/bottom rate ratio of each signal (exact conditional test, Holm-adjusted over signals), the
event-triggered average of each signal, the AUC ranking of signals by lead time (shift-calibrated p-values,
Benjamini-Hochberg), the verdict and one sentence. The two families of tests share the error budget `alpha`
(half each), so on data with no effect the result calls anything significant with probability at most alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from analysis import verdict as v
from analysis.buckets import BucketRates, bucket_rates, ratio_or_nan
from analysis.exposure import NS, Grid, Inputs, build_grid
from analysis.lead import LeadRanking, lead_steps_of, rank_leads
from analysis.shifts import draw_offsets
from analysis.signals import parse_signal
from analysis.stats import Ordering, holm
from analysis.triggered import TriggeredAverage, triggered_average

RATIO_COLUMNS = ("signal", "label", "buckets", "ratio", "lower", "upper", "p_value", "p_shift", "p_adjusted",
                 "failures", "failures_without_signal", "bottom_host_days", "top_host_days", "status")
NO_VARIATION = "no_variation"


@dataclass(frozen=True)
class Settings:
    """How the analysis looks at the data; every default is a choice the result reports."""

    #: a failure in step s is attributed to the load of step s - lag_steps (1: load measured before it)
    lag_steps: int = 1
    #: quantile buckets of exposure per signal (4: quartiles)
    n_buckets: int = 4
    #: the event-triggered average spans -window_seconds to +window_seconds around each failure
    window_seconds: int = 3600
    #: lead times of the AUC ranking, and the window "a failure within the next N" they look ahead
    lead_seconds: tuple[int, ...] = (0, 300, 900, 1800, 3600)
    horizon_seconds: int = 1800
    #: circular shifts of failure times that calibrate the AUC p-values (their spread, normal approximation)
    shifts: int = 200
    #: circular shifts behind the rate ratios' storm-proof permutation p-value (its floor: 2 / (ratio_shifts + 1))
    ratio_shifts: int = 2000
    #: the error budget of everything the result calls significant, split in two equal halves: the rate ratios
    #: (Holm over signals: the verdict) and the AUC ranking (Benjamini-Hochberg over signals x leads). With no
    #: effect at all, the chance that anything is called significant is at most alpha.
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

    def checked(self) -> "Settings":
        """Return self, or raise ValueError naming the setting and why it is wrong."""
        for name in ("lag_steps", "n_buckets", "window_seconds", "horizon_seconds", "shifts", "ratio_shifts",
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
        return self


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
    #: per signal: rates per load bucket and the top/bottom ratio
    rates: dict[str, BucketRates]
    #: one row per signal (RATIO_COLUMNS), in the order asked
    ratios: pd.DataFrame
    triggered: dict[str, TriggeredAverage]
    leads: LeadRanking
    verdict: v.Verdict
    finding: str
    #: the failures themselves: host, time, kind, step_index
    failure_events: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


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
    reach = s.lag_steps + lead_steps_of(s.lead_seconds, grid.step_seconds)[-1] + \
        max(1, int(round(s.horizon_seconds / grid.step_seconds)))
    offsets = draw_offsets(len(grid.hosts), grid.steps, reach, s.ratio_shifts, s.seed)
    orderings = {name: Ordering(values) for name, values in grid.values.items()}  # one sort per signal
    rates = {name: bucket_rates(name, values, grid.failures, grid.step_seconds, s.lag_steps, s.n_buckets,
                                s.confidence, (host_index, step_index), offsets, orderings[name])
             for name, values in grid.values.items()}
    ratios = _ratio_table(rates, s)
    triggered = {name: triggered_average(name, values, host_index, step_index, grid.step_seconds,
                                         s.window_seconds, s.baseline_factor, s.baseline_min, s.confidence, s.seed)
                 for name, values in grid.values.items()}
    leads = rank_leads(grid.values, host_index, step_index, grid.step_seconds, s.lead_seconds, s.horizon_seconds,
                       s.lag_steps, s.shifts, s.family_alpha, s.seed, orderings)
    failing_hosts = int(len(np.unique(host_index)))
    judged = judge(ratios, s)
    evidence = _evidence(ratios, rates, judged, grid, int(len(events)), failing_hosts, end_ns, s)
    frame = pd.DataFrame({
        "host": np.asarray(grid.hosts, dtype=object)[host_index] if len(grid.hosts) else np.zeros(0, dtype=object),
        "time": pd.to_datetime(events["time_ns"].to_numpy(dtype="int64"), unit="ns", utc=True),
        "kind": events["kind"].to_numpy(), "step_index": step_index,
    })
    return CorrelationResult(
        kinds=grid.kinds, scope=scope, start=pd.Timestamp(grid.start_ns, unit="ns", tz="UTC"),
        end=pd.Timestamp(end_ns, unit="ns", tz="UTC"), step_seconds=grid.step_seconds, settings=s,
        hosts=grid.hosts, failures=int(len(events)), failing_hosts=failing_hosts,
        unplaced_failures=grid.unplaced_failures, rates=rates, ratios=ratios, triggered=triggered, leads=leads,
        verdict=judged, finding=v.finding(judged, evidence), failure_events=frame)


def _ratio_table(rates: dict[str, BucketRates], s: Settings) -> pd.DataFrame:
    """Return one row per signal: its top/bottom ratio, Holm-adjusted p-value over testable signals, status.

    p_value is the exact conditional test, p_shift the same ratio against circular shifts of the failures;
    p_adjusted is Holm's adjustment of the larger of the two over the signals that could be tested.
    """
    rows = []
    for name, r in rates.items():
        ratio, lower, upper, p = ratio_or_nan(r)
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
        rows.append((name, parse_signal(name).label, len(buckets), ratio, lower, upper, p, r.p_shift, math.nan,
                     r.failures, r.failures_without_signal, bottom, top, status))
    table = pd.DataFrame(rows, columns=list(RATIO_COLUMNS))
    testable = (table["status"] == "testable").to_numpy()
    if testable.any():
        # the larger of the exact and the shift-calibrated p-value: valid whether or not failures come in storms
        tested = table.loc[testable, ["p_value", "p_shift"]]
        adjusted = holm(tested.max(axis=1, skipna=True).to_numpy())
        table.loc[testable, "p_adjusted"] = adjusted
        table.loc[testable, "status"] = np.where(adjusted < s.family_alpha, v.EFFECT, v.NO_SIGNIFICANT_EFFECT)
    return table


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
    # The signal named: among those with an effect, the smallest exact p-value (far in the tails the
    # shift-calibrated p-values are normal approximations that no longer rank signals reliably); with no effect,
    # the smallest adjusted p-value.
    ranked = tested.assign(strength=np.abs(np.log(tested["ratio"].clip(lower=1e-300))))
    effects = ranked[ranked["status"] == v.EFFECT]
    if len(effects):
        best = effects.sort_values(["p_value", "strength"], ascending=[True, False], kind="mergesort").iloc[0]
        reason = f"Holm-adjusted p = {best['p_adjusted']:.2g} < {s.family_alpha:g}"
        return v.Verdict(v.EFFECT, reason, best["signal"])
    best = ranked.sort_values(["p_adjusted", "p_value", "strength"], ascending=[True, True, False],
                              kind="mergesort").iloc[0]
    reason = f"no Holm-adjusted p-value below {s.family_alpha:g}"
    return v.Verdict(v.NO_SIGNIFICANT_EFFECT, reason, best["signal"])


def _evidence(ratios: pd.DataFrame, rates: dict[str, BucketRates], judged: v.Verdict, grid: Grid, failures: int,
              failing_hosts: int, end_ns: int, s: Settings) -> v.Evidence:
    """Return the numbers the finding sentence quotes."""
    tested = int(ratios["status"].isin([v.EFFECT, v.NO_SIGNIFICANT_EFFECT]).sum())
    base = v.Evidence(kinds=grid.kinds, failures=failures, failing_hosts=failing_hosts,
                      range_seconds=(end_ns - grid.start_ns) / NS, step_seconds=grid.step_seconds,
                      lag_steps=s.lag_steps, tested_signals=tested)
    if judged.signal is None:
        return base
    row = ratios.set_index("signal").loc[judged.signal]
    buckets = rates[judged.signal].buckets
    return replace(base, signal=judged.signal, signal_label=row["label"], ratio=row["ratio"], lower=row["lower"],
                   upper=row["upper"], p_value=row["p_value"], p_adjusted=row["p_adjusted"],
                   top_from=float(buckets["lower"].iloc[-1]), bottom_below=float(buckets["upper"].iloc[0]))

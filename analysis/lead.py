"""Which signals precede failures: AUC of a signal at lead time L for "a failure within the next N minutes".

A sample is one host-step s where the signal has a value; it is positive when its host fails in steps
[s + lag + L, s + lag + L + N) (L and N in steps; lag 1 means the window starts after the signal's own step
ends, so the signal strictly precedes the failure). Every lead uses the same samples: the steps whose longest
window still fits in the range. AUC = Mann-Whitney U / (n1 n0): the chance that a step before a failure has a
higher signal than a step that is not; 0.5 is no information, below 0.5 means lower before failures.

P-values. Neighbouring host-steps are not independent (load persists; one failure marks N neighbouring steps
positive), so Mann-Whitney's own p-value (`p_independent`, reported for reference) is far too small on real
load. The p-value used is calibrated instead: each host's failure times are shifted circularly by a random
offset (at least the longest window), which keeps both the load's and the failures' own time structure and
breaks only their alignment; z = (AUC - mean of the shifted AUCs) / their standard deviation, two-sided normal.
Across signals x leads the p-values are adjusted by Benjamini-Hochberg (false discovery rate: this is a ranking
to look into, not the verdict, which rests on the Holm-adjusted rate ratios).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.shifts import calibrated_p, draw_offsets
from analysis.stats import Ordering, PositiveSets, RankedScores, benjamini_hochberg

LEAD_COLUMNS = ("signal", "lead_seconds", "auc", "positives", "negatives", "p_value", "p_independent",
                "p_adjusted", "significant")
LEADER_COLUMNS = ("rank", "signal", "best_lead_seconds", "auc", "p_value", "p_adjusted", "significant")


@dataclass(frozen=True)
class LeadRanking:
    """AUC per signal and lead time (LEAD_COLUMNS), and the signals ranked by their most telling lead."""

    by_lead: pd.DataFrame
    #: one row per signal (LEADER_COLUMNS), best first: smallest calibrated p-value at its most telling lead
    leaders: pd.DataFrame
    horizon_seconds: int
    lag_steps: int
    shifts: int


def lead_steps_of(lead_seconds, step_seconds: int) -> list[int]:
    """Return lead times as distinct whole steps (rounded), checking each is a number of seconds, 0 or more."""
    if isinstance(lead_seconds, (int, float)):
        lead_seconds = [lead_seconds]
    steps = []
    for lead in lead_seconds:
        if isinstance(lead, bool) or not isinstance(lead, (int, float)) or not lead >= 0:
            raise ValueError(f"lead_seconds: {lead!r} is not a number of seconds, 0 or more")
        steps.append(int(round(lead / step_seconds)))
    if not steps:
        raise ValueError("lead_seconds: expected at least one lead time")
    return sorted(set(steps))


def positive_cells(host_index: np.ndarray, step_index: np.ndarray, steps: int, start_offset: int,
                   horizon_steps: int) -> np.ndarray:
    """Return the distinct flat cells (host * steps + s), sorted, whose window [s + start_offset, + horizon) holds
    a failure.

    A failure at step f marks s in [f - start_offset - horizon + 1, f - start_offset], clipped to the range;
    overlapping spans of one host's failures are merged (sorting the failures, not the cells, keeps it cheap).
    """
    if len(step_index) == 0:
        return np.zeros(0, dtype="int64")
    order = np.lexsort((step_index, host_index))
    h, f = host_index[order], step_index[order]
    high = np.minimum(f - start_offset, steps - 1)
    low = np.maximum(f - start_offset - horizon_steps + 1, 0)
    same_host = np.r_[False, h[1:] == h[:-1]]
    previous_high = np.r_[-1, high[:-1]]
    low = np.where(same_host, np.maximum(low, previous_high + 1), low)
    lengths = np.maximum(high - low + 1, 0)
    total = int(lengths.sum())
    firsts = np.repeat(h * steps + low, lengths)
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return firsts + within


def rank_leads(grid_values: dict[str, np.ndarray], host_index: np.ndarray, step_index: np.ndarray,
               step_seconds: int, lead_seconds=(0, 300, 900, 1800, 3600), horizon_seconds: int = 1800,
               lag_steps: int = 1, shifts: int = 200, alpha: float = 0.05, seed: int = 0,
               orderings: dict[str, Ordering] | None = None) -> LeadRanking:
    """Return the AUC of each signal at each lead for failures at (host_index, step_index), and the ranking.

    `orderings` (signal name -> Ordering of its values) saves sorting the signals again.
    """
    if isinstance(horizon_seconds, bool) or not isinstance(horizon_seconds, (int, float)) or horizon_seconds <= 0:
        raise ValueError(f"horizon_seconds = {horizon_seconds!r}: expected a positive number of seconds")
    if isinstance(shifts, bool) or not isinstance(shifts, int) or shifts < 20:
        raise ValueError(f"shifts = {shifts!r}: expected a whole number, at least 20 (200 by default)")
    leads = lead_steps_of(lead_seconds, step_seconds)
    horizon = max(1, int(round(horizon_seconds / step_seconds)))
    host_index = np.asarray(host_index, dtype="int64")
    step_index = np.asarray(step_index, dtype="int64")
    names = list(grid_values)
    hosts, steps = next(iter(grid_values.values())).shape if names else (0, 0)
    last_sample = steps - (lag_steps + leads[-1] + horizon)  # the last step whose longest window fits
    in_range = np.arange(steps) <= last_sample
    observed_sets = [positive_cells(host_index, step_index, steps, lag_steps + lead, horizon) for lead in leads]
    null_sets = _shifted_sets(host_index, step_index, hosts, steps, leads, lag_steps, horizon, shifts, seed)
    rows = []
    for name in names:
        ordering = (orderings or {}).get(name)
        ranked = RankedScores(grid_values[name], np.broadcast_to(in_range[None, :], (hosts, steps)), ordering)
        null_aucs = ranked.aucs(null_sets).reshape(len(leads), shifts).T
        for i, lead in enumerate(leads):
            auc = ranked.auc(observed_sets[i])
            p_value = calibrated_p(auc.auc, null_aucs[:, i])
            rows.append((name, lead * step_seconds, auc.auc, auc.positives, auc.negatives, p_value, auc.p_value))
    by_lead = pd.DataFrame(rows, columns=list(LEAD_COLUMNS[:-2]))
    by_lead["p_adjusted"] = benjamini_hochberg(by_lead["p_value"].to_numpy()) if len(by_lead) else []
    by_lead["significant"] = by_lead["p_adjusted"] < alpha
    return LeadRanking(by_lead, _leaders(by_lead), int(horizon * step_seconds), lag_steps, shifts)


def _shifted_sets(host_index, step_index, hosts, steps, leads, lag_steps, horizon, shifts, seed) -> PositiveSets:
    """Return leads x shifts labelings (lead-major): each host's failures moved circularly by a random offset.

    All shifts of a lead at once: shift b of host h is host b * hosts + h of one tall grid, whose positive cells
    come out sorted, so each shift's are one contiguous run.
    """
    reach = lag_steps + leads[-1] + horizon
    offsets = draw_offsets(hosts, steps, reach, shifts, seed)  # (shifts, hosts)
    hosts = max(hosts, 1)
    moved = (step_index[None, :] + offsets[:, host_index]) % max(steps, 1)  # (shifts, failures)
    tall_host = (np.arange(shifts)[:, None] * hosts + host_index[None, :]).ravel()
    cells, bounds, done = [], [0], 0
    for lead in leads:
        tall = positive_cells(tall_host, moved.ravel(), steps, lag_steps + lead, horizon)
        shift_of = tall // (hosts * steps)
        cells.append(tall - shift_of * hosts * steps)
        ends = np.searchsorted(shift_of, np.arange(1, shifts + 1), side="left")  # where each shift's run ends
        bounds.extend((done + ends).tolist())
        done += len(tall)
    flat = np.concatenate(cells) if cells else np.zeros(0, dtype="int64")
    return PositiveSets(flat.astype("int64"), np.asarray(bounds, dtype="int64"))


def _leaders(by_lead: pd.DataFrame) -> pd.DataFrame:
    """Return each signal's most telling lead (smallest calibrated p-value), signals ranked by it.

    Ranking by evidence rather than by raw |AUC - 0.5| keeps a signal with a large but noisy AUC (few samples,
    one lucky lead) from overtaking one whose effect is smaller but certain; ties go to the larger |AUC - 0.5|.
    """
    rows = []
    for name, group in by_lead.groupby("signal", sort=False):
        group = group.assign(strength=(group["auc"] - 0.5).abs())
        ordered = group.sort_values(["p_value", "strength"], ascending=[True, False], na_position="last",
                                    kind="mergesort")
        best = ordered.iloc[0]
        if math.isnan(best["auc"]):
            rows.append((name, math.nan, math.nan, math.nan, math.nan, False, math.inf, -1.0))
        else:
            rows.append((name, best["lead_seconds"], best["auc"], best["p_value"], best["p_adjusted"],
                         bool(best["significant"]), best["p_value"], best["strength"]))
    frame = pd.DataFrame(rows, columns=[*LEADER_COLUMNS[1:], "order_p", "strength"])
    frame["order_p"] = frame["order_p"].fillna(math.inf)
    frame = frame.sort_values(["order_p", "strength"], ascending=[True, False], kind="mergesort")
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame.drop(columns=["order_p", "strength"]).reset_index(drop=True)

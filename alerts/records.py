"""The engine's SLO evaluations kept in the store (`slo_budget`, `slo_burn`), and read back as Evaluations.

The alert engine evaluates every SLO for every host and the fleet each round; `evaluation_points` turns those
Evaluations into points, and `read_evaluations` rebuilds them from the newest points at or before a time. The
dashboard reads them this way: one query per measurement for all SLOs and hosts, the figures the engine paged on,
instead of evaluating every window itself. A fleet-wide row has no host tag; it reads back under host None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alerts.burn import Evaluation, WindowBurn
from alerts.sli import Counts
from alerts.slo import SLO
from alerts.windows import alert_windows
from tsdb.point import Point
from tsdb.store import Store

BUDGET, BURN = "slo_budget", "slo_burn"
#: a record older than this before the asked time is stale: the engine was not running then
FRESH_SECONDS = 180


def evaluation_points(evaluations: Mapping[str, Mapping[str | None, Evaluation]], now_ns: int) -> list[Point]:
    """Return the budget and burn points of every SLO's evaluations ({slo: {host or None: Evaluation}})."""
    points = []
    for slo_name, by_host in evaluations.items():
        for host, evaluation in by_host.items():
            tags = {"slo": slo_name} if host is None else {"host": host, "slo": slo_name}
            budget = {"good_total": float(evaluation.period.good), "valid_total": float(evaluation.period.total)}
            if evaluation.budget_remaining is not None:
                budget["budget_remaining_percent"] = evaluation.budget_remaining * 100
            points.append(Point(BUDGET, tags, budget, now_ns))
            for burn in evaluation.windows:
                fields = {"factor": burn.window.factor, "firing": int(burn.firing)}
                if burn.long_burn is not None:
                    fields["burn_long"] = burn.long_burn
                if burn.short_burn is not None:
                    fields["burn_short"] = burn.short_burn
                points.append(Point(BURN, {**tags, "window": burn.window.name}, fields, now_ns))
    return points


def read_evaluations(store: Store, slos: Sequence[SLO], at_ns: int, fresh_seconds: float = FRESH_SECONDS
                     ) -> dict[str, dict[str | None, Evaluation]] | None:
    """Return the engine's newest evaluations at or before `at_ns` ({slo: {host or None: Evaluation}}), or None
    when some SLO has no fleet record in the `fresh_seconds` before (the engine was not running: evaluate live)."""
    if not slos:
        return {}
    since = at_ns - int(fresh_seconds * 10**9)
    names = [slo.name for slo in slos]
    budgets = store.latest(BUDGET, ["good_total", "valid_total", "budget_remaining_percent"], since, at_ns,
                           where={"slo": names}, group_by=["slo", "host"])
    burns = store.latest(BURN, ["burn_long", "burn_short"], since, at_ns, where={"slo": names},
                         group_by=["slo", "host", "window"])
    found: dict[str, dict[str | None, Evaluation]] = {}
    windows_of = {slo.name: {w.name: w for w in alert_windows(slo.period)} for slo in slos}
    burn_rows: dict[tuple[str, str, str], tuple[float | None, float | None]] = {
        (row.slo, row.host, row.window): (_number(row.burn_long), _number(row.burn_short))
        for row in burns.itertuples(index=False)}
    by_name = {slo.name: slo for slo in slos}
    for row in budgets.itertuples(index=False):
        slo = by_name[row.slo]
        windows = tuple(WindowBurn(window, *burn_rows.get((row.slo, row.host, name), (None, None)))
                        for name, window in windows_of[row.slo].items())
        host = row.host or None
        found.setdefault(row.slo, {})[host] = Evaluation(
            slo, host, int(row.time.value), Counts(float(row.good_total), float(row.valid_total)),
            _budget_of(row.budget_remaining_percent), windows)
    if any(None not in found.get(name, {}) for name in names):
        return None
    return found


def read_budgets(store: Store, slos: Sequence[SLO], at_ns: int, fresh_seconds: float = FRESH_SECONDS
                 ) -> dict[str, dict[str, float | None]] | None:
    """Return the engine's newest budget left of every SLO and host at or before `at_ns` ({slo: {host: the
    budget_remaining read_evaluations gives}}) from one read of one field, or None when some SLO has no fleet
    budget in the `fresh_seconds` before (the engine was not running, or the fleet has not seen one valid event
    in its period: evaluate live, to the same figures)."""
    if not slos:
        return {}
    names = [slo.name for slo in slos]
    records = store.latest(BUDGET, ["budget_remaining_percent"], at_ns - int(fresh_seconds * 10**9), at_ns,
                           where={"slo": names}, group_by=["slo", "host"])
    if not set(names) <= set(records.loc[records["host"] == "", "slo"]):
        return None
    budgets: dict[str, dict[str, float | None]] = {name: {} for name in names}
    for slo, host, percent in zip(records["slo"], records["host"], records["budget_remaining_percent"]):
        if host:
            budgets[slo][host] = _budget_of(percent)
    return budgets


def _budget_of(percent) -> float | None:
    """Return a record's budget_remaining_percent as an Evaluation's budget_remaining (a share), None when
    missing."""
    remaining = _number(percent)
    return None if remaining is None else remaining / 100


def _number(value) -> float | None:
    """Return a field as a float, None when missing."""
    return None if value is None or value != value else float(value)

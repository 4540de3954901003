"""The dashboard's SLO figures are the alert engine's: budgets, burn rates and SLIs come from alerts.burn over the
same counts, and the SLI series read the rollup pieces alerts.rollups splits a range into."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from dashboard import data
from dashboard.timerange import TimeRange
from planted import HISTORY_MINUTES, MINUTE_NS, plant, roll_up_slis, to_ns
from tsdb import Point

S = 10**9
HOUR_NS = 3600 * S
#: a host whose probe fails every third minute and is slow every seventh: windows whose ratios floats round
FLAKY_HOST = 'kvm-flaky-06 "x"'
DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def plant_flaky(store, now_ns: int) -> None:
    """Write FLAKY_HOST's libvirtd points over the planted history, one a minute, 5 s before each minute mark."""
    store.write([Point("libvirtd", {"host": FLAKY_HOST},
                       {"up": 1, "hung": 0, "probe_ok": 0 if minute % 3 == 0 else 1,
                        "probe_latency_ms": 1500.0 if minute % 7 == 0 else 20.0},
                       now_ns - minute * MINUTE_NS - 5 * S)
                 for minute in range(HISTORY_MINUTES, -1, -1)])


@pytest.fixture
def flaky_store(store, slos, fixed_now):
    """The `store` fixture (InfluxDB 1.6 and DuckDB) holding the planted fleet, FLAKY_HOST and their SLI rollups,
    with no engine records (the dashboard evaluates the SLOs itself); the dashboard's caches emptied."""
    now_ns = to_ns(fixed_now)
    plant(store, now_ns)
    plant_flaky(store, now_ns)
    roll_up_slis(store, slos, now_ns)
    data.clear_caches()
    yield store
    data.clear_caches()


def last_hours(fixed_now, hours: int) -> TimeRange:
    """Return the range of the last `hours` before the planted data's end."""
    return TimeRange(to_ns(fixed_now) - hours * HOUR_NS, to_ns(fixed_now), f"last {hours} hours")


def engine_evaluations(store, slos, at_ns: int) -> dict:
    """Return alerts' own evaluation of every SLO for every host at the minute at_ns falls in, as the engine
    evaluates it (through the rollups the store holds)."""
    from alerts.burn import evaluate_hosts
    from alerts.rollups import coverage, floor_to

    minute = floor_to(at_ns, MINUTE_NS)
    return {slo.name: evaluate_hosts(store, slo, minute, coverage(store, slo, minute)) for slo in slos}


def test_the_dashboards_budgets_and_burns_per_host_are_the_engines_evaluation(flaky_store, slos, fixed_now,
                                                                             tmp_path):
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    rng = last_hours(fixed_now, 3)
    engine = engine_evaluations(flaky_store, slos, rng.end_ns)
    assert engine["libvirtd-availability"][FLAKY_HOST].budget_remaining < 0  # not every figure is 1.0 or None

    budgets = data.budgets_by_host(flaky_store, slos, rng.end_ns)
    assert budgets == {name: {host: ev.budget_remaining for host, ev in by_host.items() if host is not None}
                       for name, by_host in engine.items()}

    frame = data.fleet_frame(flaky_store, rng, slos).set_index("host")
    for index, slo in enumerate(slos):
        for host, ev in engine[slo.name].items():
            if host is not None:
                assert frame.loc[host, f"budget_{index}"] == pytest.approx(100 * ev.budget_remaining, abs=0.05)
    worst = min((engine[slo.name][FLAKY_HOST].budget_remaining, slo.name) for slo in slos)
    assert frame.loc[FLAKY_HOST, "worst_budget_slo"] == worst[1]

    create_app(DashboardContext(flaky_store, slos, tmp_path / "alerts"))  # the SLO page registers itself in it
    from dashboard import views
    from dashboard.pages import slos as slos_page

    for index, slo in enumerate(slos):
        evaluations = data.slo_evaluations(flaky_store, slos, rng.end_ns)[slo.name]
        rows = slos_page._hosts_table(index, slo, evaluations, [])[1].rowData
        assert rows, slo.name
        windows = sorted(engine[slo.name][None].windows, key=lambda w: w.window.long_seconds)
        for row in rows:
            host = next(h for h in engine[slo.name] if h and row["host_link"].endswith(f"({views.host_href(h)})"))
            ev = engine[slo.name][host]
            long_burns = {w.window.name: w.long_burn for w in ev.windows}
            assert [row[f"burn_{i}"] for i in range(len(windows))] == \
                [views.number(long_burns[w.window.name], 2) for w in windows]
            assert row["budget"] == round(100 * ev.budget_remaining, 1)
            assert (row["bad"], row["valid"]) == (int(ev.period.bad), int(ev.period.total))


@pytest.mark.parametrize("host", [None, FLAKY_HOST], ids=["fleet", "one host"])
def test_each_window_of_the_sli_series_is_the_engines_sli_and_burn_of_its_raw_counts(flaky_store, slos, fixed_now,
                                                                                     host):
    from alerts.burn import burn_rate, sli_percent
    from alerts.sli import Counts, window_counts

    rng = last_hours(fixed_now, 3)
    series = data.sli_series(flaky_store, slos, rng, host)
    assert len(series) > HISTORY_MINUTES  # a window a minute for each SLO
    for slo in slos:
        raw = window_counts(flaky_store, slo, rng.start_ns, rng.end_ns, 60)
        if host is not None:
            raw = raw[raw["host"] == host]
        per_window = raw.groupby("time_ns")[["good", "total"]].sum()
        rows = series[series["slo"] == slo.name]
        assert len(rows) >= HISTORY_MINUTES - 2  # every minute rolled up (the newest are not, yet)
        for when, good, total, sli, burn in zip(rows["time"].astype("int64"), rows["good_total"],
                                                rows["valid_total"], rows["sli_percent"], rows["burn_rate"]):
            counts = Counts(float(per_window.loc[when, "good"]), float(per_window.loc[when, "total"]))
            assert (good, total) == (counts.good, counts.total)
            assert (sli, burn) == (sli_percent(counts), burn_rate(counts, slo.objective))


def test_the_dashboards_slo_figures_change_when_the_alerts_functions_do(flaky_store, slos, fixed_now, monkeypatch):
    import alerts.burn

    def series_figures(goods, totals, objective):
        return [12.5] * len(goods), [4321.0] * len(goods)

    monkeypatch.setattr(alerts.burn, "series_figures", series_figures)
    monkeypatch.setattr(alerts.burn, "burn_rate", lambda counts, objective: 4321.0)
    monkeypatch.setattr(alerts.burn, "budget_remaining", lambda counts, objective: -0.5)
    rng = last_hours(fixed_now, 3)
    series = data.sli_series(flaky_store, slos, rng)
    assert len(series) and set(series["burn_rate"]) == {4321.0} and set(series["sli_percent"]) == {12.5}
    assert set(data.sli_series(flaky_store, slos, rng, FLAKY_HOST)["burn_rate"]) == {4321.0}
    evaluations = data.slo_evaluations(flaky_store, slos, rng.end_ns)
    for by_host in evaluations.values():
        assert {ev.budget_remaining for ev in by_host.values()} == {-0.5}
        assert {w.long_burn for ev in by_host.values() for w in ev.windows} == {4321.0}
    budgets = data.budgets_by_host(flaky_store, slos, rng.end_ns)
    assert {value for by_host in budgets.values() for value in by_host.values()} == {-0.5}
    frame = data.fleet_frame(flaky_store, rng, slos)
    assert set(frame[[f"budget_{index}" for index in range(len(slos))]].stack()) == {-50.0}


def test_the_sli_series_reads_the_pieces_alerts_rollups_splits_its_range_into(duckdb_store, slos, fixed_now,
                                                                              monkeypatch):
    import alerts.rollups
    from counting_store import CountingStore

    rng = last_hours(fixed_now, 20)  # minute resolution in windows of an hour: hours come from the hour rollups
    asked = []
    middle = rng.end_ns - 7 * HOUR_NS - rng.end_ns % HOUR_NS

    def rollup_pieces(start_ns, end_ns, min_hours=1):
        asked.append((start_ns, end_ns, min_hours))
        return [("1h", start_ns, middle), ("1m", middle, end_ns)]

    monkeypatch.setattr(alerts.rollups, "rollup_pieces", rollup_pieces)
    counting = CountingStore(duckdb_store)
    data.sli_series(counting, slos, rng)
    assert asked and all(bounds[:2] == (rng.start_ns, rng.end_ns) for bounds in asked)
    read = [(args[2], args[3], kwargs["where"]["resolution"]) for name, args, kwargs in counting.calls
            if name == "query"]
    assert read[:2] == [(rng.start_ns, middle, "1h"), (middle, rng.end_ns, "1m")]


#: words of SLO figures: a division or a `1 - x` of one of them in the dashboard is SLI or burn-rate math
SLO_WORDS = re.compile(r"(?<![a-z])(good|valid|budget|objective|burn|sli|error_rate|bad)s?(?![a-z])", re.IGNORECASE)


def slo_arithmetic(source: str) -> list[str]:
    """Return the divisions and `1 - x` in Python source that name an SLO figure, and every use of an SLO's
    error_budget."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and (isinstance(node.op, ast.Div) or (
                isinstance(node.op, ast.Sub) and isinstance(node.left, ast.Constant) and node.left.value == 1)):
            if SLO_WORDS.search(ast.unparse(node)):
                found.append(ast.unparse(node))
        elif isinstance(node, ast.Attribute) and node.attr == "error_budget":
            found.append(ast.unparse(node))
    return found


def test_the_check_finds_the_burn_arithmetic_the_dashboard_once_held():
    old = ('frame["sli_percent"] = 100.0 * frame["good_total"] / frame["valid_total"]\n'
           'frame["burn_rate"] = (1 - frame["good_total"] / frame["valid_total"]) / frame["slo"].map(budgets)\n'
           'budgets = {slo.name: float(slo.error_budget) for slo in slos}\n')
    assert len(slo_arithmetic(old)) == 5


@pytest.mark.parametrize("path", sorted(DASHBOARD.rglob("*.py")), ids=lambda p: str(p.relative_to(DASHBOARD)))
def test_no_dashboard_module_holds_its_own_sli_or_burn_arithmetic(path):
    assert slo_arithmetic(path.read_text(encoding="utf-8")) == []

"""Benchmark of the load-versus-failure analysis: one full analysis of a fleet's month read from DuckDB.

Run it from the repository root:

    .venv/bin/python benchmarks/bench_correlation.py [--hosts 100] [--days 30] [--step 300] [--analysis-step S]
                                                     [--runs 3]

It simulates `--hosts` hosts over `--days` days with the simulator (one host, libvirtd and collector point per
host per step, no guests, no scripted incidents, the default failure rates and a planted effect: restarts 4x as
frequent while the job queue depth is in its top quarter), writes it into a DuckDB file in a temp dir (not
timed), then times what the correlation page does for the whole fleet and range: `load_inputs` (every default
signal's per-host step means and the restart events, read through the store's query interface) and `analyze`
(rates per load bucket with Garwood intervals, the rate ratios at lags 0 and 1 tested against 2000 circular
shifts of the failures with a maximum-statistic adjustment, triggered averages, the AUC ranking at 5 lead times
with 200 circular shifts each). The first run is cold (the first reads after the write); the table shows it and
the median of `--runs`.

The analysis step is the page's for the range (dashboard.correlation_range.STEP_RULES: 15 min for 30 days, read
as 15-minute means straight from the store) unless `--analysis-step` says otherwise (300 times a month at the
data's own 5-minute step, 3x the host-steps).

Target: load + analysis within 1 s for 100 hosts over 30 days.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from table import print_table  # noqa: E402

from analysis import analyze, load_inputs  # noqa: E402
from simulator import Effect, FleetSpec, simulate, write_simulation  # noqa: E402
from tsdb import open_store  # noqa: E402

TARGET_SECONDS = 1.0
END_NS = 1_717_200_000 * 10**9  # 2024-06-01T00:00:00Z: fixed, so runs compare


def simulate_fleet(hosts: int, days: int, step_seconds: int):
    """Return the simulation the benchmark analyses."""
    effect = Effect("libvirtd.job_queue_depth", "restart", factor=4.0, threshold_quantile=0.75)
    return simulate(FleetSpec(hosts=hosts, days=days, seed=1, step_seconds=step_seconds, end_ns=END_NS,
                              domains_per_host=0, incidents=False, effects=(effect,)))


def write_fleet(path: str, hosts: int, days: int, step_seconds: int) -> tuple[int, int, int]:
    """Simulate the fleet and write it into the DuckDB file at `path`; return (points, start_ns, end_ns)."""
    sim = simulate_fleet(hosts, days, step_seconds)
    with open_store(f"duckdb://{path}") as store:
        return write_simulation(store, sim, batch_steps=288), sim.start_ns, sim.end_ns


def timed_analysis(store, start_ns: int, end_ns: int, step_seconds: int):
    """Return (load seconds, analysis seconds, result) of one full analysis of the whole fleet and range."""
    began = time.perf_counter()
    inputs = load_inputs(store, None, start_ns, end_ns, kinds="restart", step_seconds=step_seconds)
    loaded = time.perf_counter()
    result = analyze(inputs)
    done = time.perf_counter()
    return loaded - began, done - loaded, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step", type=int, default=300, help="seconds per step, of the simulation and analysis")
    parser.add_argument("--analysis-step", type=int, default=None,
                        help="seconds per step of the analysis (default: the correlation page's for the range)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from dashboard.correlation_range import step_seconds_for

    analysis_step = args.analysis_step or step_seconds_for(args.days * 86400)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-correlation-") as tmp:
        began = time.perf_counter()
        # simulating and writing run in a child process, so this one's peak RSS is the analysis' own
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            points, start_ns, end_ns = pool.apply(write_fleet, (f"{tmp}/bench.duckdb", args.hosts, args.days,
                                                                args.step))
        rows.append((f"setup (not timed): {args.hosts} hosts x {args.days} d at {args.step} s, points written",
                     f"{points:,}", f"in {time.perf_counter() - began:.0f} s", ""))
        with open_store(f"duckdb://{tmp}/bench.duckdb") as store:
            runs = [timed_analysis(store, start_ns, end_ns, analysis_step) for _ in range(max(1, args.runs))]
        cells = len(runs[0][2].hosts) * (args.days * 86400 // analysis_step)
        signals = len(runs[0][2].ratios)
        rows.append((f"host-steps per signal x signals, at {analysis_step} s steps", f"{cells:,} x {signals}", "",
                     ""))
        rows.append(("restarts analysed", f"{runs[0][2].failures}", "", ""))
        load, work, _result = runs[0]
        rows += [("load from DuckDB (cold)", f"{load:.2f}", "s", ""), ("analysis (cold)", f"{work:.2f}", "s", ""),
                 ("total (cold)", f"{load + work:.2f}", "s", f"<= {TARGET_SECONDS:g} s")]
        if len(runs) > 1:
            loads, works = [r[0] for r in runs], [r[1] for r in runs]
            totals = [a + b for a, b in zip(loads, works)]
            rows += [(f"load from DuckDB (median of {len(runs)})", f"{statistics.median(loads):.2f}", "s", ""),
                     (f"analysis (median of {len(runs)})", f"{statistics.median(works):.2f}", "s", ""),
                     (f"total (median of {len(runs)})", f"{statistics.median(totals):.2f}", "s",
                      f"<= {TARGET_SECONDS:g} s")]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS of the analysing process", f"{peak_mb:.0f}", "MB", ""))
    print_table(rows)
    result = runs[-1][2]
    print(f"\nverdict: {result.verdict.status}\nfinding: {result.finding}")


if __name__ == "__main__":
    main()

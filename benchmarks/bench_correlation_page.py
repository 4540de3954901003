"""Benchmark of the correlation page's callbacks: server time, cold and cached, over a simulated fleet in DuckDB.

Run it from the repository root:

    .venv/bin/python benchmarks/bench_correlation_page.py [--hosts 100] [--days 30] [--runs 5]

It writes the fleet of benchmarks/bench_correlation.py (`--hosts` hosts over `--days` days at 300 s, restarts
planted 4x as frequent while the job queue is deep) into a DuckDB file in a temp dir (not timed), then calls the
page's callbacks directly inside the app's request context, as Dash would, for the ranges 24h, 7d and 30d
ending at the data's end:

- cold: the analysis cache emptied first, so the store is read and every analysis runs (the first view of a range;
  lags 0 and 1 both, the page's default);
- another signal: a default signal picked after that (the cached analysis drawn again: the common click);
- another lag: lag 0 alone; the inputs are cached, the analysis runs again;
- an extra signal: a field outside the defaults, so the store is read again with it;
- one host: the same for a single host's scope, cold;
- the controls' options (hosts and stored log kinds);

and once the page as a newcomer opens it, with no range in the URL (its default: the last 14 days, or the data's
span when shorter), cold.

Each figure is the median of `--runs` calls. The dashboard's target is 300 ms per callback: the cached paths meet
it; a cold analysis of a month of a large fleet cannot, which is why the result is kept per (scope, range, kinds,
step) in the process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_correlation import END_NS, write_fleet  # noqa: E402
from table import print_table  # noqa: E402

from dashboard.timerange import RANGES as RANGE_SECONDS  # noqa: E402

TARGET_MS = 300.0
RANGES = ("24h", "7d", "30d")
SIGNAL = "libvirtd.job_queue_depth"


def timed(call, runs: int, before=None) -> tuple[float, object]:
    """Return (median milliseconds of `runs` calls, the last result); `before` runs untimed before each call."""
    times, result = [], None
    for _ in range(runs):
        if before is not None:
            before()
        began = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


def check(result, what: str) -> None:
    """Stop when a callback answered with an error state instead of the page."""
    text = str(result)
    if "empty-error" in text or "empty-bad-input" in text:
        raise SystemExit(f"{what}: the callback failed: {text[:600]}")


def row(what: str, ms: float) -> tuple:
    """Return a table row for a callback time against the target."""
    return (what, f"{ms:.0f}", "ms", f"< {TARGET_MS:.0f} ms" + ("" if ms < TARGET_MS else "  MISSED"))


def time_page(store, runs: int, host: str) -> list[tuple]:
    """Return the table rows: each callback path's median time for each range."""
    from dashboard import correlation_view as cv
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    now = dt.datetime.fromtimestamp(END_NS / 1e9, tz=dt.timezone.utc)
    app = create_app(DashboardContext(store, [], None, clock=lambda: now))
    app.server.test_client().get("/_dash-layout")  # the first request moves the pages' callbacks into this app
    page = sys.modules["dashboard.pages.correlation"]
    rows = []
    with app.server.test_request_context("/"):
        for name in RANGES:
            range_data = {"range": name, "start": "", "end": "", "refresh": "off"}

            def analysis(signal=SIGNAL, lag="both", hosts=(), data=range_data):
                return page.analysis(data, 0, ["restart"], signal, list(hosts), lag)

            ms, result = timed(analysis, runs, before=cv.clear_cache)
            check(result, f"cold {name}")
            step = cv.step_seconds_for(RANGE_SECONDS[name])
            rows.append(row(f"{name} ({step} s steps): cold (store read + analysis + render)", ms))
            ms, result = timed(lambda: analysis("host.load1"), runs)
            check(result, f"signal {name}")
            rows.append(row(f"{name}: another signal (cached analysis, render)", ms))
            ms, result = timed(lambda: analysis(lag=0), runs, before=lambda: cv._results_cache.clear())
            check(result, f"lag {name}")
            rows.append(row(f"{name}: another lag (cached inputs, analysis + render)", ms))
            ms, result = timed(lambda: analysis("libvirtd.threads"), runs, before=cv.clear_cache)
            check(result, f"extra {name}")
            rows.append(row(f"{name}: an extra signal, cold", ms))
            ms, result = timed(lambda: analysis(hosts=(host,)), runs, before=cv.clear_cache)
            check(result, f"host {name}")
            rows.append(row(f"{name}: one host, cold", ms))
            ms, result = timed(lambda: page.control_options(range_data, [], ["restart"]), runs)
            rows.append(row(f"{name}: the controls' options", ms))
            start, end, _step = cv.analysis_range(END_NS - RANGE_SECONDS[name] * 10**9, END_NS)
            seen = cv.correlation_result(store, (), start, end, ("restart",), SIGNAL, (0, 1))
            rows.append((f"{name}: what the page showed", f"{seen.failures} restarts", seen.verdict.status,
                         f"lag {seen.lag_steps}"))
            print(f"{name}: timed", file=sys.stderr, flush=True)
        default = {"range": "6h", "start": "", "end": "", "refresh": "off"}  # the shell's, with no range in the URL
        ms, result = timed(lambda: page.analysis(default, 0, ["restart"], SIGNAL, [], "both", {"pending": True}),
                           runs, before=cv.clear_cache)
        check(result, "default range")
        rows.append(row("no range in the URL (the page's default, 14 days at 300 s steps): cold", ms))
        start, end = cv.default_range(store, END_NS)
        first, last, _step = cv.analysis_range(start, end)
        seen = cv.correlation_result(store, (), first, last, ("restart",), SIGNAL, (0, 1))
        rows.append(("no range in the URL: what the page showed", f"{seen.failures} restarts", seen.verdict.status,
                     f"lag {seen.lag_steps}"))
    return rows


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from tsdb import open_store

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-correlation-page-") as tmp:
        began = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            points, _start, _end = pool.apply(write_fleet, (f"{tmp}/store.duckdb", args.hosts, args.days, 300))
        rows.append((f"setup (not timed): {args.hosts} hosts x {args.days} d at 300 s, points", f"{points:,}",
                     f"in {time.perf_counter() - began:.0f} s", ""))
        with open_store(f"duckdb://{tmp}/store.duckdb") as store:
            host = sorted(store.tag_values("libvirtd", "host"))[args.hosts // 2]
            rows += time_page(store, args.runs, host)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

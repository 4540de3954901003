"""Benchmark of the dashboard: server time of each page's callbacks over a simulated fleet in InfluxDB and DuckDB.

Run it from the repository root (needs `influxd`, see `make setup-test`):

    .venv/bin/python benchmarks/bench_dashboard.py [--hosts 100] [--days 7] [--domains 4] [--runs 3]

It simulates a fleet (simulator: one point per host per measurement per minute, `--domains` guests per host),
writes it into a private InfluxDB 1.6 (tests/servers.py) and a DuckDB file, rolls up the SLIs of
deploy/slos.toml the way the alert engine does (minute and hour rollups), then calls every data callback of every
page directly, inside the app's request context, for the ranges 24h and 7d, and prints the median of `--runs`
calls after one warm-up call. The SLO evaluation cache (60 s per process) is cleared before every call, so the
figures are those of a cold callback. The SLO-reading callbacks are timed twice: without the alert engine's
records (the dashboard then evaluates every SLO itself), and with them (the normal case: `virtwatch alerts` writes
`slo_budget` and `slo_burn` each round), the rest once. Target: every callback under 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import InfluxDBServer  # noqa: E402
from table import print_table  # noqa: E402

TARGET_MS = 300.0
RANGES = ("24h", "7d")
DATABASE = "bench_dashboard"


def fill(store, simulation, slos, end_ns: int) -> float:
    """Write the simulation and its SLI rollups into a store; return the seconds it took."""
    from alerts.rollups import NO_ROLLUPS, roll_up
    from simulator import write_simulation

    began = time.perf_counter()
    write_simulation(store, simulation)
    for slo in slos:
        roll_up(store, slo, end_ns, NO_ROLLUPS, backfill_seconds=simulation.spec.steps * simulation.spec.step_seconds,
                chunk_seconds=6 * 3600)
    return time.perf_counter() - began


def record_evaluations(store, slos, end_ns: int) -> None:
    """Write the SLO evaluations a running alert engine would have written half a minute before the end."""
    from alerts.burn import evaluate_slos
    from alerts.records import evaluation_points
    from alerts.rollups import coverage

    at_ns = end_ns - 30 * 10**9
    store.write(evaluation_points(evaluate_slos(store, slos, at_ns, {s.name: coverage(store, s, at_ns) for s in slos}),
                                  at_ns))


def page_callbacks(host: str):
    """Return (page, callback name, function of range data) for every data callback of every page."""
    pages = {name: sys.modules[f"dashboard.pages.{name}"] for name in ("fleet", "host", "slos", "events", "alerts")}
    path = f"/host/{host}"
    return [
        ("fleet", "hosts_table", lambda r: pages["fleet"].hosts_table(r, 0, [], "", "")),
        ("fleet", "burn_chart", lambda r: pages["fleet"].burn_chart(r, 0)),
        ("host", "health", lambda r: pages["host"].health(r, 0, path)),
        ("host", "domains", lambda r: pages["host"].domains(r, 0, path)),
        ("host", "host_events", lambda r: pages["host"].host_events(r, 0, path)),
        ("slos", "slo_cards", lambda r: pages["slos"].slo_cards(r, 0)),
        ("events", "events_table", lambda r: pages["events"].events_table(r, 0, [], [], [], "")),
        ("events", "events_table (critical)", lambda r: pages["events"].events_table(r, 0, [], [], ["critical"], "")),
        ("events", "host_options", lambda r: pages["events"].host_options(r, [])),
        ("alerts", "active", lambda r: pages["alerts"].active(r, 0)),
        ("alerts", "history", lambda r: pages["alerts"].history(r, 0)),
    ]


def time_callbacks(backend: str, store, slos, state_dir: Path, end_ns: int, host: str, runs: int,
                   only: tuple[str, ...] = ()) -> list:
    """Return table rows: the median server time of each callback (those named in `only`, if any) per range."""
    import datetime as dt

    from dashboard import data
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    now = dt.datetime.fromtimestamp(end_ns / 1e9, tz=dt.timezone.utc)
    app = create_app(DashboardContext(store, slos, state_dir, clock=lambda: now))
    app.server.test_client().get("/_dash-layout")  # the first request moves the pages' callbacks into this app
    rows = []
    with app.server.test_request_context("/"):
        for page, name, call in page_callbacks(host):
            if only and name not in only:
                continue
            for range_name in RANGES:
                range_data = {"range": range_name, "start": "", "end": "", "refresh": "off"}
                times = []
                for run in range(runs + 1):
                    data._evaluation_cache.clear()
                    began = time.perf_counter()
                    result = call(range_data)
                    elapsed = (time.perf_counter() - began) * 1000
                    if run:
                        times.append(elapsed)
                text = str(result)
                if "empty-error" in text:
                    raise SystemExit(f"{backend} {page}.{name} {range_name}: the callback failed: {text[:600]}")
                median = statistics.median(times)
                rows.append((f"{backend} {page}.{name} ({range_name})", f"{median:.0f}", "ms",
                             f"< {TARGET_MS:.0f} ms" + ("" if median < TARGET_MS else "  MISSED")))
    return rows


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--domains", type=int, default=4, help="guests per host")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="influxdb,duckdb", help="comma-separated: influxdb, duckdb")
    args = parser.parse_args()

    from alerts.slo import load_slos
    from simulator import FleetSpec, simulate
    from tsdb import open_store

    slos = load_slos(ROOT / "deploy" / "slos.toml")
    began = time.perf_counter()
    simulation = simulate(FleetSpec(hosts=args.hosts, days=args.days, seed=7, domains_per_host=args.domains))
    simulated_seconds = time.perf_counter() - began
    end_ns = simulation.end_ns
    host = simulation.hosts[len(simulation.hosts) // 2]
    points = simulation.point_count()
    rows = [("fleet simulated", f"{args.hosts} hosts x {args.days:g} d", "", ""),
            ("points", f"{points:,}", "points", ""),
            ("simulation", f"{simulated_seconds:.1f}", "s", "")]
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        tmp = Path(tmp)
        server = InfluxDBServer(tmp / "influxdb").start()
        try:
            server.create_database(DATABASE)
            stores = {"influxdb": open_store(f"influxdb://127.0.0.1:{server.port}/{DATABASE}"),
                      "duckdb": open_store(f"duckdb://{tmp}/store.duckdb")}
            stores = {name: store for name, store in stores.items() if name in args.backends.split(",")}
            for backend, store in stores.items():
                seconds = fill(store, simulation, slos, end_ns)
                rows.append((f"{backend}: write points and SLI rollups", f"{seconds:.0f}", "s", ""))
                print(f"{backend}: filled in {seconds:.0f} s", file=sys.stderr, flush=True)
            for backend, store in stores.items():
                rows += time_callbacks(f"{backend}, no engine records:", store, slos, tmp / "alerts", end_ns, host,
                                       args.runs, only=("slo_cards", "hosts_table"))
                record_evaluations(store, slos, end_ns)
                rows += time_callbacks(backend, store, slos, tmp / "alerts", end_ns, host, args.runs)
                store.close()
        finally:
            server.stop()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of tsdb: line-protocol encoding, writes into InfluxDB 1.6 and DuckDB, a windowed query, memory.

Run it from the repository root (needs `influxd`, see `make setup-test`):

    .venv/bin/python benchmarks/bench_tsdb.py [--points N]      # N defaults to 1,000,000

It starts its own private InfluxDB 1.6 (tests/servers.py) and a DuckDB file in a temp dir, writes the same
N realistic `domain` points (100 hosts x 20 domains, 6 int/float fields, one point per series every 10 s)
into both, and prints one table: what, value, unit, target. It also writes N one-field points over 100
series into InfluxDB, the point shape of the ~400k points/s server figure in shared/notes/influxdb.md:
influxd's own CPU cost grows with the fields per point, so on 2 cores the 6-field write is bound by the
server, not by this client. Targets:

    end-to-end write into InfluxDB 1.6 (batches of 5000, gzip)   >= 200,000 points/s
    one-minute windowed mean GROUP BY host over all points        <  200 ms (median of 5 after a warm-up)

Points are built before any timed region; times are wall-clock (time.perf_counter), and client CPU time
(time.process_time, all threads of this process) is shown per point so the cost on one core is visible.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pandas as pd  # noqa: E402

from servers import InfluxDBServer  # noqa: E402
from table import print_table  # noqa: E402
from tsdb import Point, open_store  # noqa: E402
from tsdb.lineprotocol import encode_lines  # noqa: E402

HOSTS = 100
DOMAINS_PER_HOST = 20
INTERVAL_NS = 10 * 10**9
START_NS = int(pd.Timestamp("2024-01-01T00:00:00Z").value)
DATABASE = "bench"
QUERY_FIELD = "cpu_time_seconds_total"
QUERY_RUNS = 5
WRITE_TARGET_POINTS_PER_S = 200_000
QUERY_TARGET_MS = 200.0


def make_series(rng: random.Random) -> list[dict]:
    """Return one state dict per (host, domain) series: tags, a phase and per-guest sizes."""
    series = []
    for h in range(HOSTS):
        host = f"hv{h:03d}.dc1.example.net"
        phase_ns = h * 100_000_000  # each host's agent ticks at its own moment within the 10 s interval
        for d in range(DOMAINS_PER_HOST):
            vcpus = rng.choice((1, 2, 4, 8))
            series.append({
                "tags": {"host": host, "domain": f"instance-{h * DOMAINS_PER_HOST + d:08x}"},
                "phase_ns": phase_ns, "vcpus": vcpus, "memory": vcpus * 2 * 2**30,
                "cpu_ns": rng.randrange(10**12), "read": rng.randrange(10**10), "rx": rng.randrange(10**10),
                "busy": rng.uniform(0.02, 0.9),
            })
    return series


def make_points(count: int, seed: int = 42) -> list[Point]:
    """Return `count` realistic domain points, in time order as agents would send them."""
    rng = random.Random(seed)
    series = make_series(rng)
    points: list[Point] = []
    step = 0
    while len(points) < count:
        for s in series[: count - len(points)]:
            s["cpu_ns"] += int(INTERVAL_NS * s["vcpus"] * s["busy"] * rng.uniform(0.5, 1.5))
            s["read"] += rng.randrange(50_000_000)
            s["rx"] += rng.randrange(5_000_000)
            fields = {
                "state_code": 1 if rng.random() > 0.001 else 3,
                "cpu_time_seconds_total": s["cpu_ns"] / 1e9,
                "memory_current_bytes": s["memory"],
                "vcpus": s["vcpus"],
                "block_read_bytes_total": s["read"],
                "net_rx_bytes_total": s["rx"],
            }
            points.append(Point("domain", s["tags"], fields, START_NS + step * INTERVAL_NS + s["phase_ns"]))
        step += 1
    return points


def bench_encoding(points: list[Point], runs: int = 3) -> float:
    """Return the best of `runs` encode_lines rates over all points, in points/s."""
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        lines = encode_lines(points)
        best = min(best, time.perf_counter() - began)
        assert len(lines) == len(points)
    return len(points) / best


def make_single_field_points(count: int) -> list[Point]:
    """Return `count` one-field points over 100 host series, the shape of the notes' 400k/s server figure."""
    return [Point("cpu", {"host": f"hv{i % HOSTS:03d}"}, {"value": float(i)}, START_NS + (i // HOSTS) * 10**9)
            for i in range(count)]


def process_cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds used so far by another process (from /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_write(url: str, points: list[Point], server_pid: int | None = None) -> dict:
    """Write all points through open_store(url); return wall rate, client CPU and server CPU per point."""
    with open_store(url) as store:
        server_cpu = process_cpu_seconds(server_pid) if server_pid else 0.0
        cpu, began = time.process_time(), time.perf_counter()
        written = store.write(points)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        if server_pid:
            server_cpu = process_cpu_seconds(server_pid) - server_cpu
    assert written == len(points), f"{url}: wrote {written} of {len(points)} points"
    return {"rate": len(points) / wall, "wall_s": wall, "cpu_us": cpu / len(points) * 1e6,
            "server_cpu_us": server_cpu / len(points) * 1e6}


def bench_query(url: str, start_ns: int, end_ns: int) -> tuple[float, pd.DataFrame]:
    """Return the median latency (ms) of the windowed mean GROUP BY host, after one warm-up, and its frame."""
    with open_store(url) as store:
        def run() -> pd.DataFrame:
            return store.query("domain", [QUERY_FIELD], start_ns, end_ns, window_seconds=60, aggregate="mean",
                               group_by=["host"])

        frame = run()
        times = []
        for _ in range(QUERY_RUNS):
            began = time.perf_counter()
            frame = run()
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), frame


def rss_mb(pid: int | str = "self") -> float:
    """Return a process's resident set size in MB (VmRSS from /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frames_check(influx: pd.DataFrame | None, duck: pd.DataFrame | None) -> str:
    """Return a one-line verdict on whether the two query frames are equal (rtol 1e-9)."""
    if influx is None or duck is None:
        return "check: frames not compared (a store was not benchmarked)"
    try:
        pd.testing.assert_frame_equal(influx, duck, check_exact=False, rtol=1e-9)
    except AssertionError as error:
        first = " ".join(str(error).split())[:300]
        return f"check: InfluxDB and DuckDB frames are NOT equal: {first}"
    return f"check: InfluxDB and DuckDB frames are equal ({len(influx)} rows; assert_frame_equal, rtol=1e-9)"


def run(count: int, workdir: Path) -> None:
    """Run every benchmark against a private InfluxDB and a DuckDB file in workdir; print the table."""
    print(f"generating {count:,} points ({HOSTS * DOMAINS_PER_HOST} series, 6 fields) ...", flush=True)
    points = make_points(count)
    start_ns, end_ns = START_NS, max(p.time_ns for p in points) + 1
    rows: list[tuple[str, str, str, str]] = []

    rows.append(("line-protocol encoding (encode_lines, best of 3)", f"{bench_encoding(points):,.0f}",
                 "points/s", "-"))

    server = InfluxDBServer(workdir / "influxdb")
    try:
        server.start()
        server.create_database(DATABASE)  # as in a deployment; the store would otherwise create it on a 404
        influx_url = f"influxdb://127.0.0.1:{server.port}/{DATABASE}"
        print(f"writing into InfluxDB 1.6 at {server.url} ...", flush=True)
        w = bench_write(influx_url, points, server.process.pid)
        rows += [
            ("write InfluxDB 1.6 end to end (batch 5000, gzip)", f"{w['rate']:,.0f}", "points/s",
             f">= {WRITE_TARGET_POINTS_PER_S:,}"),
            ("  client CPU time per point (all threads)", f"{w['cpu_us']:.2f}", "us/point", "-"),
            ("  = client rate if CPU-bound on one core", f"{1e6 / w['cpu_us']:,.0f}", "points/s", "-"),
            ("  influxd CPU time per point", f"{w['server_cpu_us']:.2f}", "us/point", "-"),
        ]
        server.create_database(DATABASE + "_single")
        single = bench_write(f"influxdb://127.0.0.1:{server.port}/{DATABASE}_single",
                             make_single_field_points(count), server.process.pid)
        rows += [
            ("write InfluxDB 1.6, 1-field points, 100 series", f"{single['rate']:,.0f}", "points/s",
             f">= {WRITE_TARGET_POINTS_PER_S:,}"),
            ("  client CPU / influxd CPU per point", f"{single['cpu_us']:.2f} / {single['server_cpu_us']:.2f}",
             "us/point", "-"),
        ]

        duck_url = f"duckdb://{workdir / 'bench.duckdb'}"
        duck_frame = None
        try:
            print("writing into DuckDB ...", flush=True)
            d = bench_write(duck_url, points)
            rows += [("write DuckDB end to end", f"{d['rate']:,.0f}", "points/s", "-"),
                     ("  client CPU time per point (all threads)", f"{d['cpu_us']:.2f}", "us/point", "-")]
        except ImportError as error:  # the embedded backend is not there yet
            print(f"DuckDB skipped: {error}", flush=True)
            duck_url = None

        print("querying ...", flush=True)
        influx_ms, influx_frame = bench_query(influx_url, start_ns, end_ns)
        rows += [("query 1-min mean GROUP BY host, InfluxDB (median of 5)", f"{influx_ms:.1f}", "ms",
                  f"< {QUERY_TARGET_MS:.0f}"),
                 ("  rows returned, InfluxDB", f"{len(influx_frame):,}", "rows", "-")]
        if duck_url:
            duck_ms, duck_frame = bench_query(duck_url, start_ns, end_ns)
            rows += [("query 1-min mean GROUP BY host, DuckDB (median of 5)", f"{duck_ms:.1f}", "ms",
                      f"< {QUERY_TARGET_MS:.0f}"),
                     ("  rows returned, DuckDB", f"{len(duck_frame):,}", "rows", "equal to InfluxDB")]

        rows += [("RSS of this benchmark process at the end", f"{rss_mb():,.0f}", "MB", "-"),
                 ("RSS of influxd at the end", f"{rss_mb(server.process.pid):,.0f}", "MB", "-")]
    finally:
        server.stop()

    print()
    print(f"tsdb benchmark: {count:,} points, {HOSTS} hosts x {DOMAINS_PER_HOST} domains, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print_table(rows)
    print(frames_check(influx_frame, duck_frame))


def main() -> None:
    """Parse arguments and run the benchmark in a temp dir that is removed afterwards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points to write (default 1,000,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="virtwatch-bench-") as workdir:
        run(args.points, Path(workdir))


if __name__ == "__main__":
    main()

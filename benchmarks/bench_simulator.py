"""Benchmark of the fleet simulator: simulate, render every point, and write them all into the embedded store.

Run it from the repository root:

    .venv/bin/python benchmarks/bench_simulator.py [--hosts 24] [--days 14] [--batch-steps N]

It simulates the demo's fleet (24 hosts x 14 days at 60 s steps, 6 guests each, incidents on: about 4.35
million points), then times three things separately and prints one table (what, value, unit, target):

    simulate()                 signals, failures, consequences (no points yet)
    render only                iterate Simulation.points() and drop each batch: the cost of making Points
    write_simulation()         render and write into a fresh DuckDB file (tsdb.open_store("duckdb:///...")),
                               end to end, the `virtwatch demo` backfill           target: < 60 s in all

Times are wall-clock (time.perf_counter) on a shared machine, so expect noise; the process CPU time is shown
too. Peak RSS is ru_maxrss after each phase: points are made batch by batch, so it stays far below what all
points at once would take (about 1.5 KB per domain point).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from simulator import FleetSpec, simulate, write_simulation  # noqa: E402
from simulator.simulation import WRITE_BATCH_STEPS  # noqa: E402
from table import print_table  # noqa: E402
from tsdb import open_store  # noqa: E402

TARGET_SECONDS = 60.0


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> "Timer":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def run(spec: FleetSpec, batch_steps: int, workdir: Path) -> None:
    """Time simulate, render and write for a spec; print the table."""
    baseline_mb = peak_rss_mb()
    with Timer() as simulating:
        sim = simulate(spec)
    total = sim.point_count()
    simulate_mb = peak_rss_mb()
    print(f"simulated {spec.hosts} hosts x {spec.days:g} days: {total:,} points to make", flush=True)

    made = 0
    with Timer() as rendering:
        batches = sim.points(batch_steps)
        while (batch := next(batches, None)) is not None:
            made += len(batch)
            batch = None  # as write_simulation does: one batch in memory at a time
    assert made == total, f"points() made {made:,} points, point_count() said {total:,}"
    render_mb = peak_rss_mb()
    print(f"rendered {made:,} points in {rendering.wall:.1f} s; writing ...", flush=True)

    reported = []
    with open_store(f"duckdb://{workdir / 'demo.duckdb'}") as store, Timer() as writing:
        written = write_simulation(store, sim, progress=lambda done, _total: reported.append(done),
                                   batch_steps=batch_steps)
    assert written == total and reported[-1] == total, f"wrote {written:,} of {total:,} points"
    write_mb = peak_rss_mb()
    size_mb = (workdir / "demo.duckdb").stat().st_size / 2**20
    end_to_end = simulating.wall + writing.wall

    rows = [
        ("points", f"{total:,}", "points", "-"),
        ("simulate() (signals, failures, consequences)", f"{simulating.wall:.2f}", "s", "-"),
        ("render only: iterate points(), drop each batch", f"{rendering.wall:.1f}", "s", "-"),
        ("  render rate", f"{made / rendering.wall:,.0f}", "points/s", "-"),
        ("  render CPU per point", f"{rendering.cpu / made * 1e6:.2f}", "us/point", "-"),
        ("write_simulation() into DuckDB (render + write)", f"{writing.wall:.1f}", "s", "-"),
        ("  of which the store's write (minus render only)", f"{writing.wall - rendering.wall:.1f}", "s", "-"),
        ("  end-to-end rate", f"{written / writing.wall:,.0f}", "points/s", "-"),
        ("  CPU time of this process (all threads)", f"{writing.cpu:.1f}", "s", "-"),
        ("generate and write, simulate() + write_simulation()", f"{end_to_end:.1f}", "s", f"< {TARGET_SECONDS:.0f}"),
        ("progress callbacks", f"{len(reported):,}", "calls", "-"),
        ("DuckDB file size", f"{size_mb:,.0f}", "MB", "-"),
        ("peak RSS after imports", f"{baseline_mb:,.0f}", "MB", "-"),
        ("peak RSS after simulate()", f"{simulate_mb:,.0f}", "MB", "-"),
        ("peak RSS after render only", f"{render_mb:,.0f}", "MB", "-"),
        ("peak RSS after write_simulation()", f"{write_mb:,.0f}", "MB", "-"),
    ]
    print()
    print(f"simulator benchmark: {spec.hosts} hosts x {spec.days:g} days, {spec.step_seconds} s steps, "
          f"{spec.domains_per_host} guests per host, batch_steps {batch_steps}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print_table(rows)


def main() -> None:
    """Parse arguments and run the benchmark in a temp dir that is removed afterwards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=24, help="hosts (default 24)")
    parser.add_argument("--days", type=float, default=14.0, help="days (default 14)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--batch-steps", type=int, default=WRITE_BATCH_STEPS,
                        help=f"steps per batch (default {WRITE_BATCH_STEPS}, write_simulation's)")
    args = parser.parse_args()
    try:
        spec = FleetSpec(hosts=args.hosts, days=args.days, seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    if args.batch_steps < 1:
        parser.error(f"--batch-steps {args.batch_steps}: must be >= 1")
    with tempfile.TemporaryDirectory(prefix="virtwatch-bench-") as workdir:
        run(spec, args.batch_steps, Path(workdir))


if __name__ == "__main__":
    main()

"""Benchmark of the fleet simulator and of the demo's first start: simulate, write and roll up the history, and
the time until `virtwatch demo` serves the fleet with every host.

Run it from the repository root:

    .venv/bin/python benchmarks/bench_simulator.py [--hosts 24] [--days 14] [--points] [--no-demo]

It simulates the demo's fleet (24 hosts x 14 days at 60 s steps, 6 guests each, incidents on: about 4.35
million points), then times, each separately, and prints one table (what, value, unit, target):

    simulate()                 signals, failures, consequences (no points yet)
    write_simulation()         render and write into a fresh DuckDB file as column batches (simulator.columns),
                               the demo's history
    roll_up_history()          the demo's four SLOs' minute and hour rollups inside DuckDB (simulator.rollups)
    --points                   before: the same points as Points through store.write (render only, then render and
                               write) and the rollups by alerts.rollups.roll_up a day at a time, as the demo did
    the demo's first start     `virtwatch demo` from an empty data dir (a subprocess): until it prints its address,
                               until Debian's Chromium shows the fleet page counting every simulated host, until
                               the history is complete                                target: fleet <= 15 s

Times are wall-clock (time.perf_counter) on a shared machine, so expect noise; the process CPU time is shown
too. Peak RSS is ru_maxrss after each phase.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from alerts.rollups import NO_ROLLUPS, roll_up  # noqa: E402
from alerts.slo import parse_slos  # noqa: E402
from simulator import FleetSpec, simulate, write_simulation  # noqa: E402
from simulator.rollups import roll_up_history  # noqa: E402
from table import print_table  # noqa: E402
from tsdb import open_store  # noqa: E402
from virtwatch.demo import DEMO_SLOS  # noqa: E402

FLEET_TARGET_SECONDS = 15.0
VIRTWATCH = str(Path(sys.executable).with_name("virtwatch"))


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


class PointsOnly:
    """A store seen through `write` only: write_simulation then writes Points, as before column batches."""

    def __init__(self, store):
        self.write = store.write


def run(spec: FleetSpec, workdir: Path, points: bool) -> list:
    """Time simulate, write and roll-up (and, with `points`, the per-point path); return the table's rows."""
    slos = parse_slos(tomllib.loads(DEMO_SLOS))
    backfill = int(spec.days * 86400) + 3600
    with Timer() as simulating:
        sim = simulate(spec)
    total = sim.point_count()
    print(f"simulated {spec.hosts} hosts x {spec.days:g} days: {total:,} points to write", flush=True)
    rows = [("points", f"{total:,}", "points", "-"),
            ("simulate() (signals, failures, consequences)", f"{simulating.wall:.2f}", "s", "-")]
    with open_store(f"duckdb://{workdir / 'columns.duckdb'}") as store:
        with Timer() as writing:
            written = write_simulation(store, sim)
        assert written == total, f"wrote {written:,} of {total:,} points"
        print(f"written as columns in {writing.wall:.1f} s; rolling up ...", flush=True)
        with Timer() as rolling:
            roll_up_history(store, slos, sim.end_ns, backfill)
    size_mb = (workdir / "columns.duckdb").stat().st_size / 2**20
    rows += [("write_simulation() as column batches (render + write)", f"{writing.wall:.1f}", "s", "-"),
             ("  rate", f"{written / writing.wall:,.0f}", "points/s", "-"),
             ("  CPU time of this process (all threads)", f"{writing.cpu:.1f}", "s", "-"),
             ("roll_up_history(), 4 SLOs in DuckDB", f"{rolling.wall:.1f}", "s", "-"),
             ("DuckDB file size", f"{size_mb:,.0f}", "MB", "-"),
             ("peak RSS after both", f"{peak_rss_mb():,.0f}", "MB", "-")]
    if points:
        made = 0
        with Timer() as rendering:
            for batch in sim.points(240):
                made += len(batch)
        with open_store(f"duckdb://{workdir / 'points.duckdb'}") as store:
            print(f"before: rendered {made:,} Points in {rendering.wall:.1f} s; writing ...", flush=True)
            with Timer() as old_writing:
                write_simulation(PointsOnly(store), sim)
            print(f"before: written in {old_writing.wall:.1f} s; rolling up ...", flush=True)
            with Timer() as old_rolling:
                for slo in slos:
                    roll_up(store, slo, sim.end_ns, NO_ROLLUPS, backfill_seconds=backfill, chunk_seconds=86400)
        rows += [("before: render Points only", f"{rendering.wall:.1f}", "s", "-"),
                 ("before: write_simulation() as Points (render + write)", f"{old_writing.wall:.1f}", "s", "-"),
                 ("before: alerts.rollups.roll_up, 4 SLOs a day at a time", f"{old_rolling.wall:.1f}", "s", "-")]
    return rows


def first_start(spec: FleetSpec, workdir: Path) -> list:
    """Start `virtwatch demo` on an empty data dir; return rows: until its address, the fleet, the history."""
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import CHROMIUM, CHROMIUM_ARGS
    from servers import free_port

    port = free_port()
    out, err = workdir / "demo.out", workdir / "demo.err"
    url = f"http://127.0.0.1:{port}/"
    began = time.perf_counter()
    process = subprocess.Popen([VIRTWATCH, "demo", "--data-dir", str(workdir / "demo"), "--port", str(port),
                                "--hosts", str(spec.hosts), "--days", f"{spec.days:g}"],
                               stdout=open(out, "wb"), stderr=open(err, "wb"))
    seen: dict[str, float] = {}

    def look() -> None:
        text = out.read_text(errors="replace") + err.read_text(errors="replace")
        for marker in ("open http", "the history is complete"):
            if marker in text and marker not in seen:
                seen[marker] = time.perf_counter() - began
        if process.poll() is not None:
            raise SystemExit(f"the demo exited with {process.returncode}:\n{text}")

    fleet = None
    try:
        while "open http" not in seen and time.perf_counter() - began < 300:
            look()
            time.sleep(0.05)
        if Path(CHROMIUM).exists():
            from playwright.sync_api import sync_playwright

            every_host = re.compile(rf"\b{spec.hosts} of {spec.hosts} hosts|\b{spec.hosts + 1} of "
                                    rf"{spec.hosts + 1} hosts")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.locator("#fleet-count").filter(has_text=every_host).wait_for(timeout=300_000)
                fleet = time.perf_counter() - began
                browser.close()
        while "the history is complete" not in seen and time.perf_counter() - began < 600:
            look()
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    print(err.read_text(errors="replace").replace("\r", "\n"), file=sys.stderr)
    return [("demo first start: until it prints its address", f"{seen.get('open http', float('nan')):.1f}", "s",
             "-"),
            ("demo first start: until / shows the fleet with every host",
             f"{fleet:.1f}" if fleet is not None else f"- (no {CHROMIUM})", "s", f"<= {FLEET_TARGET_SECONDS:.0f}"),
            ("demo first start: until the history is complete (rollups too)",
             f"{seen.get('the history is complete', float('nan')):.1f}", "s", "-")]


def main() -> None:
    """Parse arguments and run the benchmark in a temp dir that is removed afterwards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=24, help="hosts (default 24, the demo's)")
    parser.add_argument("--days", type=float, default=14.0, help="days (default 14, the demo's)")
    parser.add_argument("--seed", type=int, default=1, help="seed (default 1, the demo's)")
    parser.add_argument("--points", action="store_true", help="also time the per-Point path (before columns)")
    parser.add_argument("--no-demo", action="store_true", help="leave out the demo's first start")
    args = parser.parse_args()
    try:
        spec = FleetSpec(hosts=args.hosts, days=args.days, seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    with tempfile.TemporaryDirectory(prefix="virtwatch-bench-") as workdir:
        rows = run(spec, Path(workdir), args.points)
        if not args.no_demo:
            rows += first_start(spec, Path(workdir))
    print()
    print(f"simulator and demo first start: {spec.hosts} hosts x {spec.days:g} days, {spec.step_seconds} s steps, "
          f"{spec.domains_per_host} guests per host, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print_table(rows)


if __name__ == "__main__":
    main()

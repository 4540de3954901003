"""Benchmark of the agent: one collection (stats, probe, /proc, admin API), encoding and shipping, memory.

Run it from the repository root (needs libvirtd, see `make setup-test`; root, as for tests/libvirtd.py):

    .venv/bin/python benchmarks/bench_collector.py [--domains 200,2000] [--collections 20] [--profile]
                                                   [--skip-faults] [--skip-forensics]
    .venv/bin/python benchmarks/bench_collector.py --only-faults | --only-forensics

It starts a private libvirtd in a temp dir (tests/libvirtd.py), writes a test-driver node file with N running
domains (`instance-000001f4`, ...) and, for each N, builds an Agent on the test driver THROUGH the daemon
(`test+unix:///TMP/nodeN.xml?socket=...`), with DaemonHealth reading the daemon's /proc files (pidfile) and
its admin API (admin socket, through the admin helper subprocess), writing into an embedded DuckDB store in
the temp dir. After 2 warm-up collections it measures `--collections` rounds of: `collect()`, encoding its
points to line protocol (`encode_lines`, what an InfluxDB store would send), and `ship()` into DuckDB.
Values are medians over the rounds; collect() also shows p90 and max. Targets (on the medians):

    one collection of 2000 domains, wall time (median)                   <  50 ms
    one collection of 2000 domains, CPU time of the agent process         <  30 ms
    agent process RSS (VmRSS) at the end                                  <  80 MB

Times are wall-clock (time.perf_counter); CPU of collect() is time.process_time (all threads of this process:
the tick, the libvirt monitor and its call threads, the daemon sources, the event loop); the parts' CPU is
each part's own thread's (time.thread_time), since the sources run concurrently. The admin API is read by a helper SUBPROCESS
(collector/admin_api.py): its CPU is NOT in the agent's process time; it is shown on its own row, from
/proc/<helper pid>/stat (utime+stime, clock-tick resolution: 10 ms over all rounds), and so is libvirtd's
CPU. The test driver's stats records carry only the state group (2 fields per domain): a QEMU host's records
(cpu, balloon, vcpu, block, net) make domain_fields, encoding and the store write cost more per point. The
process RSS includes what this benchmark imports besides the agent (tests/libvirtd.py; little); the table
ends with the RSS of a fresh interpreter after each import the agent makes, to show where the baseline goes.
Full garbage collections (generation 2) that fall inside collect() are counted with their pause time.
`--profile` adds cProfile's top functions of collect() over 2000 domains, on the main thread and on the
libvirt worker thread.

Then the FAULT TABLE (benchmarks/fault_table.py, about 4 minutes; `--skip-faults` leaves it out): each fault of
the README's fault matrix staged on a private libvirtd with real QEMU guests and held as production holds it,
with what the agent reported, how soon, the share of intervals with host points, and the agent's own calls and
connections in the daemon.

Then the FORENSICS TABLE (benchmarks/forensics_table.py, about 3 minutes; `--skip-forensics` leaves it out,
`--only-forensics` prints it alone): the time and size of each forensics capture (trigger hang, segfault,
restart, manual; and `virtwatch diagnose` end to end) on a private libvirtd with 2000 test-driver domains and
with 2 real QEMU guests, each trigger staged for real while the agent loop runs, with the agent's tick gaps
and scrape times around each capture.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from libvirtd import PrivateLibvirtd  # noqa: E402

from collector.agent import Agent  # noqa: E402
from collector.daemon_health import DaemonHealth  # noqa: E402
from collector.libvirt_source import LibvirtSource  # noqa: E402
from fault_table import fault_rows, run_faults  # noqa: E402
from forensics_table import FORENSICS_HEADER, environment, forensics_rows, run_forensics, step_rows  # noqa: E402
from table import print_columns, print_table  # noqa: E402
from tsdb import open_store  # noqa: E402
from tsdb.lineprotocol import encode_lines  # noqa: E402

WARMUPS = 2
TARGET_DOMAINS = 2000
WALL_TARGET_MS = 50.0
CPU_TARGET_MS = 30.0
RSS_TARGET_MB = 80.0
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
RUNNING = 1  # VIR_DOMAIN_RUNNING, the test driver's <test:runstate>


def node_xml(count: int) -> str:
    """Return a test-driver node file (`<node>` of `<domain type='test'>`) with `count` running domains."""
    domains = "".join(
        f"  <domain type='test' xmlns:test='{TEST_NS}'>\n"
        f"    <name>instance-{i:08x}</name>\n"
        f"    <memory unit='MiB'>512</memory>\n"
        f"    <vcpu>2</vcpu>\n"
        f"    <os><type>hvm</type></os>\n"
        f"    <test:runstate>{RUNNING}</test:runstate>\n"
        f"  </domain>\n" for i in range(1, count + 1))
    return f"<node>\n{domains}</node>\n"


def cpu_seconds(pid: int | None) -> float:
    """Return a process's user+system CPU seconds from /proc/PID/stat (0 when there is no such process)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> float:
    """Return a process's resident set size in MB (VmRSS from /proc/PID/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Timed:
    """Wrap one bound method of an instance to add up its wall and CPU time per round (a part of collect()).

    The agent's sources run on threads of their own, so CPU is the calling thread's own (time.thread_time)."""

    def __init__(self, owner: object, name: str):
        self.function: Callable = getattr(owner, name)
        self.wall = self.cpu = 0.0
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        cpu, began = time.thread_time(), time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.wall += time.perf_counter() - began
            self.cpu += time.thread_time() - cpu

    def take_ms(self) -> tuple[float, float]:
        """Return and reset (wall, CPU) in ms."""
        taken, self.wall, self.cpu = (self.wall * 1000, self.cpu * 1000), 0.0, 0.0
        return taken


class TimedCalls:
    """Add up the wall and CPU time of the source's libvirt calls of one kind (each runs on its own thread)."""

    def __init__(self, source: LibvirtSource):
        self.run = source._run
        self.taken: dict[str, list[float]] = {}
        source._run = self

    def __call__(self, call, conn, function) -> None:
        cpu, began = time.thread_time(), time.perf_counter()
        try:
            self.run(call, conn, function)
        finally:
            wall_cpu = self.taken.setdefault(call.kind, [0.0, 0.0])
            wall_cpu[0] += time.perf_counter() - began
            wall_cpu[1] += time.thread_time() - cpu

    def part(self, kind: str) -> "CallPart":
        return CallPart(self, kind)


class CallPart:
    """The calls of one kind as a part of collect(), with Timed's take_ms."""

    def __init__(self, calls: TimedCalls, kind: str):
        self.calls, self.kind = calls, kind

    def take_ms(self) -> tuple[float, float]:
        wall, cpu = self.calls.taken.pop(self.kind, [0.0, 0.0])
        return wall * 1000, cpu * 1000


class GcPauses:
    """Count the garbage collector's full (generation 2) collections and their time while `active`."""

    def __init__(self):
        self.active = False
        self.count = 0
        self.seconds = 0.0
        self._began = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if not self.active or info["generation"] != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.count += 1
            self.seconds += time.perf_counter() - self._began


def helper_pid(health: DaemonHealth) -> int | None:
    """Return the pid of the admin API helper subprocess (started on the first read), if it runs."""
    admin = getattr(health, "_admin", None)
    helper = getattr(admin, "_helper", None)
    return helper.pid if helper is not None else None


def make_agent(daemon: PrivateLibvirtd, uri: str, store_path: Path) -> Agent:
    """An agent on the test driver through the daemon, with /proc and admin reads, writing into DuckDB."""
    store = open_store(f"duckdb://{store_path}")
    health = DaemonHealth(daemon.pidfile, daemon.admin_uri)
    return Agent(store, LibvirtSource(uri), "bench-hv", daemon_health=health)


def close_agent(agent: Agent) -> None:
    agent.source.close()
    agent.daemon_health.close()
    agent.store.close()


def bench(daemon: PrivateLibvirtd, count: int, rounds: int, workdir: Path) -> dict:
    """Measure `rounds` collect / encode / ship of an agent over `count` domains; return medians and totals."""
    node = workdir / f"node{count}.xml"
    node.write_text(node_xml(count))
    uri = f"test+unix://{node}?socket={daemon.sock_dir}/libvirt-sock"
    agent = make_agent(daemon, uri, workdir / f"bench{count}.duckdb")
    calls = TimedCalls(agent.source)
    parts = {"stats": calls.part("stats"), "probe": calls.part("probe"), "counts": calls.part("counts"),
             "health": Timed(agent._health, "_read"), "admin": Timed(agent._admin, "_read"),
             "host": Timed(agent.host_load, "read")}
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    try:
        for _ in range(WARMUPS):
            points = agent.collect()
            agent.ship(points)
        gc.freeze()  # as `virtwatch agent` does after start-up (virtwatch/cli.py)
        domains = sum(p.measurement == "domain" for p in points)
        assert domains == count, f"{uri}: {domains} domain points, expected {count}"
        for timed in parts.values():
            timed.take_ms()
        helper, libvirtd = helper_pid(agent.daemon_health), daemon.pid
        assert helper, "the admin helper is not running: admin reads failed (see the warnings above)"
        rows: dict[str, list[float]] = {k: [] for k in ("collect_wall", "collect_cpu", "main_cpu", "encode_wall",
                                                         "encode_cpu", "ship_wall", "ship_cpu", "points")}
        rows.update({f"{name}_{kind}": [] for name in parts for kind in ("wall", "cpu")})
        helper_cpu, libvirtd_cpu = cpu_seconds(helper), cpu_seconds(libvirtd)
        for _ in range(rounds):
            pauses.active = True
            cpu, main_cpu, began = time.process_time(), time.thread_time(), time.perf_counter()
            points = agent.collect()
            rows["collect_wall"].append((time.perf_counter() - began) * 1000)
            rows["collect_cpu"].append((time.process_time() - cpu) * 1000)
            rows["main_cpu"].append((time.thread_time() - main_cpu) * 1000)
            pauses.active = False
            for name, timed in parts.items():
                wall, cpu = timed.take_ms()
                rows[f"{name}_wall"].append(wall)
                rows[f"{name}_cpu"].append(cpu)
            rows["points"].append(len(points))

            cpu, began = time.process_time(), time.perf_counter()
            lines = encode_lines(points)
            rows["encode_wall"].append((time.perf_counter() - began) * 1000)
            rows["encode_cpu"].append((time.process_time() - cpu) * 1000)
            assert len(lines) == len(points), f"{len(points) - len(lines)} points encoded to no line"

            cpu, began = time.process_time(), time.perf_counter()
            written, ok = agent.ship(points)
            rows["ship_wall"].append((time.perf_counter() - began) * 1000)
            rows["ship_cpu"].append((time.process_time() - cpu) * 1000)
            assert ok and written == len(points), f"shipped {written} of {len(points)} points (ok={ok})"
        helper_cpu = cpu_seconds(helper) - helper_cpu
        libvirtd_cpu = cpu_seconds(libvirtd) - libvirtd_cpu
        assert helper_pid(agent.daemon_health) == helper, "the admin helper was restarted during the rounds"
        result = {key: statistics.median(values) for key, values in rows.items()}
        for key in ("collect_wall", "collect_cpu"):
            result[f"{key}_p90"] = statistics.quantiles(rows[key], n=10, method="inclusive")[-1]
            result[f"{key}_max"] = max(rows[key])
        result.update(helper_cpu_ms=helper_cpu / rounds * 1000, libvirtd_cpu_ms=libvirtd_cpu / rounds * 1000,
                      rss_mb=rss_mb(), helper_rss_mb=rss_mb(helper), gc_full=pauses.count,
                      gc_full_ms=pauses.seconds * 1000, rounds=rounds)
        return result
    finally:
        gc.unfreeze()
        gc.callbacks.remove(pauses)
        close_agent(agent)


def profile(daemon: PrivateLibvirtd, count: int, rounds: int, workdir: Path, top: int = 20) -> str:
    """Return cProfile's top functions over `rounds` collect() calls: on the main thread, and on the threads of
    the source's libvirt calls (with the Python that wraps them: building domain points included)."""
    node = workdir / f"node{count}.xml"
    uri = f"test+unix://{node}?socket={daemon.sock_dir}/libvirt-sock"
    agent = make_agent(daemon, uri, workdir / f"profile{count}.duckdb")
    main, worker = cProfile.Profile(), cProfile.Profile()
    measuring = []  # not empty while a measured collect() runs
    run = agent.source._run
    agent.source._run = lambda call, conn, function: (
        worker.runcall(run, call, conn, function) if measuring else run(call, conn, function))
    try:
        for _ in range(WARMUPS):
            agent.ship(agent.collect())
        for _ in range(rounds):
            measuring.append(True)
            main.enable()
            points = agent.collect()
            main.disable()
            measuring.clear()
            agent.ship(points)
    finally:
        close_agent(agent)
    out = io.StringIO()
    for title, profiler in ((f"main thread ({rounds} collect() calls over {count} domains; the wait for the worker "
                             f"shows as lock acquire)", main),
                            (f"libvirt call threads (the calls those {rounds} collect() made)", worker)):
        print(f"--- cProfile, {title}", file=out)
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


IMPORT_STEPS = (
    ("interpreter", ""),
    ("+ import libvirt", "import libvirt"),
    ("+ collector.agent and an InfluxDB store (the production agent)",
     "import collector.agent; from tsdb import open_store; open_store('influxdb://127.0.0.1:1/x').close()"),
    ("+ an embedded DuckDB store (make run; loads duckdb, pandas)", "open_store(STORE).close()"),
)


def agent_peak_rss_mb(daemon: PrivateLibvirtd, count: int, workdir: Path) -> float:
    """Return the peak RSS (MB) of a real `virtwatch agent` process collecting `count` domains five times and
    shipping to an InfluxDB URL (nobody listens: the points go to its spool, as in an outage)."""
    node = workdir / f"node{count}.xml"
    config = workdir / "agent-rss.toml"
    config.write_text(f"""[store]\nurl = "influxdb://127.0.0.1:9/rss"\nmax_retries = 0\ntimeout_seconds = 1\n
[agent]\nlibvirt_uri = "test+unix://{node}?socket={daemon.sock_dir}/libvirt-sock"\ninterval_seconds = 0.3
daemon_pidfile = "{daemon.pidfile}"\nadmin_uri = "{daemon.admin_uri}"\nspool_dir = "{workdir / 'rss-spool'}"\n""")
    agent = subprocess.Popen([sys.executable, "-m", "virtwatch", "agent", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    time.sleep(0.3 * 5 + 3)
    peak = 0.0
    for line in open(f"/proc/{agent.pid}/status"):
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    agent.terminate()
    agent.wait(30)
    return peak


def import_rss(workdir: Path) -> list[tuple[str, float]]:
    """Return the RSS of a fresh interpreter after each import step (where the agent's baseline memory goes)."""
    code = ["import sys", f"sys.path.insert(0, {str(ROOT)!r})", f"STORE = 'duckdb://{workdir / 'imports.duckdb'}'",
            "def rss():",
            "    for line in open('/proc/self/status'):",
            "        if line.startswith('VmRSS:'):",
            "            return int(line.split()[1]) / 1024"]
    for _, step in IMPORT_STEPS:
        code += [step, "print(rss(), flush=True)"]
    out = subprocess.run([sys.executable, "-c", "\n".join(code)], capture_output=True, text=True, check=True)
    return [(name, float(value)) for (name, _), value in zip(IMPORT_STEPS, out.stdout.split())]


def table_rows(count: int, r: dict) -> list[tuple[str, str, str, str]]:
    """Return the table rows of one N."""
    target = count == TARGET_DOMAINS
    points = r["points"]
    parts = (("stats", "bulk stats call (its own thread)"), ("probe", "stats probe (its own thread)"),
             ("counts", "domain counts (its own thread)"),
             ("health", "daemon /proc, log, kmsg (DaemonHealth.read_local, its thread)"),
             ("admin", "admin API (DaemonHealth.read_admin, its thread)"), ("host", "host /proc (HostLoad.read)"))
    return [
        (f"N = {count:,} domains: points per collection", f"{points:,.0f}", "points", "-"),
        ("  collect() wall time (median / p90 / max)",
         f"{r['collect_wall']:.1f} / {r['collect_wall_p90']:.1f} / {r['collect_wall_max']:.1f}", "ms",
         f"< {WALL_TARGET_MS:.0f} (median)" if target else "-"),
        ("  collect() CPU time, agent process (median / p90 / max)",
         f"{r['collect_cpu']:.1f} / {r['collect_cpu_p90']:.1f} / {r['collect_cpu_max']:.1f}", "ms",
         f"< {CPU_TARGET_MS:.0f} (median)" if target else "-"),
        *((f"    {label} (wall / CPU)", f"{r[f'{name}_wall']:.1f} / {r[f'{name}_cpu']:.1f}", "ms", "-")
          for name, label in parts),
        ("    the tick's own thread: asking, waiting, building points (CPU)", f"{r['main_cpu']:.1f}", "ms", "-"),
        (f"    full GC (gen 2) pauses inside collect(), {r['rounds']} rounds",
         f"{r['gc_full']} / {r['gc_full_ms']:.0f}", "n / ms", "-"),
        ("  admin helper subprocess CPU per collection (not above)", f"{r['helper_cpu_ms']:.1f}", "ms", "-"),
        ("  libvirtd CPU per collection", f"{r['libvirtd_cpu_ms']:.1f}", "ms", "-"),
        ("  encode_lines of one collection (wall / CPU)", f"{r['encode_wall']:.1f} / {r['encode_cpu']:.1f}", "ms",
         "-"),
        ("  ship() into DuckDB (wall / CPU)", f"{r['ship_wall']:.1f} / {r['ship_cpu']:.1f}", "ms", "-"),
        ("  shipping rate (points / ship time)", f"{points / r['ship_wall'] * 1000:,.0f}", "points/s", "-"),
        ("  end to end (points / (collect + ship))",
         f"{points / (r['collect_wall'] + r['ship_wall']) * 1000:,.0f}", "points/s", "-"),
        ("  benchmark process RSS (VmRSS) after these rounds", f"{r['rss_mb']:.0f}", "MB",
         "- (DuckDB, pandas)"),
        ("  admin helper RSS", f"{r['helper_rss_mb']:.0f}", "MB", "-"),
    ]


def run(counts: list[int], rounds: int, workdir: Path, with_profile: bool, with_faults: bool = True,
        with_forensics: bool = True) -> None:
    """Start a private libvirtd in workdir, benchmark each N, print the table (and a profile when asked)."""
    daemon = PrivateLibvirtd(workdir / "libvirtd")
    results = {}
    profiled = ""
    imports = import_rss(workdir)
    try:
        daemon.start()
        for count in counts:
            print(f"collecting {count:,} domains through libvirtd, {WARMUPS} warm-ups + {rounds} rounds ...",
                  flush=True)
            results[count] = bench(daemon, count, rounds, workdir)
        peak_count = max(counts)
        print(f"running `virtwatch agent` on {peak_count:,} domains for its peak RSS ...", flush=True)
        agent_peak = (peak_count, agent_peak_rss_mb(daemon, peak_count, workdir))
        if with_profile:
            count = TARGET_DOMAINS if TARGET_DOMAINS in counts else max(counts)
            print(f"profiling collect() over {count:,} domains ...", flush=True)
            profiled = profile(daemon, count, rounds, workdir)
    finally:
        daemon.stop()

    rows = []
    for count, result in results.items():
        rows += table_rows(count, result)
    rows.append((f"`virtwatch agent` peak RSS (VmHWM), {agent_peak[0]:,} domains, InfluxDB store",
                 f"{agent_peak[1]:.0f}", "MB", f"< {RSS_TARGET_MB:.0f}"))
    rows.append(("this benchmark's RSS (it ships into DuckDB: duckdb, pandas)", f"{rss_mb():.0f}", "MB", "-"))
    rows.append(("RSS of a fresh interpreter, step by step:", "", "", ""))
    rows += [(f"  {name}", f"{value:.0f}", "MB", "-") for name, value in imports]
    print()
    print(f"collector benchmark: test driver through libvirtd, {rounds} collections after {WARMUPS} warm-ups, "
          f"medians; Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print_table(rows)
    if profiled:
        print()
        print(profiled)
    if with_faults:
        print()
        print_fault_table(workdir)
    if with_forensics:
        print()
        print_forensics_table(workdir)


def print_fault_table(workdir: Path) -> None:
    """Stage every fault of the matrix and print the fault table."""
    faults = fault_rows(run_faults(workdir))
    print()
    print(f"fault table: interval 2 s, probe deadline 5 s, keepalive 5 s x 5; private libvirtd (max_workers 10), "
          f"real QEMU guests ({'kvm' if os.path.exists('/dev/kvm') else 'tcg'})")
    print_columns(("fault", "what the agent reported", "detected after s", "host points", "agent calls in daemon",
                   "connections opened", "clients max (admin)"), faults)


def print_forensics_table(workdir: Path) -> None:
    """Stage every forensics trigger on 2000 test-driver domains and on QEMU guests; print the tables."""
    rows = run_forensics(workdir, node_xml(TARGET_DOMAINS), TARGET_DOMAINS)
    print()
    print(f"forensics table: each capture staged for real on a private libvirtd while the agent loop runs; "
          f"{environment()}")
    print_columns(FORENSICS_HEADER, forensics_rows(rows))
    print()
    print("each capture step's ms (* not ok: cut, failed or skipped), and the bundle's biggest sections")
    print_columns(*step_rows(rows))


def main() -> None:
    """Parse arguments and run the benchmark in a temp dir that is removed afterwards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", default="200,2000", help="comma-separated domain counts (default 200,2000)")
    parser.add_argument("--collections", type=int, default=20, help="measured collections per count (default 20)")
    parser.add_argument("--skip-faults", action="store_true", help="leave out the fault table (about 4 minutes)")
    parser.add_argument("--only-faults", action="store_true", help="print the fault table only")
    parser.add_argument("--skip-forensics", action="store_true",
                        help="leave out the forensics table (about 3 minutes)")
    parser.add_argument("--only-forensics", action="store_true", help="print the forensics table only")
    parser.add_argument("--profile", action="store_true",
                        help=f"also cProfile collect() over {TARGET_DOMAINS} domains and print the top functions")
    args = parser.parse_args()
    counts = [int(c) for c in args.domains.split(",") if c.strip()]
    # a short path: unix socket paths are limited to 107 bytes
    with tempfile.TemporaryDirectory(prefix="vw-bench-") as workdir:
        if args.only_faults or args.only_forensics:
            if args.only_faults:
                print_fault_table(Path(workdir))
            if args.only_forensics:
                print_forensics_table(Path(workdir))
        else:
            run(counts, args.collections, Path(workdir), args.profile, not args.skip_faults,
                not args.skip_forensics)


if __name__ == "__main__":
    main()

"""Benchmark of the alert engine: one evaluation of every SLO and window, the time from a libvirtd SIGKILL to
the page at a receiver, and what a live fleet gets paged for (issue 13).

Run it from the repository root (needs influxd and libvirtd, see `make setup-test`; root, as tests/libvirtd.py):

    .venv/bin/python benchmarks/bench_alerts.py [--hosts 100] [--days 7] [--kills 3] [--skip-kill]
        [--fleet-hosts 2000] [--fleet-minutes 3] [--fleet-slo-interval 30] [--skip-fleet]

Part 1 starts a private InfluxDB 1.6 (tests/servers.py) and writes what the engine reads after `--days` of
running over `--hosts` hosts: the minute and hour `sli` rollups of the 4 SLOs of deploy/slos.toml, and the last
20 minutes of raw points (libvirtd probes and collector points every 10 s, 20 domains per host), with a few
failures. It then times `evaluate_slos` for the 4 SLOs (every host, the fleet, every window of the catalog and
the period, the SLOs in 4 threads: what one engine round evaluates) through the rollups, cold (the first read after the write) and
warm (median of 5), an incremental `roll_up` round, and the event rules. The same on the embedded DuckDB store.
Target: one evaluation of the 4 SLOs for 100 hosts over 7 days in InfluxDB under 1 s.

Part 2 starts a private libvirtd, `virtwatch agent` and `virtwatch alerts` as subprocesses with the DEFAULT
intervals (agent every 10 s, rules every 5 s, down after 5 s) over that InfluxDB, and a webhook receiver on
loopback. It SIGKILLs libvirtd `--kills` times (restarting it and waiting for the resolve in between) and
reports the seconds from each kill to the LibvirtdDown page at the receiver. Target: under 15 s.

Part 3 (benchmarks/live_fleet_bench.py) writes `--fleet-hosts` healthy hosts live into that InfluxDB, as agents
write, while the engine runs with the shipped SLOs for `--fleet-minutes`, and counts the pages and tickets a
webhook receiver gets: false pages per hour, target 0. Then a fleet-wide outage of as many hosts (every probe
failing for 2 minutes, in simulated time over a real store): the notifications each of two receivers gets, with
the outage's onset inside a round and just before a round's edge. Target: 1 page + 1 resolve per receiver.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from receivers import HTTPReceiver  # noqa: E402
from servers import InfluxDBServer, free_port, started  # noqa: E402

from alerts.burn import evaluate_slos  # noqa: E402
from alerts.event_rules import default_rules, evaluate_event_rules  # noqa: E402
from alerts.rollups import HOUR_NS, MINUTE_NS, REROLL_SECONDS, Coverage, roll_up  # noqa: E402
from alerts.slo import load_slos  # noqa: E402
from table import print_table  # noqa: E402
from tsdb import Point, open_store  # noqa: E402
from tsdb.schema import EVENT_KINDS  # noqa: E402

S = 10**9
SLOS = load_slos(ROOT / "deploy" / "slos.toml")


def plant(store, hosts: int, days: int, now_ns: int, rng: random.Random) -> tuple[int, Coverage]:
    """Write `days` of rollups and 20 minutes of raw points; return (points, the rollups' coverage)."""
    names = [f"hv-{i:03d}" for i in range(hosts)]
    minute_until = (now_ns - 60 * S) // MINUTE_NS * MINUTE_NS
    hour_until = (minute_until - REROLL_SECONDS * S) // HOUR_NS * HOUR_NS
    start = (minute_until - days * 86400 * S) // HOUR_NS * HOUR_NS
    per_minute = {"libvirtd-availability": 6.0, "libvirtd-latency": 6.0, "domain-stability": 120.0,
                  "collection-freshness": 6.0}
    written = 0
    batch: list[Point] = []

    def flush(force=False):
        nonlocal written, batch
        if len(batch) >= 50_000 or (force and batch):
            written += store.write(batch) or len(batch)
            batch = []

    for slo in SLOS:
        total = per_minute[slo.name]
        for host in names:
            bad_minutes = set(rng.sample(range((minute_until - start) // MINUTE_NS), 20))
            hour_good = hour_total = 0.0
            for index, t in enumerate(range(start, minute_until, MINUTE_NS)):
                good = total - (1.0 if index in bad_minutes else 0.0)
                batch.append(Point("sli", {"host": host, "slo": slo.name, "resolution": "1m"},
                                   {"good_total": good, "valid_total": total}, t))
                hour_good, hour_total = hour_good + good, hour_total + total
                if (t + MINUTE_NS) % HOUR_NS == 0:
                    if t + MINUTE_NS <= hour_until:
                        batch.append(Point("sli", {"host": host, "slo": slo.name, "resolution": "1h"},
                                           {"good_total": hour_good, "valid_total": hour_total},
                                           t + MINUTE_NS - HOUR_NS))
                    hour_good = hour_total = 0.0
                flush()
    for host in names:
        for t in range(now_ns - 1200 * S, now_ns, 10 * S):
            ok = int(rng.random() > 0.002)
            batch.append(Point("libvirtd", {"host": host}, {"up": 1, "hung": 0, "probe_ok": ok,
                                                            "probe_latency_ms": rng.uniform(5, 40)}, t))
            batch.append(Point("collector", {"host": host}, {"scrape_duration_ms": 20.0}, t))
            for d in range(20):
                batch.append(Point("domain", {"host": host, "domain": f"instance-{d:04d}"},
                                   {"state_code": 1, "stats_partial": 0}, t))
        batch.append(Point("event", {"host": host, "kind": "restart", "severity": EVENT_KINDS["restart"].severity},
                           {"message": "libvirtd restarted", "count": 1}, now_ns - 600 * S))
        flush()
    flush(force=True)
    return written, Coverage(minute_until, hour_until)


def evaluation_rows(store, label: str, now_ns: int, done: Coverage) -> list:
    """Time evaluations of every SLO (cold, then warm), an incremental roll-up and the event rules."""
    def evaluate_all():
        began = time.perf_counter()
        results = list(evaluate_slos(store, SLOS, now_ns, {slo.name: done for slo in SLOS}).values())
        return time.perf_counter() - began, results

    cold, results = evaluate_all()
    warm = statistics.median(evaluate_all()[0] for _ in range(5))
    hosts = len(results[0]) - 1
    began = time.perf_counter()
    for slo in SLOS:
        roll_up(store, slo, now_ns + 30 * S, done)
    rolled = time.perf_counter() - began
    rule_times = []
    for _ in range(5):
        began = time.perf_counter()
        found = evaluate_event_rules(store, default_rules(), now_ns)
        rule_times.append(time.perf_counter() - began)
    target = "< 1000 ms" if label == "InfluxDB" else ""
    return [
        (f"{label}: evaluate 4 SLOs x {hosts} hosts + fleet, all windows, cold", f"{cold * 1000:.0f}", "ms", target),
        (f"{label}: the same, warm (median of 5)", f"{warm * 1000:.0f}", "ms", target),
        (f"{label}: one incremental roll_up round of the 4 SLOs", f"{rolled * 1000:.0f}", "ms", ""),
        (f"{label}: event rules, {len(found)} results (median of 5)",
         f"{statistics.median(rule_times) * 1000:.0f}", "ms", ""),
    ]


def kill_to_page(server, tmp: Path, kills: int) -> list[float]:
    """Run agent and engine with default intervals; return seconds from each SIGKILL to the page."""
    from libvirtd import PrivateLibvirtd

    receiver = HTTPReceiver(free_port())
    receiver.start()
    daemon = PrivateLibvirtd(tmp / "libvirtd").start()
    server.create_database("kill")
    config = tmp / "virtwatch.toml"
    config.write_text(f"""
[store]
url = "influxdb://127.0.0.1:{server.port}/kill"
[agent]
libvirt_uri = {json.dumps(daemon.uri_test)}
admin_uri = {json.dumps(daemon.admin_uri)}
host_name = "hv-kill"
daemon_pidfile = {json.dumps(str(daemon.pidfile))}
spool_dir = {json.dumps(str(tmp / "spool"))}
[alerts]
state_dir = {json.dumps(str(tmp / "alerts"))}
[[alerts.receivers]]
name = "oncall"
type = "webhook"
url = "{receiver.url}/hook"
""")
    virtwatch = str(Path(sys.executable).with_name("virtwatch"))
    logs = [open(tmp / f"{name}.log", "wb") for name in ("agent", "alerts")]
    processes = [subprocess.Popen([virtwatch, name, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
                 for name, log in zip(("agent", "alerts"), logs)]
    delays = []
    try:
        time.sleep(15)  # the agent's first collections
        for _ in range(kills):
            seen = len(receiver.delivered)
            killed = time.monotonic()
            daemon.kill(signal.SIGKILL)
            while len(receiver.delivered) == seen and time.monotonic() - killed < 120:
                time.sleep(0.05)
            delays.append(time.monotonic() - killed)
            daemon.start()
            while len(receiver.delivered) < seen + 2 and time.monotonic() - killed < 240:
                time.sleep(0.2)  # the resolve
            time.sleep(random.uniform(0, 10))  # kill at another phase of the agent's interval
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        daemon.stop()
        receiver.stop()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--fleet-hosts", type=int, default=2000)
    parser.add_argument("--fleet-minutes", type=float, default=3.0)
    parser.add_argument("--fleet-slo-interval", type=float, default=30.0,
                        help="the engine's SLO interval in the live part, seconds (shipped: 30)")
    parser.add_argument("--skip-fleet", action="store_true")
    args = parser.parse_args()
    rng = random.Random(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp_name:
        tmp = Path(tmp_name)
        server = started(InfluxDBServer(tmp / "influxdb"))
        try:
            now_ns = time.time_ns()
            server.create_database("bench")
            for label, url in (("InfluxDB", f"influxdb://127.0.0.1:{server.port}/bench"),
                               ("DuckDB", f"duckdb://{tmp}/bench.duckdb")):
                with open_store(url) as store:
                    began = time.perf_counter()
                    points, done = plant(store, args.hosts, args.days, now_ns, random.Random(1))
                    took = time.perf_counter() - began
                    rows.append((f"{label}: planted points (rollups of {args.days} d, 20 min raw)",
                                 f"{points:,}", f"in {took:.0f} s", ""))
                    rows += evaluation_rows(store, label, now_ns, done)
            if not args.skip_kill:
                delays = kill_to_page(server, tmp, args.kills)
                rows.append((f"SIGKILL to page, default intervals ({len(delays)} kills): median",
                             f"{statistics.median(delays):.1f}", "s", "< 15 s"))
                rows.append(("SIGKILL to page: each", ", ".join(f"{d:.1f}" for d in delays), "s", ""))
            if not args.skip_fleet:
                import live_fleet_bench

                rows += live_fleet_bench.false_pages(server, tmp, args.fleet_hosts, args.fleet_minutes,
                                                     args.fleet_slo_interval)
                for onset in live_fleet_bench.ONSETS:
                    rows += live_fleet_bench.outage(server, tmp, args.fleet_hosts, onset)
        finally:
            server.stop()
    rows.append(("peak RSS of this process", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
                 "MB", ""))
    print_table(rows)
    del rng


if __name__ == "__main__":
    main()

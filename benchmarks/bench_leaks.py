"""What one evaluation of the leak rule (alerts.leak_rule) costs at fleet scale: queries, rows, seconds.

Plants `--hosts` hosts x `--hours` of `libvirtd` points every 10 s (open_fds, max_fds, rss_bytes,
start_time_seconds, pid) into a private InfluxDB 1.6 (tests/servers.py) and the embedded DuckDB store: most hosts
steady with noise, a few leaking descriptors, a few growing memory, a few restarted within the hour. Then times the
leak rule at the defaults as the engine runs it (alerts.leak_rule.LeakMemory, without the tracking): its first
round (every window read) and `--rounds` rounds a minute apart after it (only the windows since the last round),
and checks that exactly the planted leaks show a sign.

    .venv/bin/python benchmarks/bench_leaks.py [--hosts 2000] [--hours 6] [--rounds 5] [--stores influxdb,duckdb]
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_scale import _cpu_seconds, wait_for_compactions  # noqa: E402
from servers import InfluxDBServer  # noqa: E402

from alerts.leak_rule import FD_ALERTNAME, RSS_ALERTNAME, LeakMemory, LeakRule  # noqa: E402
from alerts.rule_memory import RoundReads  # noqa: E402
from tsdb import open_store  # noqa: E402

S = 10**9
MIB = 2**20
INTERVAL_S = 10
DATABASE = "bench_leaks"
BATCH_LINES = 50_000


def fleet_lines(hosts: int, hours: float, end_ns: int, seed: int = 1):
    """Yield line-protocol lines of every host's points in time order; return nothing. Host i % 200 == 7 leaks
    descriptors (310/h towards 8,000), i % 200 == 11 grows memory (12 MiB/h), i % 200 == 13 restarted 30 min ago
    after leaking."""
    rng = random.Random(seed)
    count = int(hours * 3600 / INTERVAL_S)
    start_ns = end_ns - count * INTERVAL_S * S
    started = (start_ns // S) - 3600
    noise = [rng.gauss(0, 3) for _ in range(4096)]
    for step in range(count + 1):
        t = start_ns + step * INTERVAL_S * S
        age_h = (count - step) * INTERVAL_S / 3600
        for i in range(hosts):
            kind = i % 200
            fds = 180 + noise[(i * 31 + step) % 4096]
            rss = 300 * MIB + 64 * noise[(i * 17 + step) % 4096] * 1024
            begun, pid = started, 1000 + i
            if kind == 7:
                fds = 7910 - 310 * age_h
            elif kind == 11:
                rss = 900 * MIB - 12 * MIB * age_h
            elif kind == 13:
                if age_h > 0.5:
                    fds = 7000 - 310 * (age_h - 0.5)
                else:
                    begun, pid = end_ns // S - 1800, 50_000 + i
            yield (f"libvirtd,host=hv-{i:04d} open_fds={int(fds)}i,max_fds=8000i,rss_bytes={int(rss)}i,"
                   f"start_time_seconds={float(begun)!r},pid={pid}i {t}")


def plant_influxdb(port: int, lines) -> int:
    """POST the lines to InfluxDB's /write in batches; return how many."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    written = 0
    batch: list[str] = []

    def send() -> None:
        connection.request("POST", f"/write?db={DATABASE}&precision=ns", body="\n".join(batch).encode())
        response = connection.getresponse()
        body = response.read()
        if response.status != 204:
            raise RuntimeError(f"write failed: {response.status} {body[:200]!r}")

    for line in lines:
        batch.append(line)
        if len(batch) >= BATCH_LINES:
            send()
            written += len(batch)
            batch = []
    if batch:
        send()
        written += len(batch)
    connection.close()
    return written


def plant_duckdb(store, hosts: int, hours: float, end_ns: int) -> int:
    """Write the same points through the embedded store (Points, in time order)."""
    from tsdb import Point

    written = 0
    batch = []
    for line in fleet_lines(hosts, hours, end_ns):
        head, fields, t = line.split(" ")
        host = head.split("host=")[1]
        values = {}
        for pair in fields.split(","):
            name, value = pair.split("=")
            values[name] = int(value[:-1]) if value.endswith("i") else float(value)
        batch.append(Point("libvirtd", {"host": host}, values, int(t)))
        if len(batch) >= BATCH_LINES:
            written += store.write(batch)
            batch = []
    if batch:
        written += store.write(batch)
    return written


def measure(name: str, store, end_ns: int, rounds: int, hosts: int, server_pid: int | None = None) -> None:
    """Time `rounds` evaluations; print seconds (wall and this process's CPU, and the server's CPU when it has a
    pid), queries, rows, and the hosts with each sign."""
    rule = LeakRule()
    memory = LeakMemory(rule)
    seconds, cpu, server_cpu, rows = [], [], [], []
    for round_ in range(rounds + 1):  # the first reads every window; the next ones a minute apart
        reads = RoundReads()
        began, began_cpu = time.perf_counter(), time.process_time()
        began_server = _cpu_seconds(server_pid) if server_pid else 0.0
        results = memory.evaluate(store, end_ns + round_ * 60 * S, reads)
        seconds.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
        rows.append(reads.rows)
        if server_pid:
            server_cpu.append(_cpu_seconds(server_pid) - began_server)
    first = (seconds.pop(0), cpu.pop(0), server_cpu.pop(0) if server_cpu else None, rows.pop(0))
    print(f"{name}: first round (every window): {first[0]:.2f} s, {first[3]:,} rows, CPU {first[1]:.2f} s here"
          + (f", {first[2]:.2f} s in the InfluxDB server" if server_pid else ""))
    firing = {alertname: sorted(r.host for r in results if r.active and r.labels["alertname"] == alertname)
              for alertname in (FD_ALERTNAME, RSS_ALERTNAME)}
    expected_fd = sorted(f"hv-{i:04d}" for i in range(hosts) if i % 200 == 7)
    expected_rss = sorted(f"hv-{i:04d}" for i in range(hosts) if i % 200 == 11)
    print(f"{name}: a round after it, of {reads.evaluated_hosts} hosts: median {statistics.median(seconds):.3f} s "
          f"(min {min(seconds):.3f}, max {max(seconds):.3f}, {rounds} rounds); {reads.queries} queries, "
          f"{statistics.median(rows):,.0f} rows read; windows {rule.fd_read[1]} s (fds) and {rule.rss_read[1]} s "
          f"(memory)")
    print(f"{name}: CPU per evaluation: {statistics.median(cpu):.3f} s in the engine's process"
          + (f", {statistics.median(server_cpu):.3f} s in the InfluxDB server" if server_cpu else ""))
    print(f"{name}: {FD_ALERTNAME} on {len(firing[FD_ALERTNAME])} hosts (planted {len(expected_fd)}: "
          f"{'equal' if firing[FD_ALERTNAME] == expected_fd else 'DIFFERENT'}), {RSS_ALERTNAME} on "
          f"{len(firing[RSS_ALERTNAME])} (planted {len(expected_rss)}: "
          f"{'equal' if firing[RSS_ALERTNAME] == expected_rss else 'DIFFERENT'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stores", default="influxdb,duckdb")
    args = parser.parse_args()
    end_ns = (time.time_ns() // S) * S
    points = int(args.hours * 3600 / INTERVAL_S + 1) * args.hosts
    with tempfile.TemporaryDirectory(prefix="bench-leaks-") as tmp_name:
        tmp = Path(tmp_name)
        if "influxdb" in args.stores:
            server = InfluxDBServer(tmp / "influxdb").start()
            try:
                server.create_database(DATABASE)
                began = time.perf_counter()
                written = plant_influxdb(server.port, fleet_lines(args.hosts, args.hours, end_ns))
                print(f"InfluxDB 1.6: planted {written:,} points ({args.hosts} hosts x {args.hours:g} h every "
                      f"{INTERVAL_S} s) in {time.perf_counter() - began:.0f} s")
                waited = wait_for_compactions(server.process.pid)
                print(f"InfluxDB 1.6: compactions settled after {waited:.0f} s")
                with open_store(f"influxdb://127.0.0.1:{server.port}/{DATABASE}") as store:
                    measure("InfluxDB 1.6", store, end_ns, args.rounds, args.hosts, server.process.pid)
            finally:
                server.stop()
        if "duckdb" in args.stores:
            with open_store(f"duckdb://{tmp}/bench.duckdb") as store:
                began = time.perf_counter()
                written = plant_duckdb(store, args.hosts, args.hours, end_ns)
                print(f"DuckDB: planted {written:,} points in {time.perf_counter() - began:.0f} s")
                measure("DuckDB", store, end_ns, args.rounds, args.hosts)
    assert points > 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

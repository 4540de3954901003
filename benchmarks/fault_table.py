"""The fault table of bench_collector.py: each fault of the README's fault matrix staged on a private libvirtd
with real QEMU guests (and a real InfluxDB for the store faults), held as production holds it, with the real
agent loop running (interval 2 s, probe deadline 5 s, keepalive 5 s x 5, as in issue 11's reports).

For each fault it prints: what the agent reported (event kinds in order), seconds from the fault to the first
event that tells it, the share of intervals with a `host` point during the fault, and how many of the agent's
own calls were in the daemon at once at most (each one holds a worker or a queue slot) and how many libvirt
connections it opened, beside the most clients the admin API counted (the fault's own clients included).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from faults import PoolHang
from libvirtd import PrivateLibvirtd
from servers import BlackholeServer, InfluxDBServer

from collector.agent import Agent
from collector.daemon_health import DaemonHealth
from collector.guest_processes import GuestProcesses
from collector.libvirt_source import LibvirtSource
from tsdb import open_store

INTERVAL_SECONDS = 2.0
DEADLINE_SECONDS = 5.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FaultResult:
    """One row of the fault table."""

    fault: str
    reported: str
    detect_seconds: float | None
    host_coverage: float
    agent_calls_max: int
    connections: int
    clients_max: int | None


class Watched:
    """The real agent loop on a thread, sampling its own calls outstanding in the daemon at every tick."""

    def __init__(self, daemon: PrivateLibvirtd, uri: str, store_url: str):
        self.store = open_store(store_url)
        source = LibvirtSource(uri, call_timeout_seconds=DEADLINE_SECONDS)
        self.health = DaemonHealth(daemon.pidfile, daemon.admin_uri, DEADLINE_SECONDS / 2, log_file=daemon.log_path)
        self.agent = Agent(self.store, source, "bench-hv", interval_seconds=INTERVAL_SECONDS, daemon_health=self.health,
                           guests=GuestProcesses(daemon.tmp / "run" / "qemu"))
        self.agent.on_collection = self._sample
        self.calls_max = 0
        self.sampling = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)

    def _sample(self, _points) -> None:
        if self.sampling:
            self.calls_max = max(self.calls_max, len(self.agent.source.outstanding_calls()))

    def intervals(self, count: int) -> None:
        target = self.agent.collections_total + count
        while self.agent.collections_total < target:
            time.sleep(0.05)

    def __enter__(self) -> "Watched":
        self.thread.start()
        self.intervals(3)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)
        self.agent.source.close()
        self.health.close()
        self.store.close()


def coverage(store, start_ns: int, end_ns: int) -> float:
    """Share of the intervals between the first and the last host point in [start, end] that have one."""
    times = store.query("host", ["load1"], start_ns, end_ns)["time"].astype("int64")
    if len(times) < 2:
        return 0.0
    return len(times) / (round((times.iloc[-1] - times.iloc[0]) / 1e9 / INTERVAL_SECONDS) + 1)


def story(store, since_ns: int, headline: str) -> tuple[str, float | None]:
    """The event kinds after `since_ns` (log signatures counted apart) and the delay in s of the first
    `headline` event (the one that tells the fault)."""
    events = store.events(since_ns)
    kinds = [k for k in events["kind"] if not k.startswith("log_")]
    logs = sum(k.startswith("log_") for k in events["kind"])
    text = " -> ".join(kinds) + (f" (+{logs} log lines)" if logs else "")
    first = events[events["kind"] == headline]["time"]
    delay = (first.iloc[0].value - since_ns) / 1e9 if len(first) else None
    return text or "(nothing)", delay


def daemon_fault(name: str, headline: str, daemon: PrivateLibvirtd, uri: str, workdir: Path, do, undo,
                 hold: float, after: int = 5) -> FaultResult:
    """Run the agent, do the fault, hold it, undo it, and read back the story."""
    with Watched(daemon, uri, f"duckdb://{workdir / (name.replace(' ', '-') + '.duckdb')}") as watched:
        start = time.time_ns()
        watched.sampling = True
        do()
        try:
            time.sleep(hold)
        finally:
            undo()
        end = time.time_ns()
        watched.intervals(after)
        watched.sampling = False
        reported, delay = story(watched.store, start, headline)
        clients = watched.store.query("libvirtd", ["clients"], start, end)["clients"].dropna()
        return FaultResult(name, reported, delay, coverage(watched.store, start, end), watched.calls_max,
                           watched.agent.source.connections_opened_total,
                           int(clients.max()) if len(clients) else None)


def store_fault(name: str, make_down, workdir: Path) -> FaultResult:
    """A real `virtwatch agent` process (test driver) whose store is down (refused or blackholed) for 20 s; then
    the store returns; every collected point must arrive."""
    influx = InfluxDBServer(workdir / f"influx-{name.replace(' ', '-')}").start()
    port = influx.port
    url = f"influxdb://127.0.0.1:{port}/bench"
    config = workdir / f"{name.replace(' ', '-')}.toml"
    config.write_text(f'[store]\nurl = "{url}"\ntimeout_seconds = 5\n[agent]\nlibvirt_uri = "test:///default"\n'
                      f'host_name = "bench-store"\ninterval_seconds = {INTERVAL_SECONDS}\n'
                      f'spool_dir = "{workdir / (name.replace(" ", "-") + "-spool")}"\n')
    agent = subprocess.Popen([sys.executable, "-m", "virtwatch", "agent", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        time.sleep(3 * INTERVAL_SECONDS)
        start = time.time_ns()
        influx.stop()
        hole = make_down(port)
        time.sleep(20)
        if hole is not None:
            hole.close()
        influx.start(port=port)
        end = time.time_ns()
        time.sleep(4 * INTERVAL_SECONDS)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
    with open_store(url) as store:
        collector = store.query("collector", ["store_reachable"], start, end)
        spooled = int((collector["store_reachable"] == 0).sum())
        delay = None
        if spooled:
            delay = (collector[collector["store_reachable"] == 0]["time"].iloc[0].value - start) / 1e9
        share = coverage(store, start, end)
    influx.stop()
    return FaultResult(name, f"store_reachable = 0 on {spooled} points; all arrived after", delay, share, 0, 0, None)


def agent_killed(workdir: Path) -> FaultResult:
    """`virtwatch agent` SIGKILLed while the store is down; restarted after it returns: what arrives."""
    influx = InfluxDBServer(workdir / "influx-agent-killed").start()
    port = influx.port
    url = f"influxdb://127.0.0.1:{port}/bench"
    spool = workdir / "killed-spool"
    config = workdir / "killed.toml"
    config.write_text(f'[store]\nurl = "{url}"\ntimeout_seconds = 2\n[agent]\nlibvirt_uri = "test:///default"\n'
                      f'host_name = "bench-killed"\ninterval_seconds = {INTERVAL_SECONDS}\nspool_dir = "{spool}"\n')
    command = [sys.executable, "-m", "virtwatch", "agent", "--config", str(config)]
    influx.stop()
    agent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    time.sleep(10)
    agent.kill()
    agent.wait()
    from collector.spool import decode_points

    collected = sorted(p.time_ns for f in sorted(spool.glob("*.jsonl")) for p in decode_points(f.read_bytes())
                       if p.measurement == "collector")
    influx.start(port=port)
    subprocess.run(command + ["--once"], capture_output=True, timeout=120, cwd=ROOT)
    with open_store(url) as store:
        arrived = store.query("collector", ["scrape_duration_ms"], 0, 2**62)["time"].astype("int64").tolist()
    influx.stop()
    kept = sum(t in set(arrived) for t in collected)
    return FaultResult("agent killed (store down)", f"{kept} of {len(collected)} spooled collections arrived",
                       None, 1.0, 0, 0, None)


def run_faults(workdir: Path) -> list[FaultResult]:
    """Stage every fault of the matrix; return the table's rows."""
    daemon = PrivateLibvirtd(workdir / "faults-libvirtd", capabilities_cache=workdir / "caps")
    results = []
    daemon.start()
    try:
        daemon.define_guest("calm")
        victim = daemon.define_guest('victim 2,"b"')
        print("fault: libvirtd stopped 25 s ...", flush=True)
        results.append(daemon_fault("daemon stopped (SIGSTOP 25 s)", "hang_start", daemon, daemon.uri_qemu, workdir,
                                    lambda: daemon.kill(signal.SIGSTOP), lambda: daemon.kill(signal.SIGCONT), 25))
        print("fault: worker pool exhausted 45 s ...", flush=True)
        hang = PoolHang(daemon, victim)
        results.append(daemon_fault("pool exhausted (stopped QEMU + 14 clients, 45 s)", "hang_start", daemon, daemon.uri_qemu,
                                    workdir, hang.__enter__, lambda: hang.__exit__(None, None, None), 45))
        print("fault: one guest stopped 20 s ...", flush=True)
        qemu = daemon.qemu_pid(victim)
        results.append(daemon_fault("wedged guest (its QEMU stopped 20 s)", "domain_wedged", daemon, daemon.uri_qemu, workdir,
                                    lambda: os.kill(qemu, signal.SIGSTOP), lambda: os.kill(qemu, signal.SIGCONT), 20))
        print("fault: libvirtd killed, down 10 s, started again ...", flush=True)
        results.append(daemon_fault("daemon killed (SIGKILL, down 10 s)", "daemon_down", daemon, daemon.uri_qemu, workdir,
                                    lambda: daemon.kill(signal.SIGKILL), daemon.restart, 10))
        print("fault: libvirtd restarted ...", flush=True)
        results.append(daemon_fault("daemon restarted (SIGTERM, started again)", "restart", daemon, daemon.uri_qemu,
                                    workdir, daemon.restart, lambda: None, 10))
    finally:
        daemon.stop()
    print("fault: store refused 20 s ...", flush=True)
    results.append(store_fault("store refused (InfluxDB stopped 20 s)", lambda port: None, workdir))
    print("fault: store blackholed 20 s ...", flush=True)
    results.append(store_fault("store blackholed (accepts, never answers, 20 s)",
                               lambda port: BlackholeServer(port), workdir))
    print("fault: agent killed during a store outage ...", flush=True)
    results.append(agent_killed(workdir))
    return results


def fault_rows(results: list[FaultResult]) -> list[tuple[str, ...]]:
    """The table's rows."""
    return [(r.fault, r.reported, "-" if r.detect_seconds is None else f"{r.detect_seconds:.1f}",
             f"{r.host_coverage * 100:.0f}%", str(r.agent_calls_max), str(r.connections),
             "-" if r.clients_max is None else str(r.clients_max)) for r in results]

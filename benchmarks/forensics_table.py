"""The forensics table of bench_collector.py: the time and size of each forensics capture, and the agent's cadence
while it runs, with every trigger staged for real on a private libvirtd (tests/libvirtd.py).

Two setups, each on a daemon of its own: (a) the agent on `count` test-driver domains through the daemon (the
node file bench_collector writes), (b) the agent on the QEMU driver with 2 real guests, one with a hostile name.
For each trigger the real agent loop runs on a thread (interval 2 s, probe deadline 5 s, kernel log read, as in
tests/collector/test_agent_faults.py) with forensics into the daemon's temp dir, and the fault is staged:

    manual      `ForensicsCapture.capture("manual", ...)` (what `virtwatch diagnose` does) on a healthy daemon,
                in this process while the agent runs; then `virtwatch diagnose --config FILE` as a subprocess
    hang        SIGSTOP on libvirtd (forensics after a 4 s hang); (b) also the pool hang (tests/faults.py
                PoolHang on the hostile-named guest, forensics after 10 s)
    segfault    gdb sets libvirtd's pc to 0 and detaches: the thread faults for real and the kernel logs
                `libvirtd[PID]: segfault at ...`; then the daemon is started again (its restart has a bundle
                too: forensics_min_gap_seconds is small here)
    restart     SIGKILL, then started again

The figures come from the `forensics` points the agent wrote (capture_ms, size_bytes, steps_cut; each step's ms
from the decoded bundle); the manual capture's from its own point. Each capture's wall-clock span is recorded
by wrapping the capture object's `capture`, and the cadence is read from the `collector` points around it:
the ticks from one interval before the capture began to one interval after it ended, their largest gap
(the interval when nothing is late) and their largest `scrape_duration_ms`, beside the median scrape of the
calm ticks before the fault and the largest scrape of the fault's other ticks (away from every capture): a
hung daemon makes each tick wait up to half an interval for its sources with or without a capture.
A trigger the run did not stage (another libvirtd's segfault on this host, for one) is shown as such.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from faults import PoolHang
from libvirtd import PrivateLibvirtd, pid_alive

from collector.agent import Agent
from collector.daemon_health import DaemonHealth
from collector.forensics import Capture, CaptureSources, ForensicsCapture
from collector.guest_processes import GuestProcesses
from collector.libvirt_source import LibvirtSource
from tsdb import open_store
from tsdb.forensics import decode_bundle, encode_bundle

INTERVAL_SECONDS = 2.0
DEADLINE_SECONDS = 5.0
HANG_AFTER_SECONDS = 4.0  # SIGSTOP: capture 4 s into the hang
POOL_HANG_AFTER_SECONDS = 10.0  # the pool hang: 10 s in (the first job-lock timeout is logged at 30 s)
MIN_GAP_SECONDS = 1.0  # small, so the restart after a segfault gets its own bundle
CAPTURE_WAIT_SECONDS = 90.0
DIAGNOSE_RUNS = 3
HOST = "bench-hv"
ROOT = Path(__file__).resolve().parent.parent
STEPS = ("process", "threads", "admin", "daemon_log", "kernel_log", "qemu")


@dataclass
class CaptureRow:
    """One capture: what triggered it, its figures and the agent's ticks around it."""

    trigger: str
    setup: str
    capture_ms: float
    size_bytes: int
    stored_bytes: int
    encoding: str
    bundle: dict
    max_gap_seconds: float | None
    max_scrape_ms: float | None
    calm_scrape_ms: float | None
    rest_scrape_ms: float | None  # the largest scrape after the fault began, away from every capture
    end_to_end_ms: float | None = None


class RecordedCaptures:
    """Wrap a ForensicsCapture's `capture` to record each call's trigger and wall-clock span (ns)."""

    def __init__(self, capture: ForensicsCapture):
        self.function = capture.capture
        self.spans: list[tuple[str, int, int]] = []
        capture.capture = self

    def __call__(self, trigger: str, time_ns: int, *args, **kwargs):
        began = time.time_ns()
        try:
            return self.function(trigger, time_ns, *args, **kwargs)
        finally:
            self.spans.append((trigger, began, time.time_ns()))

    def wait(self, trigger: str, count: int = 1, timeout: float = CAPTURE_WAIT_SECONDS) -> bool:
        """Wait until `count` captures of `trigger` have finished; False after `timeout` s."""
        deadline = time.monotonic() + timeout
        while sum(span[0] == trigger for span in self.spans) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


class AgentRun:
    """The real agent loop on a thread with forensics into the daemon's temp dir, writing into its own DuckDB."""

    def __init__(self, daemon: PrivateLibvirtd, uri: str, store_path: Path, after_hang_seconds: float):
        self.store = open_store(f"duckdb://{store_path}")
        source = LibvirtSource(uri, call_timeout_seconds=DEADLINE_SECONDS)
        self.health = DaemonHealth(daemon.pidfile, daemon.admin_uri, DEADLINE_SECONDS / 2,
                                   log_file=daemon.log_path, kmsg_path="/dev/kmsg")
        sources = CaptureSources(daemon.pidfile, admin_uri=daemon.admin_uri, log_file=daemon.log_path,
                                 kmsg_path="/dev/kmsg", qemu_pid_dir=daemon.tmp / "run" / "qemu")
        self.forensics = ForensicsCapture(HOST, sources, daemon.tmp / "forensics",
                                          own_pids=lambda: self.health.own_pids)
        self.captures = RecordedCaptures(self.forensics)
        self.agent = Agent(self.store, source, HOST, interval_seconds=INTERVAL_SECONDS, daemon_health=self.health,
                           guests=GuestProcesses(daemon.tmp / "run" / "qemu"), forensics=self.forensics,
                           forensics_after_hang_seconds=after_hang_seconds,
                           forensics_min_gap_seconds=MIN_GAP_SECONDS)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)
        self.fault_ns = 2**62  # when the fault was staged: the ticks before it are the calm ones

    def intervals(self, count: int) -> None:
        """Wait until the agent has collected `count` more intervals (counted, not timed)."""
        target = self.agent.collections_total + count
        while self.agent.collections_total < target:
            time.sleep(0.05)

    def staging(self) -> None:
        """Mark now as the moment the fault begins."""
        self.fault_ns = time.time_ns()

    def __enter__(self) -> "AgentRun":
        self.thread.start()
        self.intervals(3)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)
        self.agent.source.close()
        self.health.close()

    def rows(self, setup: str, labels: dict[str, str], manual: list[Capture] = (),
             diagnosed: list[tuple[tuple[str, int, int], dict, float]] = ()) -> list[CaptureRow]:
        """The captures of this run: the agent's `forensics` points, the `manual` captures made in this
        process, and the median of the `diagnosed` runs of `virtwatch diagnose`; the store is closed after."""
        try:
            ticks = self.store.query("collector", ["scrape_duration_ms"], 0, 2**62).sort_values("time")
            points = self.store.query("forensics", ["bundle", "encoding", "size_bytes", "capture_ms"], 0, 2**62,
                                      group_by=["trigger"]).sort_values("time")
        finally:
            self.store.close()
        times = ticks["time"].astype("int64").tolist()
        scrapes = ticks["scrape_duration_ms"].tolist()
        calm = [s for t, s in zip(times, scrapes) if t < self.fault_ns]
        calm_ms = statistics.median(calm) if calm else None
        spans_all = self.captures.spans + [span for span, _, _ in diagnosed]
        rest = [s for t, s in zip(times, scrapes)
                if t >= self.fault_ns and not any(near(t, span) for span in spans_all)]
        rest_ms = max(rest) if rest else None
        fields = [(r.trigger, {"bundle": r.bundle, "encoding": r.encoding, "size_bytes": r.size_bytes,
                               "capture_ms": r.capture_ms}) for r in points.itertuples()]
        fields += [(c.point.tags["trigger"], c.point.fields) for c in manual]
        spans = list(self.captures.spans)
        rows = []
        for trigger, values in fields:
            span = next((s for s in spans if s[0] == trigger), None)
            if span is not None:
                spans.remove(span)
            gap, scrape = cadence(times, scrapes, span) if span else (None, None)
            rows.append(CaptureRow(labels.get(trigger, f"{trigger} (NOT staged in this run)"), setup,
                                   float(values["capture_ms"]), int(values["size_bytes"]), len(values["bundle"]),
                                   values["encoding"], decode_bundle(values["bundle"], values["encoding"]), gap,
                                   scrape, calm_ms, rest_ms))
        if diagnosed:
            span, bundle, _ = diagnosed[-1]
            stored, encoding = encode_bundle(bundle)
            gap, scrape = cadence(times, scrapes, span)
            walls = [wall for _, _, wall in diagnosed]
            rows.append(CaptureRow(f"manual (`virtwatch diagnose` subprocess, median of {len(walls)})", setup,
                                   statistics.median(b["capture_ms"] for _, b, _ in diagnosed), json_size(bundle),
                                   len(stored), encoding, bundle, gap, scrape, calm_ms, rest_ms,
                                   statistics.median(walls)))
        return rows


def near(time_ns: int, span: tuple[str, int, int]) -> bool:
    """Whether a tick at `time_ns` is from one interval before the span to one interval after it."""
    margin = int(INTERVAL_SECONDS * 1e9)
    return span[1] - margin <= time_ns <= span[2] + margin


def cadence(times: list[int], scrapes: list[float], span: tuple[str, int, int]) -> tuple[float | None, float | None]:
    """The largest gap (s) between consecutive ticks near the span (`near`), and the largest scrape_duration_ms
    among those ticks."""
    around = [(t, s) for t, s in zip(times, scrapes) if near(t, span)]
    if not around:
        return None, None
    gaps = [(b[0] - a[0]) / 1e9 for a, b in zip(around, around[1:])]
    return (max(gaps) if gaps else None), max(s for _, s in around)


def json_size(bundle: dict) -> int:
    """The size of a bundle's JSON as the capture measures it (indent 1, UTF-8)."""
    return len(json.dumps(bundle, ensure_ascii=False, indent=1).encode("utf-8"))


# --- the triggers ----------------------------------------------------------------------------------------------

def manual(daemon: PrivateLibvirtd, uri: str, workdir: Path, setup: str, tag: str) -> list[CaptureRow]:
    """A manual capture in this process while the agent runs, then `virtwatch diagnose` as a subprocess."""
    run = AgentRun(daemon, uri, workdir / f"forensics-{tag}-manual.duckdb", HANG_AFTER_SECONDS)
    with run:
        run.staging()
        done = run.forensics.capture("manual", time.time_ns())
        run.intervals(2)
        config = diagnose_config(daemon, uri, workdir / f"forensics-{tag}.toml")
        diagnosed = [run_diagnose(config) for _ in range(DIAGNOSE_RUNS)]
        run.intervals(2)
    return run.rows(setup, {"manual": "manual (ForensicsCapture.capture, in the agent's process)"}, [done],
                    diagnosed)


def diagnose_config(daemon: PrivateLibvirtd, uri: str, path: Path) -> Path:
    """Write a config whose [agent] points at the private daemon."""
    path.write_text(f'[agent]\nlibvirt_uri = "{uri}"\nhost_name = "{HOST}"\n'
                    f'daemon_pidfile = "{daemon.pidfile}"\nadmin_uri = "{daemon.admin_uri}"\n'
                    f'daemon_log_file = "{daemon.log_path}"\nqemu_pid_dir = "{daemon.tmp / "run" / "qemu"}"\n'
                    f'forensics_dir = "{daemon.tmp / "diagnose"}"\n')
    return path


def run_diagnose(config: Path) -> tuple[tuple[str, int, int], dict, float]:
    """Run `virtwatch diagnose --config FILE`; return its span, the bundle it wrote and its wall time (ms)."""
    began, started = time.time_ns(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "virtwatch", "diagnose", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    wall_ms = (time.perf_counter() - started) * 1000
    ended = time.time_ns()
    written = re.search(r"bundle written to (\S+\.json)", done.stderr)
    assert done.returncode == 0 and written, f"virtwatch diagnose failed ({done.returncode}): {done.stderr[-2000:]}"
    return ("manual", began, ended), json.loads(Path(written.group(1)).read_text()), wall_ms


def daemon_stopped(daemon: PrivateLibvirtd, uri: str, workdir: Path, setup: str, tag: str) -> list[CaptureRow]:
    """SIGSTOP libvirtd until the hang's bundle is captured (4 s into the hang) and 2 intervals more."""
    run = AgentRun(daemon, uri, workdir / f"forensics-{tag}-stopped.duckdb", HANG_AFTER_SECONDS)
    with run:
        run.staging()
        daemon.kill(signal.SIGSTOP)
        try:
            captured = run.captures.wait("hang")
            run.intervals(2)
        finally:
            daemon.kill(signal.SIGCONT)
        run.intervals(4)
    assert captured, "no hang bundle while libvirtd was stopped"
    return run.rows(setup, {"hang": f"hang: libvirtd SIGSTOP (after {HANG_AFTER_SECONDS:g} s)"})


def pool_hang(daemon: PrivateLibvirtd, uri: str, victim: str, workdir: Path, setup: str, tag: str) -> list[CaptureRow]:
    """The production pool hang on `victim` until its bundle is captured (10 s into the hang) and 2 intervals."""
    run = AgentRun(daemon, uri, workdir / f"forensics-{tag}-pool.duckdb", POOL_HANG_AFTER_SECONDS)
    with run:
        run.staging()
        with PoolHang(daemon, victim):
            captured = run.captures.wait("hang")
            run.intervals(2)
        run.intervals(5)
    assert captured, "no hang bundle during the pool hang"
    return run.rows(setup, {"hang": f"hang: pool exhausted (PoolHang, after {POOL_HANG_AFTER_SECONDS:g} s)"})


def segfault(daemon: PrivateLibvirtd, uri: str, workdir: Path, setup: str, tag: str) -> list[CaptureRow]:
    """A real segfault (gdb: pc = 0, detach), then libvirtd started again."""
    run = AgentRun(daemon, uri, workdir / f"forensics-{tag}-segfault.duckdb", HANG_AFTER_SECONDS)
    with run:
        crashed = daemon.pid
        run.staging()
        # no `continue`: the kernel does not log a traced process's fault; detaching lets it fault for real
        subprocess.run(["gdb", "-p", str(crashed), "-batch", "-nx", "-ex", "set $pc = 0"],
                       capture_output=True, timeout=120, check=False)
        deadline = time.monotonic() + 30
        while pid_alive(crashed) and time.monotonic() < deadline:
            time.sleep(0.05)
        captured = run.captures.wait("segfault", timeout=30)
        run.intervals(2)
        daemon.restart()
        run.captures.wait("restart", timeout=30)
        run.intervals(3)
    if not captured:
        print(f"  no segfault bundle: is there a kernel line for libvirtd[{crashed}] in /dev/kmsg?", flush=True)
    return run.rows(setup, {"segfault": "segfault (gdb: pc = 0, detach)",
                            "restart": "restart (after that segfault)"})


def killed(daemon: PrivateLibvirtd, uri: str, workdir: Path, setup: str, tag: str) -> list[CaptureRow]:
    """SIGKILL libvirtd, then start it again: the restart's bundle."""
    run = AgentRun(daemon, uri, workdir / f"forensics-{tag}-restart.duckdb", HANG_AFTER_SECONDS)
    with run:
        run.staging()
        daemon.kill(signal.SIGKILL)
        run.intervals(1)
        daemon.restart()
        captured = run.captures.wait("restart", timeout=30)
        run.intervals(2)
    assert captured, "no restart bundle"
    return run.rows(setup, {"restart": "restart (SIGKILL, started again)"})


def every_trigger(daemon: PrivateLibvirtd, uri: str, workdir: Path, setup: str, tag: str,
                  victim: str | None = None) -> list[CaptureRow]:
    """Stage every trigger on one daemon, in an order that leaves it running."""
    rows = []
    print(f"forensics ({setup}): manual capture, `virtwatch diagnose` x{DIAGNOSE_RUNS} ...", flush=True)
    rows += manual(daemon, uri, workdir, setup, tag)
    print(f"forensics ({setup}): libvirtd stopped ...", flush=True)
    rows += daemon_stopped(daemon, uri, workdir, setup, tag)
    if victim is not None:
        print(f"forensics ({setup}): pool hang ...", flush=True)
        rows += pool_hang(daemon, uri, victim, workdir, setup, tag)
    print(f"forensics ({setup}): segfault, restart ...", flush=True)
    rows += segfault(daemon, uri, workdir, setup, tag)
    print(f"forensics ({setup}): SIGKILL, restart ...", flush=True)
    rows += killed(daemon, uri, workdir, setup, tag)
    return rows


def run_forensics(workdir: Path, node_xml: str, count: int) -> list[CaptureRow]:
    """Stage every trigger on (a) `count` test-driver domains (node_xml) and (b) 2 QEMU guests; return the rows."""
    rows = []
    tests = PrivateLibvirtd(workdir / "forensics-test")
    tests.start()
    try:
        node = workdir / f"forensics-node{count}.xml"
        node.write_text(node_xml)
        uri = f"test+unix://{node}?socket={tests.sock_dir}/libvirt-sock"
        rows += every_trigger(tests, uri, workdir, f"{count:,} test domains", "test")
    finally:
        tests.stop()
    guests = PrivateLibvirtd(workdir / "forensics-qemu", capabilities_cache=workdir / "caps")
    guests.start()
    try:
        print("forensics: starting 2 QEMU guests (the first takes ~8 s) ...", flush=True)
        guests.define_guest("calm")
        victim = guests.define_guest('victim 2,"b"')
        rows += every_trigger(guests, guests.uri_qemu, workdir, "2 QEMU guests", "qemu", victim)
    finally:
        guests.stop()
    return rows


# --- the table -------------------------------------------------------------------------------------------------

def _threads(bundle: dict) -> str:
    threads = len(bundle.get("threads") or [])
    seen = len(bundle.get("threads_seen_before") or {})
    return f"{threads} ({seen} seen before)" if not threads and seen else str(threads)


def _cut(bundle: dict) -> str:
    cut = [f"{s['name']} ({s['status']})" for s in bundle.get("steps", []) if s["status"] != "ok"]
    return ", ".join(cut) or "-"


def forensics_rows(rows: list[CaptureRow]) -> list[tuple[str, ...]]:
    """The main table's rows."""
    out = []
    for r in rows:
        steps = r.bundle.get("steps") or []
        slowest = max(steps, key=lambda s: s["ms"]) if steps else None
        capture = f"{r.capture_ms:.0f}" + (f" (end to end {r.end_to_end_ms:.0f})" if r.end_to_end_ms else "")
        out.append((r.trigger, r.setup, capture,
                    f"{slowest['name']} {slowest['ms']:.0f}" if slowest else "-",
                    f"{r.size_bytes / 1024:.1f}", f"{r.stored_bytes / 1024:.1f} ({r.encoding})", _cut(r.bundle),
                    "-" if r.max_gap_seconds is None else f"{r.max_gap_seconds:.2f} / {INTERVAL_SECONDS:g}",
                    " / ".join("-" if v is None else f"{v:.0f}"
                               for v in (r.max_scrape_ms, r.calm_scrape_ms, r.rest_scrape_ms)),
                    _threads(r.bundle)))
    return out


FORENSICS_HEADER = ("trigger", "setup", "capture ms", "slowest step ms", "bundle KB (JSON)", "stored KB",
                    "steps cut", "max tick gap s / interval",
                    "tick scrape ms: max around / calm median / max rest of fault",
                    "threads in bundle")


def step_rows(rows: list[CaptureRow]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Every step's ms per capture (a second table): header and rows."""
    header = ("trigger", "setup", *STEPS, "bundle sections (KB of JSON)", "kernel line (the agent's)")
    out = []
    for r in rows:
        ms = {s["name"]: s for s in r.bundle.get("steps") or []}
        cells = [("-" if name not in ms else f"{ms[name]['ms']:.1f}" + ("" if ms[name]["status"] == "ok" else "*"))
                 for name in STEPS]
        line = r.bundle.get("kernel_line") or "-"
        out.append((r.trigger, r.setup, *cells, _sections(r.bundle), line[:48]))
    return header, out


def _sections(bundle: dict, top: int = 3) -> str:
    """The biggest sections of a bundle's JSON, in KB."""
    sizes = {key: len(json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8"))
             for key, value in bundle.items()}
    biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{key} {size / 1024:.1f}" for key, size in biggest)


def environment() -> str:
    """What the captures ran on."""
    return (f"interval {INTERVAL_SECONDS:g} s, probe deadline {DEADLINE_SECONDS:g} s, step deadline 2 s, "
            f"min gap {MIN_GAP_SECONDS:g} s; {os.cpu_count()} CPUs; "
            f"guests {'kvm' if os.path.exists('/dev/kvm') else 'tcg'}")

"""The evidence at the moment of failure: a forensics bundle captured from /proc, the admin socket and files.

A capture runs a fixed list of steps, each on a thread of its own under its own deadline: a step that
does not finish in time (a read blocked on a stopped process's file, an admin call to a stopped daemon, gdb
that does not return) is abandoned, and the bundle names it in `steps` (status `cut`). An abandoned step's
thread is never joined; while it is still stuck, the same step is skipped in later captures, so a stuck
source never piles up threads. Nothing goes through the libvirt connection.

Steps: `process` (/proc/PID stat, status, limits), `threads` (every thread: name, state, wchan, syscall,
kernel stack: collector.daemon_threads), `admin` (worker pool and client list, a fresh admin helper),
`daemon_log` (its last lines), `kernel_log` (records around the event), `qemu` (each guest's QEMU process
state, from libvirt's pidfiles) and, only with `gdb = True`, `gdb` (`thread apply all bt`; attaching pauses
the daemon for about a second). What the agent saw before (its last worker pool and clients, the thread
names of a process that has since died, the kernel's segfault line) comes in as `known` and goes in as it is.

`ForensicsWorker` runs captures on its own thread, one at a time, so the agent's tick never waits for one;
`CapturePolicy` decides when to capture: a hang that has lasted `after_hang_seconds`, a segfault, a restart;
once per incident and at most once per `min_gap_seconds`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from collector.admin_api import AdminClient, group_clients
from collector.daemon_log import parse_lines
from collector.daemon_process import ProcessEvidence, find_daemon_pid, read_process
from collector.daemon_threads import ThreadInfo, read_threads
from collector.diagnosis import Diagnosis, Evidence, diagnose
from collector.guest_processes import STUCK_STATES, GuestProcesses, StuckGuest
from collector.job_locks import JobLocks
from collector.kmsg import KmsgReader, wall_time_ns
from tsdb import Point
from tsdb.forensics import encode_bundle

log = logging.getLogger("virtwatch.agent")

BUNDLE_VERSION = 1
DAEMON_LOG_LINES = 200
DAEMON_LOG_TAIL_BYTES = 256 * 1024
KERNEL_LOG_LINES = 100
KERNEL_LOG_BEFORE_SECONDS = 600.0  # kernel records this long before the event count as "around" it
GDB_DEADLINE_SECONDS = 20.0
#: the admin calls' own deadline, as a share of the step's: a daemon that does not answer is a clear failure
ADMIN_SHARE_OF_STEP = 0.8


@dataclass(frozen=True)
class CaptureSources:
    """Where a capture reads; each part optional (None: the step says it has nothing to read)."""

    pidfile: Path | None = None
    proc_root: Path = Path("/proc")
    admin_uri: str | None = None
    log_file: Path | None = None
    kmsg_path: str | None = None
    qemu_pid_dir: Path | None = None
    gdb: bool = False


@dataclass(frozen=True)
class Capture:
    """A finished capture: the bundle, where its file went (None when it could not be written), the point."""

    bundle: dict
    file: Path | None
    point: Point

    @property
    def steps_cut(self) -> list[str]:
        """The steps that did not finish: cut at their deadline, failed or skipped."""
        return [step["name"] for step in self.bundle["steps"] if step["status"] != "ok"]


class _StepRunner:
    """Runs each step on its own thread under a deadline; remembers the threads it had to abandon."""

    def __init__(self) -> None:
        self._stuck: dict[str, threading.Thread] = {}

    def run(self, name: str, step: Callable[[], Any], deadline_seconds: float) -> tuple[Any, dict]:
        """Return (the step's result or None, its record: name, status, ms, error)."""
        started = time.perf_counter()
        previous = self._stuck.get(name)
        if previous is not None and previous.is_alive():
            return None, {"name": name, "status": "skipped", "ms": 0.0,
                          "error": "the same step of an earlier capture is still stuck"}
        self._stuck.pop(name, None)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = step()
            except Exception as error:  # noqa: BLE001 - a failed step is reported in the bundle
                box["error"] = f"{type(error).__name__}: {error}"

        thread = threading.Thread(target=work, name=f"virtwatch-forensics-{name}", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline_seconds))
        ms = round((time.perf_counter() - started) * 1000.0, 3)
        if thread.is_alive():
            self._stuck[name] = thread
            return None, {"name": name, "status": "cut", "ms": ms,
                          "error": f"no result within its deadline of {deadline_seconds:g} s: abandoned"}
        if "error" in box:
            return None, {"name": name, "status": "failed", "ms": ms, "error": box["error"]}
        return box.get("result"), {"name": name, "status": "ok", "ms": ms}


def tail_lines(path: Path, lines: int = DAEMON_LOG_LINES, max_bytes: int = DAEMON_LOG_TAIL_BYTES) -> list[str]:
    """Return the last `lines` lines of a text file, reading at most `max_bytes` from its end."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - max_bytes))
        data = handle.read(max_bytes)
    text = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and text:
        text = text[1:]  # the first line was cut by the seek
    return text[-lines:]


def kernel_records(path: str, event_time_ns: int, lines: int = KERNEL_LOG_LINES) -> list[str]:
    """Return the kernel log's records around `event_time_ns` (from KERNEL_LOG_BEFORE_SECONDS before it up
    to now) as 'ISO time message' lines, the last `lines` of them."""
    with KmsgReader(path, from_start=True) as reader:
        records = []
        while True:
            batch = reader.read_new()
            if not batch:
                break
            records += batch
    now_mono, now_wall = time.monotonic_ns(), time.time_ns()
    since = event_time_ns - int(KERNEL_LOG_BEFORE_SECONDS * 1e9)
    out = []
    for record in records:
        when = wall_time_ns(record.monotonic_usec, now_mono, now_wall)
        if when >= since:
            stamp = datetime.fromtimestamp(when / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out.append(f"{stamp} {record.message}")
    return out[-lines:]


def qemu_processes(pid_dir: Path, proc_root: Path = Path("/proc")) -> list[dict]:
    """Return each guest whose QEMU process lives (libvirt's pidfiles): domain, pid, state letter."""
    states = GuestProcesses(pid_dir, proc_root).states()
    return [{"domain": name, "pid": pid, "state": state} for name, (pid, state) in sorted(states.items())]


def gdb_backtraces(pid: int, deadline_seconds: float) -> str:
    """Return `thread apply all bt` of `pid` from gdb (pauses the process while attached)."""
    gdb = shutil.which("gdb")
    if gdb is None:
        raise FileNotFoundError("gdb is not installed")
    done = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "set pagination off",
                           "-ex", "thread apply all bt"], capture_output=True, text=True, errors="replace",
                          timeout=deadline_seconds, check=False)
    return done.stdout[-40000:]


_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]")


class ForensicsCapture:
    """Captures bundles for one host from `sources`, writing each as a file into `out_dir`."""

    def __init__(self, host: str, sources: CaptureSources, out_dir: Path | None,
                 step_deadline_seconds: float = 2.0, keep_files: int = 200,
                 own_pids: Callable[[], frozenset[int]] = lambda: frozenset({os.getpid()})):
        self.host = host
        self.sources = sources
        self.out_dir = out_dir
        self.step_deadline_seconds = step_deadline_seconds
        self.keep_files = keep_files
        self.own_pids = own_pids
        self._steps = _StepRunner()

    def capture(self, trigger: str, time_ns: int, diagnosis: Diagnosis | None = None,
                known: dict | None = None) -> Capture:
        """Run every step and return the bundle, its file and its `forensics` point."""
        started = time.perf_counter()
        known = dict(known or {})
        sources, deadline = self.sources, self.step_deadline_seconds
        pid = find_daemon_pid(sources.pidfile, sources.proc_root) if sources.pidfile is not None else None
        steps: list[dict] = []
        bundle: dict[str, Any] = {
            "version": BUNDLE_VERSION, "host": self.host, "trigger": trigger, "time_ns": time_ns,
            "time": datetime.fromtimestamp(time_ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "cause": diagnosis.cause if diagnosis is not None else "",
            "diagnosis": dict(diagnosis.fields) if diagnosis is not None else {}, "steps": steps,
        }

        def step(name: str, work: Callable[[], Any], seconds: float = deadline) -> Any:
            result, record = self._steps.run(name, work, seconds)
            steps.append(record)
            return result

        if pid is None:
            steps.append({"name": "process", "status": "failed", "ms": 0.0, "error": "no running libvirtd found"})
        else:
            bundle["process"] = step("process", lambda: read_process(pid, sources.proc_root)) or {}
            threads = step("threads", lambda: read_threads(pid, sources.proc_root, with_stack=True))
            bundle["threads"] = [_thread_dict(thread) for thread in threads or []]
        if not bundle.get("threads") and known.get("threads_seen"):
            bundle["threads_seen_before"] = known["threads_seen"]  # the names the agent read while it lived
        if sources.admin_uri:
            admin = step("admin", self._read_admin)
            if admin is not None:
                bundle["pool"], bundle["clients"] = admin
        if "pool" not in bundle and known.get("pool"):
            bundle["pool"] = {**known["pool"], "note": "the agent's last reading (the admin API did not answer now)"}
        if "clients" not in bundle and known.get("clients"):
            bundle["clients"] = known["clients"]
        bundle["job_holders"] = known.get("job_holders", [])
        if sources.log_file is not None:
            bundle["daemon_log"] = step("daemon_log", lambda: tail_lines(sources.log_file)) or []
        if sources.kmsg_path:
            bundle["kernel_log"] = step("kernel_log", lambda: kernel_records(sources.kmsg_path, time_ns)) or []
        if known.get("kernel_line"):
            bundle["kernel_line"] = known["kernel_line"]
        if sources.qemu_pid_dir is not None:
            bundle["qemu"] = step("qemu", lambda: qemu_processes(sources.qemu_pid_dir, sources.proc_root)) or []
        if sources.gdb and pid is not None:
            bundle["gdb"] = step("gdb", lambda: gdb_backtraces(pid, GDB_DEADLINE_SECONDS),
                                 GDB_DEADLINE_SECONDS + 1.0) or ""
        if diagnosis is None:  # `virtwatch diagnose`: the diagnosis from what this capture read
            diagnosis = diagnose(self.host, trigger, evidence_from_bundle(bundle, self.sources, self.own_pids()))
            bundle.update(cause=diagnosis.cause, diagnosis=dict(diagnosis.fields))
        capture_ms = (time.perf_counter() - started) * 1000.0
        bundle["capture_ms"] = round(capture_ms, 3)
        text = json.dumps(bundle, ensure_ascii=False, indent=1)
        path = self._write_file(bundle, text)
        stored, encoding = encode_bundle(bundle)
        cut = [record["name"] for record in steps if record["status"] != "ok"]
        point = Point("forensics", {"host": self.host, "trigger": trigger},
                      {"bundle": stored, "encoding": encoding, "size_bytes": len(text.encode("utf-8")),
                       "capture_ms": capture_ms, "steps_cut": ",".join(cut), "cause": bundle["cause"],
                       "file": str(path) if path is not None else ""}, time_ns)
        return Capture(bundle, path, point)

    def _read_admin(self) -> tuple[dict, list[dict]]:
        """A fresh admin helper: the pool figures and every client, described."""
        client = AdminClient(self.sources.admin_uri, timeout_seconds=self.step_deadline_seconds * ADMIN_SHARE_OF_STEP)
        try:
            pool = client.read()
            clients = client.read_clients()
            own = self.own_pids() | {client.helper_pid}
        finally:
            client.close()
        groups = group_clients(clients, self.sources.proc_root, own)
        return pool, [{**c, "process": _process_name(c.get("pid"), groups)} for c in clients]

    def _write_file(self, bundle: dict, text: str) -> Path | None:
        """Write the bundle as `<out_dir>/<time>-<trigger>-<host>.json` (atomically); keep the newest files."""
        if self.out_dir is None:
            return None
        stamp = bundle["time"].replace(":", "").replace("-", "")
        name = f"{stamp}-{bundle['trigger']}-{_UNSAFE_IN_FILE_NAMES.sub('_', self.host)[:64]}.json"
        try:
            self.out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.out_dir / name
            temporary = path.with_suffix(".json.tmp")
            # 0600 whatever the umask: a bundle holds the daemon's log and its clients
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, path)
            for old in sorted(self.out_dir.glob("*.json"))[:-self.keep_files]:
                old.unlink(missing_ok=True)
            return path
        except OSError as error:
            log.error("forensics bundle not written to %s: %s", self.out_dir, error)
            return None


def evidence_from_bundle(bundle: dict, sources: CaptureSources, own_pids: frozenset[int]) -> Evidence:
    """Return a diagnosis's evidence from what a capture read (for a capture made without an agent)."""
    process = bundle.get("process") or {}
    threads = [ThreadInfo(t["tid"], t["name"], t["state"], t["wchan"], t["syscall"],
                          tuple(t["stack"]) if t["stack"] is not None else None) for t in bundle.get("threads", [])]
    locks = JobLocks()
    for record in parse_lines(bundle.get("daemon_log", []))[0]:
        locks.observe(record)
    clients = bundle.get("clients")
    stuck = {g["domain"]: StuckGuest(g["pid"], g["state"]) for g in bundle.get("qemu", [])
             if g["state"] in STUCK_STATES}
    # no "process" key: no daemon was found; {}: its read was cut or failed, which says nothing about it
    running = None if bundle.get("process") == {} else bool(process)
    return Evidence(process=ProcessEvidence(running, process.get("pid"), process.get("state")),
                    threads=threads or None, pool=bundle.get("pool"), pool_age_seconds=0.0,
                    clients=group_clients(clients, sources.proc_root, own_pids) if clients is not None else None,
                    job_holders=locks.holders(), stuck_guests=stuck)


def _thread_dict(thread) -> dict:
    return {"tid": thread.tid, "name": thread.name, "state": thread.state, "wchan": thread.wchan,
            "syscall": thread.syscall, "stack": list(thread.stack) if thread.stack is not None else None}


def _process_name(pid: int | None, groups) -> str | None:
    for group in groups:
        if group.pid == pid:
            return "the virtwatch agent itself" if group.own else group.process
    return None


@dataclass
class CapturePolicy:
    """When to capture: a hang that lasted `after_hang_seconds`, a segfault, a restart; once per incident,
    at most once per `min_gap_seconds` (so a segfault's restart, moments later, adds no second bundle; a hang
    that outlasts the gap is captured when the gap has passed)."""

    after_hang_seconds: float = 10.0
    min_gap_seconds: float = 300.0
    _done: dict = field(default_factory=dict)  # incidents captured (the newest REMEMBERED_INCIDENTS)
    _held_back: dict = field(default_factory=dict)  # incidents the gap held back (said once each)
    _last: float | None = None

    def decide(self, trigger: str, incident: object, now: float, hang_seconds: float = 0.0) -> str | None:
        """Return None to capture now (and remember it), else why not (logged once per incident)."""
        if trigger == "hang" and hang_seconds < self.after_hang_seconds:
            return f"the hang has lasted {hang_seconds:.0f} s of {self.after_hang_seconds:g}"
        key = (trigger, incident)
        if key in self._done:
            return "captured for this incident already"
        if self._last is not None and now - self._last < self.min_gap_seconds:
            why = (f"the last bundle was captured {now - self._last:.0f} s ago (at most one per "
                   f"{self.min_gap_seconds:g} s: forensics_min_gap_seconds)")
            if _remember(self._held_back, key):
                log.info("forensics for %s not captured now: %s", trigger, why)
            return why
        _remember(self._done, key)
        self._last = now
        return None


REMEMBERED_INCIDENTS = 100


def _remember(seen: dict, key: object) -> bool:
    """Add `key` to `seen` (keeping the newest REMEMBERED_INCIDENTS); return whether it is new."""
    if key in seen:
        return False
    seen[key] = True
    while len(seen) > REMEMBERED_INCIDENTS:
        del seen[next(iter(seen))]
    return True


class ForensicsWorker:
    """Runs captures on a thread of its own, one at a time; the caller takes the finished points."""

    def __init__(self, capture: ForensicsCapture):
        self.capture = capture
        self.captures_total = 0
        self._lock = threading.Lock()
        self._pending: tuple | None = None
        self._busy = False
        self._outbox: list[Point] = []
        self._wake = threading.Event()
        self._stopped = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._loop, name="virtwatch-forensics", daemon=True)
        self._thread.start()

    def request(self, trigger: str, time_ns: int, diagnosis: Diagnosis | None, known: dict) -> bool:
        """Start a capture; False when one is running (this one is not queued)."""
        with self._lock:
            if self._busy:
                log.warning("forensics for %s not captured: the capture of an earlier incident still runs", trigger)
                return False
            self._busy = True
            self._idle.clear()
            self._pending = (trigger, time_ns, diagnosis, known)
        self._wake.set()
        return True

    def take_points(self) -> list[Point]:
        """Return and forget the forensics points finished since the last call."""
        with self._lock:
            points, self._outbox = self._outbox, []
        return points

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the running capture to finish (tests, `virtwatch diagnose`)."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        """Stop after the capture in progress (not waiting for it)."""
        self._stopped = True
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            with self._lock:
                pending, self._pending = self._pending, None
            if pending is None:
                continue
            trigger = pending[0]
            try:
                done = self.capture.capture(*pending)
                cut = done.steps_cut
                log.warning("forensics for %s captured in %.0f ms, %d KB%s: %s", trigger,
                            done.point.fields["capture_ms"], done.point.fields["size_bytes"] // 1024,
                            f", steps not finished: {', '.join(cut)}" if cut else "",
                            done.file or "no file (see above)")
                with self._lock:
                    self._outbox.append(done.point)
                    self.captures_total += 1
            except Exception:  # noqa: BLE001 - a failed capture must not end the agent
                log.exception("forensics capture for %s failed", trigger)
            finally:
                with self._lock:
                    self._busy = False
                self._idle.set()


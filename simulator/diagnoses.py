"""The agent's diagnoses of the simulated daemon failures: cause sentences, `diagnosis` points, forensics bundles.

What the real agent writes at a failure of its daemon (collector.agent, collector.libvirt_monitor,
collector.forensics), from the evidence the simulated incident leaves:

- hang_start: the event's message is the cause sentence and a `diagnosis` point (trigger hang_start) goes with
  it; then a `diagnosis` point (trigger hang) at every point of the hang, its hang_seconds equal to the
  `libvirtd` point's; the job-lock holder shows from 30 s into the hang, when the calls waiting for the stuck
  guest's job give up and libvirtd logs who holds it (VIR_JOB_WAIT_TIME); and a `forensics` point (trigger
  hang) 10 s into the hang (forensics_after_hang_seconds).
- segfault: the message is the cause (the kernel's line, the pool and clients before the crash, no process
  left), with a `diagnosis` point and a `forensics` point holding the kernel's segfault line and the names of
  the crashed process's threads.
- restart: the message is the cause (the pid change and the crash before it, or none), with a `diagnosis`
  point, and a `forensics` point unless a segfault just caused it (the same incident).

A host gets at most one bundle every 300 s (forensics_min_gap_seconds), as the agent's CapturePolicy decides:
so a segfault's restart, seconds later, adds none, and a hang the gap holds back is captured once it passes.
The sentences and the diagnosis fields come from the agent's own pure function, collector.diagnosis.diagnose,
so they say what the agent would say; the pool and clients are the `libvirtd` points' figures (a stopped
daemon's are its last before the hang, of that age). Every draw comes from a stream per host, so the
failures and the other points do not change with what is drawn here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from collector.admin_api import AGENT_ITSELF, ClientGroup
from collector.daemon_process import ProcessEvidence
from collector.daemon_threads import ThreadInfo
from collector.diagnosis import Diagnosis, Evidence, diagnose
from collector.forensics import BUNDLE_VERSION, DAEMON_LOG_LINES
from collector.guest_processes import StuckGuest
from collector.job_locks import JobHolder
from collector.kmsg import parse_segfault
from simulator.fleet import MAX_CLIENTS, MAX_FDS, MAX_WORKERS, MIB, MIN_WORKERS, PRIO_WORKERS, PROBE_TIMEOUT_MS
from simulator.render import AGENT_INTERVAL_SECONDS, piled_calls
from simulator.timeline import (GUEST_HANG_CAUSES, JOB_WAIT_NS, SECOND_NS, STATE_DOWN, Crash, Hang,
                                lock_timeouts, steps_within)
from tsdb.forensics import encode_bundle
from tsdb.point import Point

if TYPE_CHECKING:
    from simulator.fleet import Fleet
    from simulator.signals import Signals
    from simulator.timeline import HostHistory

#: the agent's defaults (collector.config): forensics_after_hang_seconds, forensics_min_gap_seconds,
#: forensics_step_deadline_seconds; forensics_dir as deploy/virtwatch.example.toml sets it
FORENSICS_AFTER_HANG_NS = 10 * SECOND_NS
FORENSICS_MIN_GAP_NS = 300 * SECOND_NS
STEP_DEADLINE_SECONDS = 2.0
FORENSICS_DIR = "/var/lib/virtwatch/forensics"
#: a restart this soon after a segfault of the old process is said to follow it (collector.agent)
RESTART_AFTER_CRASH_NS = 300 * SECOND_NS
DEADLINE_SECONDS = PROBE_TIMEOUT_MS / 1000
#: Debian 12's libvirt 9.0; its text mapping's file offset and size, from a real fault line
#: (tests/collector/fixtures/kmsg/real-segfaults.txt)
LIBVIRT_SO, TEXT_OFFSET, TEXT_SIZE = "libvirt.so.0.9000.0", 0x8F000, 0x2A0000
LIBVIRT_PACKAGE = "libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 (Debian)"
#: the local process holding most connections, by /proc comm (cut to 15 bytes: libvirt_exporter)
CLIENT_PROCESSES = ("nova-compute", "memstat-poller", "collectd", "libvirt_exporte")
READ_ONLY_CLIENTS = frozenset({"memstat-poller", "collectd", "libvirt_exporte"})
AGENT_COMM = "virtwatch"
#: a guest cause's stuck QEMU state, the API holding the guest's job and the API that waits for it
GUEST_CAUSES = {"guest_stopped": ("T", "remoteDispatchDomainMemoryStats", "remoteDispatchDomainMemoryStats"),
                "guest_disk": ("D", "remoteDispatchDomainGetBlockInfo", "remoteDispatchDomainBlockStats")}
#: where a libvirtd thread waits, as /proc shows it on Debian 12's 6.1 kernel: wchan, syscall, kernel stack
SYSCALL_FRAMES = ("do_syscall_64+0x55/0xb0", "entry_SYSCALL_64_after_hwframe+0x6e/0xd8")
WAITS = {
    "poll": ("do_sys_poll", "poll", ("do_sys_poll+0x3c6/0x5a0", "__x64_sys_poll+0xb5/0x150") + SYSCALL_FRAMES),
    "futex": ("futex_wait_queue", "futex", ("futex_wait_queue+0x60/0x90", "futex_wait+0x185/0x270",
                                            "do_futex+0x106/0x1b0", "__x64_sys_futex+0x8e/0x1d0") + SYSCALL_FRAMES),
    "nfs": ("rpc_wait_bit_killable", "openat", (
        "rpc_wait_bit_killable+0xd/0x60 [sunrpc]", "__rpc_wait_for_completion_task+0x2e/0x40 [sunrpc]",
        "nfs4_run_open_task+0x14f/0x1e0 [nfsv4]", "nfs4_do_open+0x2d9/0xbf0 [nfsv4]", "path_openat+0x4f6/0x1040",
        "do_filp_open+0xaf/0x160", "__x64_sys_openat+0x6a/0xa0") + SYSCALL_FRAMES),
}
STOPPED_STACK = ("do_signal_stop+0x109/0x240", "get_signal+0x8f1/0x940", "arch_do_signal_or_restart+0x3c/0x280",
                 "exit_to_user_mode_prepare+0x19e/0x1f0", "syscall_exit_to_user_mode+0x1b/0x40") + SYSCALL_FRAMES
POLLING_THREADS = ("libvirtd", "gmain", "gdbus")  # event loops; the per-guest "vm-" loops too
FIRST_WORKER = 4  # the index of the first rpc-libvirtd thread in daemon_threads()
_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]")  # collector.forensics names its files so


@dataclass
class Diagnoses:
    """A simulation's diagnosis and forensics points in time order, and the cause sentence of each event."""

    times: np.ndarray                          # (P,) int64
    hosts: np.ndarray                          # (P,) host index of each point
    rows: list[tuple[str, dict, dict]]         # measurement, tags, fields of each point
    causes: dict[tuple[str, str, int], str]    # (host, kind, time_ns) of a hang_start, segfault or restart event

    def points(self, lo: int, hi: int) -> list[Point]:
        """Return points lo..hi-1 as new Points."""
        return [Point(m, dict(tags), dict(fields), t)
                for (m, tags, fields), t in zip(self.rows[lo:hi], self.times[lo:hi].tolist())]

    def messages(self, hosts, kinds, times, messages) -> list[str]:
        """Return the events' messages: the cause sentence where there is one, else the message as it is."""
        return [self.causes.get((h, k, t), m) for h, k, t, m in zip(hosts, kinds, times, messages)]


def diagnose_incidents(fleet: Fleet, signals: Signals, histories: list[HostHistory], start_ns: int, end_ns: int,
                       step_ns: int, seed: list[int]) -> Diagnoses:
    """Return the diagnoses and forensics of every host's hangs, segfaults and restarts (draws: seed + [host])."""
    found: list[tuple[int, int, str, dict, dict]] = []
    causes: dict[tuple[str, str, int], str] = {}
    for h, history in enumerate(histories):
        host = _HostDiagnoser(h, fleet, signals, history, start_ns, end_ns, step_ns,
                              np.random.default_rng([*seed, h]))
        found += host.run()
        causes.update(host.causes)
    found.sort(key=lambda row: (row[0], row[1]))
    return Diagnoses(times=np.array([row[0] for row in found], dtype=np.int64),
                     hosts=np.array([row[1] for row in found], dtype=np.int64),
                     rows=[row[2:] for row in found], causes=causes)


def iso_time(time_ns: int) -> str:
    """Return a time as the bundle has it: '2026-01-31T08:15:00.123456Z' (collector.forensics)."""
    return datetime.fromtimestamp(time_ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log_line(time_ns: int, thread: int, level: str, message: str, where: str | None = None) -> str:
    """Return one line of libvirtd's file log (collector.daemon_log): time, thread, level, call site, message."""
    moment = datetime.fromtimestamp(time_ns // SECOND_NS, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    site = f"{where} : " if where else ""
    return f"{moment}.{time_ns // 10**6 % 1000:03d}+0000: {thread}: {level} : {site}{message}"


def daemon_threads(pid: int, workers: int, guests: list[str]) -> list[ThreadInfo]:
    """Return a libvirtd 9.0 process's threads, all sleeping where they idle: its main loop, GLib's threads, the
    node device thread, the worker pools of its libvirtd and admin servers, the QEMU driver's event worker and
    an event loop per running guest ("vm-" and its name, cut to the kernel's 15 bytes)."""
    names = (["libvirtd", "gmain", "gdbus", "udev-event"] + ["rpc-libvirtd"] * workers
             + ["prio-rpc-libvir"] * PRIO_WORKERS + ["rpc-admin", "qemu-event"]
             + [("vm-" + name).encode()[:15].decode("utf-8", "replace") for name in guests])
    threads = []
    for i, name in enumerate(names):
        wchan, syscall, stack = WAITS["poll" if name in POLLING_THREADS or name.startswith("vm-") else "futex"]
        threads.append(ThreadInfo(pid + i, name, "S", wchan, syscall, stack))
    return threads


class _HostDiagnoser:
    """Walks one host's daemon failures in time order and writes what the agent would."""

    def __init__(self, h: int, fleet: Fleet, signals: Signals, history: HostHistory, start_ns: int, end_ns: int,
                 step_ns: int, rng: np.random.Generator):
        self.h, self.fleet, self.history, self.rng = h, fleet, history, rng
        self.name = fleet.names[h]
        self.start_ns, self.end_ns, self.step_ns = start_ns, end_ns, step_ns
        values = signals.values
        self.calls = values["host.libvirt_calls_per_second"][h]
        self.queue = values["libvirtd.job_queue_depth"][h]
        self.workers_current = values["libvirtd.workers_current"][h]
        self.workers_free = values["libvirtd.workers_free"][h]
        self.clients = values["libvirtd.clients"][h]
        self.steps = len(self.calls)
        self.cpu_rate = 0.002 + 0.0015 * float(self.calls.mean())  # the daemon's CPU seconds per second
        self.client_process = CLIENT_PROCESSES[h % len(CLIENT_PROCESSES)]
        self.client_pid, self.agent_pid = (int(pid) for pid in rng.integers(900, 60000, size=2))
        self.qemu_pids = [int(pid) for pid in rng.integers(10000, 400000, size=fleet.domains)]
        self.out: list[tuple[int, int, str, dict, dict]] = []
        self.causes: dict[tuple[str, str, int], str] = {}
        self.last_capture: int | None = None
        self.crash_headlines: dict[int, str] = {}  # crash time -> the agent's line for it

    def run(self) -> list[tuple[int, int, str, dict, dict]]:
        """Return this host's diagnosis and forensics rows: (time_ns, host, measurement, tags, fields)."""
        history = self.history
        incidents = [(hang.start_ns, 0, hang) for hang in history.hangs]
        incidents += [(crash.time_ns, 1, crash) for crash in history.crashes]
        incidents += [(history.process_start_ns[i], 2, i) for i in range(1, len(history.pids))]
        for _time, _order, incident in sorted(incidents, key=lambda item: (item[0], item[1])):
            if isinstance(incident, Hang):
                self._hang(incident)
            elif isinstance(incident, Crash):
                self._segfault(incident)
            else:
                self._restart(incident)
        return self.out

    # ---- what the agent reads ----

    def _step(self, time_ns: int) -> int:
        """Return the step whose point is the last at or before `time_ns`."""
        return min(max((time_ns - self.start_ns) // self.step_ns, 0), self.steps - 1)

    def _tick_age(self, time_ns: int) -> float:
        """Return how old the agent's last admin reading is at `time_ns` (it reads every interval)."""
        return round((time_ns - self.start_ns) / 1e9 % AGENT_INTERVAL_SECONDS, 3)

    def _pool(self, s: int, stuck_seconds: float | None = None) -> dict:
        """Return the admin API's figures at step s: the signals', or a hung daemon's (every worker busy, the
        queue piled up for `stuck_seconds`) exactly as the `libvirtd` point of the step has them."""
        if stuck_seconds is None:
            current, free, queue = int(self.workers_current[s]), int(self.workers_free[s]), int(self.queue[s])
        else:
            current, free = MAX_WORKERS, 0
            queue = int(self.queue[s] + piled_calls(self.calls[s], stuck_seconds))
        return {"workers_min": MIN_WORKERS, "workers_max": MAX_WORKERS, "workers_current": current,
                "workers_free": free, "workers_priority": PRIO_WORKERS, "job_queue_depth": queue,
                "clients": int(self.clients[s]), "clients_max": MAX_CLIENTS}

    def _client_groups(self, connections: int) -> list[ClientGroup]:
        """Return the connections by process: the agent's own one, the rest from the host's busiest client."""
        readonly = self.client_process in READ_ONLY_CLIENTS
        groups = [ClientGroup(self.client_process, self.client_pid, 0, connections - 1,
                              connections - 1 if readonly else 0, own=False),
                  ClientGroup(AGENT_COMM, self.agent_pid, 0, 1, 0, own=True)]
        return sorted(groups, key=lambda g: (-g.connections, g.process, g.pid or 0))

    def _client_list(self, groups: list[ClientGroup], time_ns: int) -> list[dict]:
        """Return the admin API's client list of the groups, one entry per connection (collector.forensics)."""
        clients, now = [], time_ns // SECOND_NS
        for group in groups:
            process = AGENT_ITSELF if group.own else group.process
            for k in range(group.connections):
                clients.append({"id": len(clients) + 1, "transport": "unix",
                                "connected_at": now - int(self.rng.integers(5, 3600)), "pid": group.pid, "uid": 0,
                                "user": "root", "readonly": k < group.readonly, "process": process})
        return clients

    def _guests_running(self, time_ns: int) -> list[int]:
        """Return the guests whose QEMU runs at `time_ns` (as the `domain` points of a step have them)."""
        return [d for d, outages in enumerate(self.history.domain_outages)
                if not any(a < time_ns < b for a, b, _reason in outages)]

    def _process_at(self, time_ns: int) -> tuple[int, int]:
        """Return the pid and start time of the daemon process alive at `time_ns`."""
        starts = self.history.process_start_ns
        index = int(np.searchsorted(starts, time_ns, side="right")) - 1
        return self.history.pids[index], starts[index]

    def _process_figures(self, pid: int, started: int, time_ns: int, threads: int, state: str, clients: int,
                         guests: int) -> dict:
        """Return /proc's figures of the daemon (collector.daemon_process.read_process): about what its
        `libvirtd` point shows at the step, without the noise."""
        age = (time_ns - started) / 1e9
        rss = self.fleet.rss_base_bytes[self.h] + self.fleet.rss_growth_bytes_per_second[self.h] * age
        return {"pid": pid, "threads": threads, "rss_bytes": int(rss + 2 * MIB * guests), "max_fds": MAX_FDS,
                "open_fds": min(24 + 2 * clients + 2 * guests, MAX_FDS), "start_time_seconds": started / 1e9,
                "cpu_user_seconds_total": round(0.6 * self.cpu_rate * age, 2),
                "cpu_system_seconds_total": round(0.4 * self.cpu_rate * age, 2), "state": state}

    def _qemu(self, guests: list[int], stuck: int = -1, state: str = "S") -> list[dict]:
        """Return the QEMU processes of the running guests: name, pid, state (collector.forensics)."""
        names = self.fleet.domain_names[self.h]
        return sorted(({"domain": names[d], "pid": self.qemu_pids[d], "state": state if d == stuck else "S"}
                       for d in guests), key=lambda guest: guest["domain"])

    def _eof_lines(self, pid: int, since: int, until: int, count: int) -> list[tuple[int, str]]:
        """Return `count` log records of clients that went away (one of libvirtd's commonest), in [since, until)."""
        times = np.sort(self.rng.integers(since, max(until, since + 1), size=count))
        return [(int(t), log_line(int(t), pid, "error", "End of file while reading data: Input/output error",
                                  "virNetSocketReadWire:1793")) for t in times]

    # ---- what the agent writes ----

    def _write(self, time_ns: int, measurement: str, trigger: str, fields: dict) -> None:
        """Write one point of this host."""
        self.out.append((time_ns, self.h, measurement, {"host": self.name, "trigger": trigger}, fields))

    def _diagnosis(self, time_ns: int, diagnosis: Diagnosis, event: str | None = None) -> None:
        """Write a diagnosis point; its cause is the message of the event of kind `event` at the same time."""
        self._write(time_ns, "diagnosis", diagnosis.trigger, {"cause": diagnosis.cause, **diagnosis.fields})
        if event is not None:
            self.causes[(self.name, event, time_ns)] = diagnosis.cause

    def _capture_time(self, earliest: int, latest: int) -> int | None:
        """Return when the agent captures a bundle for an incident it may capture from `earliest` until before
        `latest`: at once, or once the gap since the last bundle has passed (CapturePolicy); None: never."""
        at = earliest if self.last_capture is None else max(earliest, self.last_capture + FORENSICS_MIN_GAP_NS)
        if at >= min(latest, self.end_ns):
            return None
        self.last_capture = at
        return at

    def _capture(self, trigger: str, time_ns: int, diagnosis: Diagnosis, *, process: dict | None,
                 threads: list[ThreadInfo], pool: dict, clients: list[dict], admin: str | None = None,
                 daemon_log: list[tuple[int, str]], kernel_log: list[str] = (), qemu: list[dict],
                 known: dict | None = None, job_holders: list[JobHolder] = ()) -> None:
        """Write a forensics point: the bundle collector.forensics.ForensicsCapture.capture would build.

        `admin` is why the admin step did not finish ("cut" past its deadline, or an error: then the pool
        and clients are the agent's last ones, `known`)."""
        rng, known = self.rng, known or {}
        steps: list[dict] = []
        bundle: dict = {"version": BUNDLE_VERSION, "host": self.name, "trigger": trigger, "time_ns": time_ns,
                        "time": iso_time(time_ns), "cause": diagnosis.cause, "diagnosis": dict(diagnosis.fields),
                        "steps": steps}
        if process is None:
            steps.append({"name": "process", "status": "failed", "ms": 0.0, "error": "no running libvirtd found"})
            bundle["threads_seen_before"] = known["threads_seen"]
        else:
            steps.append({"name": "process", "status": "ok", "ms": round(float(rng.uniform(0.3, 1.5)), 3)})
            steps.append({"name": "threads", "status": "ok", "ms": round(float(rng.uniform(1.0, 3.0)), 3)})
            bundle["process"] = process
            bundle["threads"] = [{"tid": t.tid, "name": t.name, "state": t.state, "wchan": t.wchan,
                                  "syscall": t.syscall, "stack": list(t.stack)} for t in threads]
        if admin is None:
            steps.append({"name": "admin", "status": "ok", "ms": round(float(rng.uniform(4.0, 30.0)), 3)})
            bundle["pool"], bundle["clients"] = pool, clients
        else:
            cut = admin == "cut"
            steps.append({"name": "admin", "status": admin if cut else "failed",
                          "ms": round(STEP_DEADLINE_SECONDS * 1000 + float(rng.uniform(0.1, 2.0)), 3) if cut
                          else round(float(rng.uniform(0.5, 3.0)), 3),
                          "error": f"no result within its deadline of {STEP_DEADLINE_SECONDS:g} s: abandoned" if cut
                          else admin})
            bundle["pool"] = {**known["pool"], "note": "the agent's last reading (the admin API did not answer now)"}
            bundle["clients"] = known["clients"]
        bundle["job_holders"] = [{**vars(holder), "description": holder.describe()} for holder in job_holders]
        steps.append({"name": "daemon_log", "status": "ok", "ms": round(float(rng.uniform(0.5, 3.0)), 3)})
        lines = [line for _t, line in sorted(daemon_log, key=lambda item: item[0])]
        bundle["daemon_log"] = lines[-DAEMON_LOG_LINES:]
        steps.append({"name": "kernel_log", "status": "ok", "ms": round(float(rng.uniform(0.5, 4.0)), 3)})
        bundle["kernel_log"] = list(kernel_log)
        if known.get("kernel_line"):
            bundle["kernel_line"] = known["kernel_line"]
        steps.append({"name": "qemu", "status": "ok", "ms": round(float(rng.uniform(0.2, 1.5)), 3)})
        bundle["qemu"] = qemu
        capture_ms = round(sum(step["ms"] for step in steps) + float(rng.uniform(0.3, 2.0)), 3)
        bundle["capture_ms"] = capture_ms
        size = len(json.dumps(bundle, ensure_ascii=False, indent=1).encode("utf-8"))  # the file's text
        stored, encoding = encode_bundle(bundle)
        stamp = bundle["time"].replace(":", "").replace("-", "")
        path = f"{FORENSICS_DIR}/{stamp}-{trigger}-{_UNSAFE_IN_FILE_NAMES.sub('_', self.name)[:64]}.json"
        self._write(time_ns, "forensics", trigger, {
            "bundle": stored, "encoding": encoding, "size_bytes": size, "capture_ms": capture_ms,
            "steps_cut": ",".join(step["name"] for step in steps if step["status"] != "ok"),
            "cause": diagnosis.cause, "file": path})

    # ---- hangs ----

    def _hang(self, hang: Hang) -> None:
        """hang_start's diagnosis, one at each point of the hang, and the bundle 10 s into it."""
        pid, started = self._process_at(hang.start_ns)
        guests = self._guests_running(hang.start_ns)
        threads = daemon_threads(pid, MAX_WORKERS, [self.fleet.domain_names[self.h][d] for d in guests])
        stopped = hang.cause == "daemon_stopped"
        if stopped:  # SIGSTOP: every thread stops where it was
            threads = [replace(t, state="T", wchan="do_signal_stop", stack=STOPPED_STACK) for t in threads]
        elif hang.cause == "daemon_disk":  # a storage call blocks on an NFS server that does not answer
            wchan, syscall, stack = WAITS["nfs"]
            stuck = {FIRST_WORKER + int(k) for k in self.rng.choice(MAX_WORKERS, size=int(self.rng.integers(1, 4)),
                                                                    replace=False)}
            threads = [replace(t, state="D", wchan=wchan, syscall=syscall, stack=stack) if i in stuck else t
                       for i, t in enumerate(threads)]
        seen = [replace(t, syscall=None, stack=None) for t in threads]  # the agent's tick reads neither
        process = ProcessEvidence(True, pid, "T" if stopped else "S")
        stuck_guests, holder = {}, None
        if hang.cause in GUEST_HANG_CAUSES:
            state, holder_api, waiting_api = GUEST_CAUSES[hang.cause]
            guest = self.fleet.domain_names[self.h][hang.guest]
            stuck_guests = {guest: StuckGuest(self.qemu_pids[hang.guest], state)}
            holder = JobHolder(domain=guest, waiting_api=waiting_api, waiting_job="query, none, none",
                               holder_api=holder_api,
                               holder_thread=threads[FIRST_WORKER + int(self.rng.integers(MAX_WORKERS))].tid,
                               agent_api=None, held_by_agent=False, job="query, none, none", age_seconds=None)
        before = self._step(hang.began_ns)  # a stopped daemon's admin API answers nothing: its last reading
        reading_ns = hang.began_ns - int(self._tick_age(hang.began_ns) * 1e9)

        def evidence(time_ns: int, headline: str) -> Evidence:
            age = (time_ns - hang.began_ns) / 1e9
            if stopped:
                pool, pool_age = self._pool(before), (time_ns - reading_ns) / 1e9
            else:
                stuck_s = max(time_ns - hang.start_ns, 0) / 1e9
                pool, pool_age = self._pool(self._step(time_ns), stuck_s), self._tick_age(time_ns)
            holders = []
            logged = (time_ns - hang.began_ns) // JOB_WAIT_NS  # the calls giving up log it every 30 s
            if holder is not None and logged >= 1:
                held = float(logged * JOB_WAIT_NS // SECOND_NS)
                holders = [replace(holder, age_seconds=held, time_ns=hang.began_ns + logged * JOB_WAIT_NS)]
            return Evidence(process=process, threads=seen, pool=pool, pool_age_seconds=pool_age,
                            clients=self._client_groups(pool["clients"]), job_holders=holders,
                            stuck_guests=stuck_guests, headline=headline)

        start = hang.start_ns
        self._diagnosis(start, diagnose(self.name, "hang_start", evidence(
            start, f"the stats probe has had no answer for {DEADLINE_SECONDS:.1f} s (deadline "
                   f"{DEADLINE_SECONDS:g} s)"), DEADLINE_SECONDS), event="hang_start")
        first, stop = steps_within(hang.start_ns, hang.end_ns, self.start_ns, self.step_ns)
        for s in range(max(first, 0), min(stop, self.steps)):
            at = self.start_ns + s * self.step_ns
            age = (at - hang.began_ns) / 1e9
            self._diagnosis(at, diagnose(self.name, "hang", evidence(
                at, f"the probe has had no answer for {age:.0f} s"), age))
        at = self._capture_time(hang.began_ns + FORENSICS_AFTER_HANG_NS, hang.end_ns)
        if at is not None:
            after = (at - hang.began_ns) / 1e9
            seen_now = evidence(at, f"the probe has had no answer for {after:.0f} s")
            clients = self._client_list(seen_now.clients, at)
            daemon_log = self._eof_lines(pid, max(at - 600 * SECOND_NS, started), hang.began_ns,
                                         int(self.rng.integers(1, 4)))
            if hang.cause in GUEST_HANG_CAUSES:  # the client's calls time out and it reconnects
                daemon_log += self._eof_lines(pid, hang.began_ns, at, int(self.rng.integers(2, 5)))
            if seen_now.job_holders:
                daemon_log += self._lock_lines(seen_now.job_holders[0], threads, hang, at)
            known = {"pool": seen_now.pool, "clients": [vars(g) for g in seen_now.clients]} if stopped else None
            self._capture("hang", at, diagnose(self.name, "hang", seen_now, after), job_holders=seen_now.job_holders,
                          process=self._process_figures(pid, started, at, len(threads), process.state,
                                                        seen_now.pool["clients"], len(guests)),
                          threads=threads, pool=seen_now.pool, clients=clients,
                          admin="cut" if stopped else None, known=known, daemon_log=daemon_log,
                          qemu=self._qemu(guests, hang.guest, GUEST_CAUSES.get(hang.cause, ("S",))[0]))

    @staticmethod
    def _lock_lines(holder: JobHolder, threads: list[ThreadInfo], hang: Hang, until: int) -> list[tuple[int, str]]:
        """Return the log records of the calls that gave up waiting for the stuck guest's job before `until`:
        every 30 s each waiting worker logs a warning naming the holder, then the lock timeout
        (collector.job_locks; the workers wait from the hang's beginning, the holder took the job then)."""
        waiters = [t.tid for t in threads if t.name == "rpc-libvirtd" and t.tid != holder.holder_thread]
        lines = []
        for when in sorted(set(lock_timeouts(hang, until))):
            held = (when - hang.began_ns) // SECOND_NS
            for k, tid in enumerate(waiters):
                at = when + k * 100_000  # the waiters give up within a few ms of each other
                lines.append((at, log_line(at, tid, "warning", (
                    f"Cannot start job ({holder.waiting_job}) in API {holder.waiting_api} for domain {holder.domain}; "
                    f"current job is ({holder.job}) owned by ({holder.holder_thread} {holder.holder_api}, 0 <null>, "
                    f"0 <null> (flags=0x0)) for ({held}s, 0s, 0s)"), "virDomainObjBeginJobInternal:433")))
                lines.append((at, log_line(at, tid, "error", "Timed out during operation: cannot acquire state change "
                                           f"lock (held by monitor={holder.holder_api})",
                                           "virDomainObjBeginJobInternal:468")))
        return lines[-DAEMON_LOG_LINES:]

    # ---- crashes ----

    def _kernel_lines(self, crash: Crash) -> tuple[str, str]:
        """Return the kernel's segfault line and its Code line (collector.kmsg): mostly a NULL pointer's
        member read in libvirt.so (error 4), sometimes a call through a NULL function pointer (ip 0, error 14)."""
        rng = self.rng
        sp = 0x7F0000000000 + int(rng.integers(0, 2**35)) * 8
        cpu = int(rng.integers(0, self.fleet.cpus[self.h]))
        on_cpu = f" likely on CPU {cpu} (core {cpu}, socket 0)"
        if rng.random() < 0.3:
            return (f"{crash.thread}[{crash.tid}]: segfault at 0 ip {0:016x} sp {sp:016x} error 14{on_cpu}",
                    "Code: Unable to access opcode bytes at 0xffffffffffffffd6.")
        start = crash.ip & ~0xFFF
        in_text = crash.offset % TEXT_SIZE
        address = int(rng.choice([0x0, 0x8, 0x10, 0x18, 0x28, 0x40]))
        code = [f"{b:02x}" for b in rng.integers(0, 256, size=64)]
        code[42] = f"<{code[42]}>"
        return (f"{crash.thread}[{crash.tid}]: segfault at {address:x} ip {start + in_text:016x} sp {sp:016x} "
                f"error 4 in {LIBVIRT_SO}[{TEXT_OFFSET + in_text:x},{start:x}+{TEXT_SIZE:x}]{on_cpu}",
                "Code: " + " ".join(code))

    def _segfault(self, crash: Crash) -> None:
        """The agent reads the kernel's line as it is written: the process is gone, systemd has not yet
        started another; the pool and clients are its last reading."""
        kernel_line, code_line = self._kernel_lines(crash)
        _pid, started = self._process_at(crash.time_ns)
        headline = f"{parse_segfault(kernel_line).describe()} of libvirtd (pid {crash.pid})"
        self.crash_headlines[crash.time_ns] = headline
        s = self._step(crash.time_ns)
        pool, groups = self._pool(s), self._client_groups(int(self.clients[s]))
        evidence = Evidence(process=ProcessEvidence(False), pool=pool, pool_age_seconds=self._tick_age(crash.time_ns),
                            clients=groups, headline=headline)
        diagnosis = diagnose(self.name, "segfault", evidence)
        self._diagnosis(crash.time_ns, diagnosis, event="segfault")
        if self._capture_time(crash.time_ns, crash.time_ns + 1) is None:
            return
        guests = self._guests_running(crash.time_ns)
        threads = daemon_threads(crash.pid, int(self.workers_current[s]),
                                 [self.fleet.domain_names[self.h][d] for d in guests])
        names = {t.tid: t.name for t in threads}
        names[crash.tid] = crash.thread  # the faulting thread, as the agent saw it before the crash
        stamp = iso_time(crash.time_ns)
        self._capture("segfault", crash.time_ns, diagnosis, process=None, threads=[], pool=pool, clients=[],
                      admin=f"AdminUnavailable: cannot open libvirtd:///system: Failed to connect socket to "
                            f"'/var/run/libvirt/libvirt-admin-sock': Connection refused",
                      known={"pool": pool, "clients": [vars(g) for g in groups], "kernel_line": kernel_line,
                             "threads_seen": dict(sorted(names.items()))},
                      daemon_log=self._eof_lines(crash.pid, max(crash.time_ns - 600 * SECOND_NS, started),
                                                 crash.time_ns, int(self.rng.integers(1, 4))),
                      kernel_log=[f"{stamp} {kernel_line}", f"{stamp} {code_line}"], qemu=self._qemu(guests))

    # ---- restarts ----

    def _restart(self, index: int) -> None:
        """A new daemon process: what ended the old one, its pool and clients before it; the bundle reads
        the new process (unless a segfault was the incident)."""
        history = self.history
        at, old, new = history.process_start_ns[index], history.pids[index - 1], history.pids[index]
        cause = history.restart_causes[index - 1]
        restarted = f"pid {old} → {new}"
        crash = max((c for c in history.crashes if c.pid == old and 0 <= at - c.time_ns <= RESTART_AFTER_CRASH_NS),
                    key=lambda c: c.time_ns, default=None)
        if crash is not None:
            headline = (f"{restarted}; the old process crashed {(at - crash.time_ns) / 1e9:.0f} s before: "
                        f"{self.crash_headlines[crash.time_ns]}")
        else:
            headline = (f"{restarted}; no segfault of the old process in the kernel log: it exited or was killed "
                        f"(kill, systemctl restart, OOM killer)")
        ended = crash.time_ns if crash is not None else at  # the old process's last reading came before this
        for a, b, state in history.outages:
            if state == STATE_DOWN and b == at:
                ended = a
        s = self._step(ended)
        pool, groups = self._pool(s), self._client_groups(int(self.clients[s]))
        guests = self._guests_running(at)
        threads = daemon_threads(new, MIN_WORKERS, [self.fleet.domain_names[self.h][d] for d in guests])
        evidence = Evidence(process=ProcessEvidence(True, new, "S"),
                            threads=[replace(t, syscall=None, stack=None) for t in threads],
                            pool=pool, pool_age_seconds=round((at - ended) / 1e9 + self._tick_age(ended), 3),
                            clients=groups, headline=headline)
        diagnosis = diagnose(self.name, "restart", evidence)
        self._diagnosis(at, diagnosis, event="restart")
        if self._capture_time(at, at + 1) is None:  # a segfault's restart: the gap since its bundle
            return
        fresh = {**self._pool(s), "workers_current": MIN_WORKERS, "workers_free": MIN_WORKERS, "job_queue_depth": 0,
                 "clients": 2}  # the new daemon: the agent and its busiest client have connected again
        old_start = history.process_start_ns[index - 1]
        daemon_log = self._eof_lines(old, max(ended - 600 * SECOND_NS, old_start), ended, int(self.rng.integers(1, 4)))
        if cause == "leak":  # the old process ran out of file descriptors
            daemon_log += [(t, log_line(t, old, "error", "Unable to accept client: Too many open files",
                                        "virNetSocketAccept:2127")) for t, _line in
                           self._eof_lines(old, max(ended - 300 * SECOND_NS, old_start), ended, 3)]
        daemon_log += [(at, log_line(at, new, "info", LIBVIRT_PACKAGE)),
                       (at, log_line(at, new, "info", f"hostname: {self.name}"))]
        self._capture("restart", at, diagnosis,
                      process=self._process_figures(new, at, at, len(threads), "S", 2, len(guests)),
                      threads=threads, pool=fresh, clients=self._client_list(self._client_groups(2), at),
                      daemon_log=daemon_log, qemu=self._qemu(guests))

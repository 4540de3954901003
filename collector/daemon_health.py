"""The libvirtd process and what it leaves behind: /proc figures, restarts, the admin API's worker pool,
classified errors from its log file and segfaults of its threads in the kernel log; each optional.

Process figures need a daemon (an in-process URI such as test:///default has none); the admin API needs a
readable admin socket, the kernel log root: when a source cannot be read, the agent says so once and
carries on without it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from collector.admin_api import AdminClient, AdminError, AdminTimeout, ClientGroup, group_clients
from collector.daemon_log import LogTailer
from collector.job_locks import JobHolder, JobLocks
from collector.daemon_process import NON_SCHEMA_KEYS, ProcessGone, RestartTracker, find_daemon_pid, read_process
from collector.event_points import bounded_message, one_line
from collector.kmsg import (KmsgReader, KmsgUnavailable, Segfault, daemon_threads, is_daemon_thread, parse_segfault,
                           thread_group, wall_time_ns)
from collector.signatures import match

log = logging.getLogger("virtwatch.agent")

IN_PROCESS_URIS = ("test:///", "qemu:///embed", "ch:///embed")
#: the admin API's client list is read every this many admin reads, and at every read while the pool is full
CLIENTS_EVERY_READS = 6


def runs_through_daemon(libvirt_uri: str) -> bool:
    """Return True when the URI is served by a daemon process (not an in-process driver)."""
    return not libvirt_uri.startswith(IN_PROCESS_URIS)


@dataclass(frozen=True)
class DaemonEvent:
    """Something the daemon's log or the kernel log showed: an event kind, severity, message, domain, time.

    The message is bounded when the event is made (collector.event_points.bounded_message: 4 KiB, one line),
    since the agent logs it as it is before it becomes a point."""

    kind: str
    severity: str
    message: str
    time_ns: int
    domain: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", bounded_message(self.message))


@dataclass
class DaemonReading:
    """One interval's daemon figures: schema fields, the process state letter, a restart reason, events."""

    fields: dict = field(default_factory=dict)
    state: str | None = None
    restarted: str | None = None
    events: list[DaemonEvent] = field(default_factory=list)
    clients: list[ClientGroup] | None = None  # connections by local process (admin API), when read
    job_holders: list[JobHolder] | None = None  # who holds guests' job locks (daemon log), when it is read
    kernel_lines: dict[int, str] = field(default_factory=dict)  # event index -> the kernel's own line


class DaemonHealth:
    """Reads libvirtd's process (found through its pidfile, never taking the lock) and its admin API."""

    def __init__(self, pidfile: Path | None, admin_uri: str | None, admin_timeout_seconds: float = 5.0,
                 proc_root: Path = Path("/proc"), log_file: Path | None = None, kmsg_path: str | None = None):
        self.pidfile = pidfile
        self.log_errors_total = 0
        self.segfaults_total = 0
        self.job_locks = JobLocks()
        self._log = LogTailer(log_file) if log_file else None
        self._log_missing_said = False
        self._kmsg = None
        if kmsg_path:
            try:
                self._kmsg = KmsgReader(kmsg_path)
            except KmsgUnavailable as error:
                log.warning("kernel log unreadable, libvirtd segfaults will be seen only as restarts: %s", error)
            if self._kmsg is not None and pidfile is None:
                log.warning("kernel log read without a daemon pidfile: no fault in it can be told to be libvirtd's")
        self._pid: int | None = None
        self._threads: dict[int, str] = {}  # the last task list read, kept after the process is gone
        # whose kernel-logged faults count: the daemon running at the last read (pid, its thread ids), and the
        # daemons gone since the kernel log was last read (their crash lines come in after they are gone)
        self._daemon: tuple[int, frozenset[int]] | None = None
        self._gone: list[tuple[int, frozenset[int]]] = []
        self.proc_root = proc_root
        self.restarts = RestartTracker()
        self._admin = AdminClient(admin_uri, admin_timeout_seconds) if admin_uri else None
        self._admin_uri = admin_uri
        self._admin_problem: str | None = None
        self._admin_reads = 0
        self._pid_missing_logged = False

    def read(self) -> DaemonReading:
        """Return this interval's figures (missing parts are simply absent)."""
        reading = self.read_local()
        reading.fields.update(self.read_admin().fields)
        return reading

    @property
    def has_admin(self) -> bool:
        """Whether an admin URI is configured."""
        return self._admin is not None

    def read_admin(self) -> DaemonReading:
        """Return the worker pool and client figures of the admin API (may wait up to its deadline)."""
        reading = DaemonReading()
        if self._admin is not None:
            self._read_admin(reading)
        return reading

    def read_local(self) -> DaemonReading:
        """Return what needs no answer from the daemon: its process, its log file, the kernel log."""
        reading = DaemonReading()
        if self.pidfile is not None:
            self._read_process(reading)
        if self._log is not None:
            self._read_log(reading)
            reading.fields["log_errors_total"] = self.log_errors_total
            reading.job_holders = self.job_locks.holders()
        if self._kmsg is not None:
            self._read_kmsg(reading)
            reading.fields["segfaults_total"] = self.segfaults_total
        self._gone = []
        return reading

    def _read_log(self, reading: DaemonReading) -> None:
        """Classify the daemon log's new warnings and errors; failures become events, the rest is counted."""
        records, malformed = self._log.read_new()
        if self._log.missing and not self._log_missing_said:
            log.warning("daemon log %s does not exist (yet): no log signatures until it does", self._log.path)
        self._log_missing_said = self._log.missing
        if malformed:
            log.debug("daemon log: %d malformed lines skipped", malformed)
        for record in records:
            self.job_locks.observe(record)
            if not record.is_problem:
                continue
            self.log_errors_total += record.level == "error"
            found = match(record.message)
            if found is None or found.signature.severity == "info":
                continue
            signature = found.signature
            reading.events.append(DaemonEvent(signature.event_kind, signature.severity,
                                              f"libvirtd log ({signature.description}): {record.message}",
                                              record.time_ns, found.domain))

    def _read_kmsg(self, reading: DaemonReading) -> None:
        """Report kernel-logged crashes of the daemon's threads, told by thread id (never by the thread's name,
        which any program can choose: see collector.kmsg.is_daemon_thread)."""
        daemons = ([self._daemon] if self._daemon is not None else []) + self._gone
        for record in self._kmsg.read_new():
            segfault = parse_segfault(record.message) if record.from_kernel else None
            if segfault is None:
                continue
            owner = next((pid for pid, tids in daemons if is_daemon_thread(
                segfault.tid, daemon_pid=pid, known_tids=tids, proc_root=self.proc_root)), None)
            if owner is None:
                self._say_not_ours(segfault, daemons)
                continue
            self.segfaults_total += 1
            when = wall_time_ns(record.monotonic_usec, time.monotonic_ns(), time.time_ns())
            reading.kernel_lines[len(reading.events)] = record.message
            reading.events.append(DaemonEvent("segfault", "critical", f"{segfault.describe()} of libvirtd (pid "
                                              f"{owner})", when))

    def _say_not_ours(self, segfault: Segfault, daemons: list[tuple[int, frozenset[int]]]) -> None:
        """Log at debug level why a kernel-logged fault is not counted as the daemon's."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        group = thread_group(segfault.tid, self.proc_root)
        pids = ", ".join(str(pid) for pid, _ in daemons) or "none found"
        why = (f"thread {segfault.tid} belongs to process {group}" if group is not None else
               f"thread {segfault.tid} is gone, and was not among the daemon's threads read last "
               "(or the daemon still runs, so the id was reused): whose it was cannot be told")
        log.debug("kernel log: %s not counted as libvirtd's (pid %s): %s", one_line(segfault.describe()), pids, why)

    def _read_process(self, reading: DaemonReading) -> None:
        pid = find_daemon_pid(self.pidfile, self.proc_root)
        if pid is None:
            self._retire_daemon()
            if not self._pid_missing_logged:
                log.warning("no running libvirtd found (pidfile %s, nor a process named libvirtd): process "
                            "figures are off until one appears", self.pidfile)
                self._pid_missing_logged = True
            return
        self._pid_missing_logged = False
        try:
            figures = read_process(pid, self.proc_root)
        except ProcessGone:
            self._retire_daemon()
            return
        reading.restarted = self.restarts.observe(pid, float(figures["start_time_seconds"]))
        if reading.restarted or (self._daemon is not None and self._daemon[0] != pid):
            self._retire_daemon()
        self._pid = pid
        threads = daemon_threads(pid, self.proc_root)  # read every interval, while alive: a crash takes it along
        if threads:  # empty: the process ended since read_process; keep what was read while it lived
            self._threads = threads
            self._daemon = (pid, frozenset(threads))
        reading.state = str(figures.get("state"))
        reading.fields.update({k: v for k, v in figures.items() if k not in NON_SCHEMA_KEYS})
        reading.fields["restarts_total"] = self.restarts.restarts_total

    def _retire_daemon(self) -> None:
        """The daemon last read is gone (or replaced): its faults may still come in the kernel log."""
        if self._daemon is not None:
            self._gone.append(self._daemon)
            self._daemon = None

    @property
    def threads_seen(self) -> dict[int, str]:
        """The daemon's threads {tid: name} at the last read (kept after a crash: the task list goes with it)."""
        return dict(self._threads)

    @property
    def own_pids(self) -> frozenset[int]:
        """This agent's processes that hold connections to the daemon: itself and its admin helper."""
        helper = self._admin.helper_pid if self._admin is not None else None
        return frozenset({os.getpid()} | ({helper} if helper else set()))

    def _read_admin(self, reading: DaemonReading) -> None:
        try:
            reading.fields.update(self._admin.read())
            self._admin_reads += 1
            pool = reading.fields
            full = pool.get("workers_free", 1) == 0 or pool.get("job_queue_depth", 0) > 0
            if full or self._admin_reads % CLIENTS_EVERY_READS == 1:
                reading.clients = group_clients(self._admin.read_clients(), self.proc_root, self.own_pids)
        except AdminTimeout as error:
            log.debug("admin API: %s", error)
            return
        except AdminError as error:
            if self._admin_problem != str(error):
                log.warning("admin API %s unreadable, worker pool figures are off until it is: %s",
                            self._admin_uri, error)
                self._admin_problem = str(error)
            return
        if self._admin_problem is not None:
            log.info("admin API %s readable again", self._admin_uri)
            self._admin_problem = None

    def close(self) -> None:
        """Stop the admin helper process."""
        if self._admin is not None:
            self._admin.close()
        if self._log is not None:
            self._log.close()
        if self._kmsg is not None:
            self._kmsg.close()


def default_admin_uri(libvirt_uri: str) -> str | None:
    """Return the admin URI of the system daemon for qemu:///system, else None (configure `admin_uri`)."""
    return "libvirtd:///system" if libvirt_uri == "qemu:///system" else None

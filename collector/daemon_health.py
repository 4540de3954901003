"""The libvirtd process and its worker pool: /proc figures, restarts, and the admin API, each optional.

Process figures need a daemon (an in-process URI such as test:///default has none); the admin API needs a
readable admin socket: when it is not, the agent says so once and carries on without those fields.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from collector.admin_api import AdminClient, AdminError, AdminTimeout
from collector.daemon_process import NON_SCHEMA_KEYS, ProcessGone, RestartTracker, find_daemon_pid, read_process

log = logging.getLogger("virtwatch.agent")

IN_PROCESS_URIS = ("test:///", "qemu:///embed", "ch:///embed")


def runs_through_daemon(libvirt_uri: str) -> bool:
    """Return True when the URI is served by a daemon process (not an in-process driver)."""
    return not libvirt_uri.startswith(IN_PROCESS_URIS)


@dataclass
class DaemonReading:
    """One interval's daemon figures: schema fields, the process state letter, and a restart reason."""

    fields: dict = field(default_factory=dict)
    state: str | None = None
    restarted: str | None = None


class DaemonHealth:
    """Reads libvirtd's process (found through its pidfile, never taking the lock) and its admin API."""

    def __init__(self, pidfile: Path | None, admin_uri: str | None, admin_timeout_seconds: float = 5.0,
                 proc_root: Path = Path("/proc")):
        self.pidfile = pidfile
        self.proc_root = proc_root
        self.restarts = RestartTracker()
        self._admin = AdminClient(admin_uri, admin_timeout_seconds) if admin_uri else None
        self._admin_uri = admin_uri
        self._admin_problem: str | None = None
        self._pid_missing_logged = False

    def read(self) -> DaemonReading:
        """Return this interval's figures (missing parts are simply absent)."""
        reading = DaemonReading()
        if self.pidfile is not None:
            self._read_process(reading)
        if self._admin is not None:
            self._read_admin(reading)
        return reading

    def _read_process(self, reading: DaemonReading) -> None:
        pid = find_daemon_pid(self.pidfile, self.proc_root)
        if pid is None:
            if not self._pid_missing_logged:
                log.warning("no running libvirtd found (pidfile %s, nor a process named libvirtd): process "
                            "figures are off until one appears", self.pidfile)
                self._pid_missing_logged = True
            return
        self._pid_missing_logged = False
        try:
            figures = read_process(pid, self.proc_root)
        except ProcessGone:
            return
        reading.state = str(figures.get("state"))
        reading.fields.update({k: v for k, v in figures.items() if k not in NON_SCHEMA_KEYS})
        reading.restarted = self.restarts.observe(pid, float(figures["start_time_seconds"]))
        reading.fields["restarts_total"] = self.restarts.restarts_total

    def _read_admin(self, reading: DaemonReading) -> None:
        try:
            reading.fields.update(self._admin.read())
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


def default_admin_uri(libvirt_uri: str) -> str | None:
    """Return the admin URI of the system daemon for qemu:///system, else None (configure `admin_uri`)."""
    return "libvirtd:///system" if libvirt_uri == "qemu:///system" else None

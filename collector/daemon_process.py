"""The libvirtd process: find it (pidfile lock, then a /proc scan) and read its figures from /proc.

Pure parsers of the /proc files' text (`parse_btime`, `parse_stat`, `parse_status`, `parse_limits`) do the
work, so fixture files test them; the readers take the /proc root as an argument so a fixture tree stands in
for it. Linux only.

Finding the daemon never takes the pidfile's lock: libvirtd takes a write lock on byte 0 of its pidfile with
F_SETLK (libvirt src/util/virpidfile.c, virPidFileAcquirePath) and exits at start when it cannot, so a
watcher holding the lock, even for a moment, can make a restarting daemon fail. F_GETLK only asks.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of utime, stime and starttime in /proc/PID/stat (proc(5))

#: keys of read_process() that are not fields of the `libvirtd` measurement in tsdb/schema.py
NON_SCHEMA_KEYS = ("state",)

# struct flock (fcntl(2)): short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid, in native
# alignment. Python is built with 64-bit off_t everywhere (F_GETLK is F_GETLK64 on 32-bit), so "q" fits.
_FLOCK = "hhqqi"
_FLOCK_SIZE = struct.calcsize(_FLOCK + "0q")  # with the trailing padding the kernel writes


class ProcessGone(Exception):
    """The process exited (or its pid was reused) while its /proc files were being read."""


def parse_btime(text: str) -> int:
    """Return the boot time, Unix seconds, from the `btime` line of /proc/stat."""
    for line in text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ValueError("/proc/stat has no 'btime' line")


def parse_stat(text: str) -> dict[str, int | str]:
    """Return pid, comm, state and the utime, stime and starttime ticks from /proc/PID/stat.

    comm (field 2) is in parentheses and may itself hold spaces and parentheses, so the fields after it are
    split from the LAST ')'.
    """
    head, paren, tail = text.rpartition(")")
    if not paren or "(" not in head:
        raise ValueError(f"not a /proc/PID/stat line: {text[:80]!r}")
    pid, _, comm = head.partition("(")
    rest = tail.split()  # rest[0] is field 3 (state), so field n is rest[n - 3]
    if len(rest) < 20:
        raise ValueError(f"/proc/PID/stat line has {len(rest) + 2} fields, expected at least 22")
    return {
        "pid": int(pid),
        "comm": comm,
        "state": rest[0],
        "utime_ticks": int(rest[11]),       # field 14
        "stime_ticks": int(rest[12]),       # field 15
        "starttime_ticks": int(rest[19]),   # field 22, since boot
    }


def parse_status(text: str) -> dict[str, int]:
    """Return rss_bytes (VmRSS; absent for kernel threads and zombies) and threads from /proc/PID/status."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        values[key] = rest.split()
    fields = {"threads": int(values["Threads"][0])}
    if "VmRSS" in values:
        number, unit = values["VmRSS"]
        if unit != "kB":
            raise ValueError(f"VmRSS in unexpected unit {unit!r}")
        fields["rss_bytes"] = int(number) * 1024
    return fields


def parse_limits(text: str) -> dict[str, int]:
    """Return max_fds, the soft "Max open files" limit, from /proc/PID/limits (absent when unlimited)."""
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            return {} if soft == "unlimited" else {"max_fds": int(soft)}
    raise ValueError("/proc/PID/limits has no 'Max open files' line")


def _read_text(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def read_process(pid: int, proc_root: Path = Path("/proc")) -> dict[str, int | float | str]:
    """Return the `libvirtd` measurement's process fields of `pid`, plus `state` (not a schema field).

    state is the one-letter state of /proc/PID/stat: R running, S sleeping, D disk wait, T stopped (for
    example by SIGSTOP), Z zombie. open_fds is left out, with a warning, when /proc/PID/fd may not be read
    (it needs the rights to ptrace the process); max_fds is left out when the limit is unlimited.
    Raises ProcessGone when the process exits, or its pid is reused, during the reads.
    """
    proc_root = Path(proc_root)
    base = proc_root / str(pid)
    try:
        stat = parse_stat(_read_text(base / "stat"))
        fields: dict[str, int | float | str] = {"pid": pid}
        fields.update(parse_status(_read_text(base / "status")))
        fields.update(parse_limits(_read_text(base / "limits")))
        try:
            fields["open_fds"] = len(os.listdir(base / "fd"))
        except PermissionError as error:
            _warn_once("open_fds", f"open_fds of pid {pid} left out: {error}")
        btime = parse_btime(_read_text(proc_root / "stat"))
        # Read stat again: the pid must still name the same process, or the figures mix two processes.
        again = parse_stat(_read_text(base / "stat"))
    except (FileNotFoundError, ProcessLookupError) as error:
        raise ProcessGone(f"process {pid} is gone: {error}") from None
    if again["starttime_ticks"] != stat["starttime_ticks"]:
        raise ProcessGone(f"process {pid} exited and its pid was reused while it was being read")
    fields["start_time_seconds"] = btime + stat["starttime_ticks"] / CLOCK_TICKS
    fields["cpu_user_seconds_total"] = stat["utime_ticks"] / CLOCK_TICKS
    fields["cpu_system_seconds_total"] = stat["stime_ticks"] / CLOCK_TICKS
    fields["state"] = stat["state"]
    return fields


_warned: set[str] = set()


def _warn_once(what: str, message: str) -> None:
    """Log a warning the first time `what` cannot be read in this process, then only at debug level."""
    if what in _warned:
        log.debug("%s", message)
    else:
        _warned.add(what)
        log.warning("%s (warned once)", message)


def pidfile_lock_holder(pidfile: Path) -> int | None:
    """Return the pid of the process holding a lock on byte 0 of `pidfile`, or None when none does.

    Asks with F_GETLK for a write lock on byte 0, which reports any conflicting lock of another process,
    and NEVER takes the lock. What this relies on (fcntl(2)):
    - the kernel reports the holder's pid in l_pid, translated into our pid namespace; libvirtd's lock is a
      process-associated (POSIX) lock that fork does not inherit, so the holder is the daemon itself;
    - a lock held by this very process is not reported (no conflict with itself);
    - l_pid is 0 when the holder is in a pid namespace we cannot see and -1 for an open file description
      lock: then the pid written in the file is used.
    Raises FileNotFoundError or PermissionError when the pidfile cannot be opened.
    """
    fd = os.open(pidfile, os.O_RDONLY | os.O_CLOEXEC)
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0).ljust(_FLOCK_SIZE, b"\0")
        l_type, _whence, _start, _len, l_pid = struct.unpack_from(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
        if l_type == fcntl.F_UNLCK:
            return None
        if l_pid > 0:
            return l_pid
        written = os.read(fd, 32).decode("ascii", "replace").strip()
        return int(written) if written.isdigit() else None
    finally:
        os.close(fd)


def scan_for_process(name: str, proc_root: Path = Path("/proc")) -> int | None:
    """Return the pid of the oldest process whose comm is `name` (at most 15 characters), or None.

    The oldest, because the daemon's short-lived forks carry its name until they exec.
    """
    found: list[tuple[int, int]] = []  # (starttime ticks, pid)
    for entry in os.scandir(proc_root):
        if not entry.name.isdigit():
            continue
        try:
            if _read_text(Path(entry.path) / "comm").rstrip("\n") != name:
                continue
            found.append((int(parse_stat(_read_text(Path(entry.path) / "stat"))["starttime_ticks"]),
                          int(entry.name)))
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked: not the daemon we are after
    if len(found) > 1:
        log.debug("%d processes named %r, taking the oldest: %s", len(found), name, sorted(found))
    return min(found)[1] if found else None


def find_daemon_pid(pidfile: Path, proc_root: Path = Path("/proc"), name: str = "libvirtd") -> int | None:
    """Return the daemon's pid: the holder of its pidfile's lock; None when the pidfile exists but nobody holds
    it (the daemon died and left it stale: a process of the same name elsewhere is not ours); a process named
    `name` only when there is no pidfile to ask, or it cannot be read."""
    try:
        holder = pidfile_lock_holder(pidfile)
    except FileNotFoundError:
        log.debug("no pidfile %s: looking for a process named %r", pidfile, name)
    except PermissionError as error:
        _warn_once(f"pidfile {pidfile}", f"cannot open the pidfile, looking for a process named {name!r}: {error}")
    else:
        if holder is None:
            log.debug("pidfile %s is not locked (stale): no daemon runs", pidfile)
        return holder
    return scan_for_process(name, proc_root)


class RestartTracker:
    """Tells when the daemon is a different process than at the last observation, and counts restarts.

    A restart is a new pid, or the same pid with another start time (the pid was reused). Start times that
    differ by less than `tolerance_seconds` are the same: /proc/stat's btime is whole seconds and moves when
    the wall clock is slewed or stepped, so start_time_seconds of one process can drift by a second.
    """

    def __init__(self, tolerance_seconds: float = 2.0):
        self.tolerance_seconds = tolerance_seconds
        self.restarts_total = 0
        self._last: tuple[int, float] | None = None

    def observe(self, pid: int, start_time_seconds: float) -> str | None:
        """Record the daemon's pid and start time; return why it is a new process, or None when it is not."""
        last, self._last = self._last, (pid, start_time_seconds)
        if last is None:
            return None
        last_pid, last_start = last
        if pid != last_pid:
            reason = f"pid {last_pid} → {pid}"
        elif abs(start_time_seconds - last_start) >= self.tolerance_seconds:
            reason = f"start time changed ({last_start:.0f} → {start_time_seconds:.0f}, pid {pid} reused)"
        else:
            return None
        self.restarts_total += 1
        return reason


@dataclass(frozen=True)
class ProcessEvidence:
    """What /proc says about the daemon: `running` None when it cannot tell (no pidfile: a remote or in-process
    URI), else whether a process runs, its pid and state letter (R, S, T stopped, D uninterruptible)."""

    running: bool | None = None
    pid: int | None = None
    state: str | None = None

    def describe(self) -> str:
        """Return a clause about the process for a message ('' when nothing is known)."""
        if self.running is None:
            return ""
        if not self.running:
            return "no libvirtd process is running"
        what = {"T": "is stopped (state T)", "t": "is stopped by a tracer (state t)",
                "D": "is in uninterruptible sleep (state D)"}
        return f"the libvirtd process (pid {self.pid}) {what.get(self.state or '', f'runs (state {self.state})')}"


def observe_daemon_process(pidfile: Path | None, proc_root: Path = Path("/proc")) -> ProcessEvidence:
    """Return whether the daemon of `pidfile` runs, and its state; a zombie does not run (about 0.1 ms)."""
    if pidfile is None:
        return ProcessEvidence()
    pid = find_daemon_pid(pidfile, proc_root)
    if pid is None:
        return ProcessEvidence(False)
    try:
        state = str(parse_stat(_read_text(Path(proc_root) / str(pid) / "stat"))["state"])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return ProcessEvidence(False)
    return ProcessEvidence(state != "Z", pid, state)

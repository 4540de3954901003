"""The kernel log (/dev/kmsg): pure parsers of its records and of segfault lines, and a reader of new records.

A libvirtd crash by a fault shows only here: the daemon's own log records nothing. The kernel prints
(arch/x86/mm/fault.c show_signal_msg, mm/memory.c print_vma_addr):

    rpc-libvirtd[15948]: segfault at 7f6a57d2f0fe ip 00007f6a57d2f0fe sp 00007f6a53bfe9b0 error 15 in
    libvirt.so.0.9000.0[32f0fe,7f6a57d2f000+14c000] likely on CPU 0 (core 0, socket 0)

(one line; captured on this sandbox's 6.18 kernel from a real libvirtd 9.0 thread, see
tests/collector/fixtures/kmsg/), and for other faults (arch/x86/kernel/traps.c)
`traps: gmain[123] general protection fault ip:... sp:... error:0 in libglib-2.0.so.0[...]`.
The name and number are those of the faulting THREAD, not of the process. A thread's name is whatever the
program set (prctl PR_SET_NAME: any local user can name a thread `rpc-libvirtd`), so a fault is the daemon's
only by its thread id: see `is_daemon_thread`.

/dev/kmsg record format (Documentation/ABI/testing/dev-kmsg): `priority,sequence,timestamp_usec,flags[,...];`
then the message, then optional continuation lines starting with a space (` SUBSYSTEM=...`). The priority
is the syslog prefix: facility*8 + level. Bytes below 0x20, from 0x7f up, and backslash are escaped as `\\xNN`
(a thread name cut mid-character by the kernel's 15-byte limit shows as `vm-backup-node\\xc3`). Each read() of
/dev/kmsg returns exactly one record; EPIPE means records were overwritten before they were read.

Messages written from user space (`echo "<3>text" > /dev/kmsg`, root only) never get facility 0 (kernel):
the kernel forces LOG_USER (kernel/printk/printk.c devkmsg_write). `KmsgRecord.from_kernel` tells a real
segfault line from an injected one.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

# Thread names (the kernel's comm, at most 15 bytes) that libvirtd's threads carry, as seen in
# /proc/<pid>/task/*/comm of libvirtd 9.0 and named in its source: the main thread, the RPC worker pools
# of the libvirtd and admin servers (src/rpc/virnetserver.c, "prio-rpc-libvirtd" cut to 15 bytes), the QEMU
# driver's event pool (src/qemu/qemu_driver.c), the node device udev thread, daemon start-up; and the same
# for the modular QEMU daemon, on hosts that run virtqemud instead. A name says what a thread LOOKS like
# (`looks_like_daemon_thread`), never whose it is: any program can name its threads so.
LIBVIRTD_THREAD_NAMES = frozenset({
    "libvirtd", "rpc-libvirtd", "prio-rpc-libvir", "rpc-admin", "prio-rpc-admin", "rpc-worker",
    "qemu-event", "udev-event", "daemon-init",
    "virtqemud", "rpc-virtqemud", "prio-rpc-virtqe",
})
# A per-guest event loop thread is "vm-" + the domain name, cut to 15 bytes (src/qemu/qemu_process.c).
LIBVIRTD_THREAD_PREFIXES = ("vm-",)
# GLib's own threads: libvirtd has them, but so has every GLib program (NetworkManager, polkitd, udisksd...).
GENERIC_THREAD_NAMES = frozenset({"gmain", "gdbus", "pool-spawner"})
# States of /proc/PID/stat in which a process no longer runs: its threads are gone (zombie, dead).
_NOT_RUNNING_STATES = frozenset({"Z", "X", "x"})

READ_BUFFER_BYTES = 16384  # at least CONSOLE_EXT_LOG_MAX (8192): a smaller read() of /dev/kmsg fails with EINVAL

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_PREFIX = re.compile(r"(?P<priority>\d+),(?P<seq>\d+),(?P<usec>\d+),(?P<flags>[^,;]*)(?:,[^;]*)?;")
_SEGFAULT = re.compile(
    r"(?P<thread>.+?)\[(?P<tid>\d+)\]: (?P<fault>segfault) at (?P<address>[0-9a-f]+) ip (?P<ip>[0-9a-f]+) "
    r"sp (?P<sp>[0-9a-f]+) error (?P<error>[0-9a-f]+)(?P<rest>.*)"
)
_TRAP = re.compile(
    r"traps: (?P<thread>.+?)\[(?P<tid>\d+)\] (?P<fault>general protection fault|trap .+?) ip:(?P<ip>[0-9a-f]+) "
    r"sp:(?P<sp>[0-9a-f]+) error:(?P<error>[0-9a-f]+)(?P<rest>.*)"
)
# " in libvirt.so.0.9000.0[32f0fe,7f6a57d2f000+14c000]" (6.x: offset in the file's mapping, start+size)
# or " in libvirt.so.0.9000.0[7f6a57d2f000+14c000]" (older kernels: start+size)
_REGION = re.compile(r" in (?P<region>.+?)\[(?:(?P<offset>[0-9a-f]+),)?(?P<start>[0-9a-f]+)\+(?P<size>[0-9a-f]+)\]")
_CPU = re.compile(r" likely on CPU (?P<cpu>\d+)")


class KmsgUnavailable(RuntimeError):
    """The kernel log cannot be read (not root, no /dev/kmsg): raised once, when the reader is made."""


@dataclass(frozen=True)
class KmsgRecord:
    """One kernel log record: its sequence number, time since boot, priority and (unescaped) message."""

    seq: int
    monotonic_usec: int
    message: str
    level: int = 6
    facility: int = 0
    flags: str = "-"
    fields: tuple[tuple[str, str], ...] = ()  # continuation lines: (" KEY=value") as (key, value)

    @property
    def from_kernel(self) -> bool:
        """Return True when the kernel wrote the record (facility 0); user space can only write other facilities."""
        return self.facility == 0


@dataclass(frozen=True)
class Segfault:
    """A fault the kernel logged for a user-space thread: which thread, where, and in which mapped file."""

    thread_name: str
    tid: int
    fault: str  # "segfault", "general protection fault", "trap invalid opcode", ...
    ip: int
    sp: int
    error_code: int
    address: int | None = None  # the faulting address (segfaults only)
    region: str | None = None  # basename of the file mapped at ip ("libvirt.so.0.9000.0"), when there is one
    region_offset: int | None = None  # ip's offset in that mapping (6.x kernels)
    region_start: int | None = None
    region_size: int | None = None
    cpu: int | None = None

    def describe(self) -> str:
        """Return one line for a human: the fault, the thread, and where."""
        where = f" in {self.region}" if self.region else ""
        if self.region and self.region_offset is not None:
            where += f"+0x{self.region_offset:x}"
        return f"{self.fault} in thread {self.thread_name}[{self.tid}] at ip 0x{self.ip:x}{where}"


def unescape(text: str) -> str:
    """Return kernel-log text with its \\xNN escapes undone (invalid UTF-8 replaced, as in /proc comm reads)."""
    raw = _ESCAPE.sub(lambda found: bytes([int(found[1], 16)]), text.encode("utf-8"))
    return raw.decode("utf-8", errors="replace")


def parse_record(text: str) -> KmsgRecord | None:
    """Return the record in one /dev/kmsg read (its first line plus continuation lines), or None if malformed."""
    first, *rest = text.rstrip("\n").split("\n")
    found = _PREFIX.match(first)
    if found is None:
        return None
    priority = int(found["priority"])
    fields = []
    for line in rest:
        if not line.startswith(" "):
            return None
        key, _, value = line[1:].partition("=")
        fields.append((key, unescape(value)))
    return KmsgRecord(seq=int(found["seq"]), monotonic_usec=int(found["usec"]),
                      message=unescape(first[found.end():]), level=priority & 7, facility=priority >> 3,
                      flags=found["flags"], fields=tuple(fields))


def split_records(text: str) -> list[str]:
    """Split text holding several records (a saved `cat /dev/kmsg`) into the text of each record."""
    records: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") and records:
            records[-1] += "\n" + line
        elif line:
            records.append(line)
    return records


def parse_segfault(message: str) -> Segfault | None:
    """Return the fault a kernel message reports (segfault, general protection fault, trap), or None."""
    found = _SEGFAULT.fullmatch(message) or _TRAP.fullmatch(message)
    if found is None:
        return None
    region = _REGION.match(found["rest"])
    cpu = _CPU.search(found["rest"])
    groups = found.groupdict()
    return Segfault(
        thread_name=found["thread"], tid=int(found["tid"]), fault=found["fault"],
        ip=int(found["ip"], 16), sp=int(found["sp"], 16), error_code=int(found["error"], 16),
        address=int(groups["address"], 16) if groups.get("address") else None,
        region=region["region"] if region else None,
        region_offset=int(region["offset"], 16) if region and region["offset"] else None,
        region_start=int(region["start"], 16) if region else None,
        region_size=int(region["size"], 16) if region else None,
        cpu=int(cpu["cpu"]) if cpu else None,
    )


def looks_like_daemon_thread(name: str) -> bool:
    """Return True when a thread name is one libvirtd gives its threads (a description, never proof: any
    process may name a thread so; `is_daemon_thread` decides by thread id)."""
    return name in LIBVIRTD_THREAD_NAMES or name.startswith(LIBVIRTD_THREAD_PREFIXES)


def thread_group(tid: int, proc_root: str | Path = "/proc") -> int | None:
    """Return the process (thread group id, `Tgid` of /proc/<tid>/status) thread `tid` belongs to, or None
    when no such thread exists now (or /proc hides it: hidepid). /proc/<tid> answers for any thread id, though
    only processes are listed."""
    try:
        text = (Path(proc_root) / str(tid) / "status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Tgid:"):
            return int(line.split()[1])
    return None


def process_running(pid: int, proc_root: str | Path = "/proc") -> bool:
    """Return True when process `pid` exists and is not a zombie (its threads are then gone)."""
    try:
        text = (Path(proc_root) / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return False
    state = text.rpartition(")")[2].split()[:1]  # field 3, after the comm (which may hold ") ")
    return bool(state) and state[0] not in _NOT_RUNNING_STATES


def is_daemon_thread(tid: int, *, daemon_pid: int | None, known_tids: Collection[int] = (),
                     proc_root: str | Path = "/proc") -> bool:
    """Return True when the faulting thread `tid` belonged to the daemon's process `daemon_pid`.

    Decided by the thread id alone, never by the name (any program may call a thread `rpc-libvirtd`):
    1. the thread still exists (a crashing process lives on while it dumps core; the main thread of a
       zombie): it is the daemon's when its thread group (Tgid in /proc/<tid>/status) is `daemon_pid`. This
       also covers a worker the daemon started after its task list was last read.
    2. the thread is gone: it is the daemon's when it was among the daemon's threads read at the last
       interval (`known_tids`) AND the daemon's process no longer runs. The kernel logs a segfault only for
       an unhandled SIGSEGV (arch/x86/mm/fault.c show_signal_msg checks unhandled_signal), which kills the
       whole process; so a known id whose process still runs has been reused by another process (pid_max is
       often 32768: ids come round again).
    A thread that is gone and was not known cannot be told; it is not counted (the caller says so).
    Thread ids are those of the agent's pid namespace; the kernel logs ids of the initial one.
    """
    if daemon_pid is None:
        return False
    group = thread_group(tid, proc_root)
    if group is not None:
        return group == daemon_pid
    return tid in known_tids and not process_running(daemon_pid, proc_root)


def daemon_threads(pid: int, proc_root: str | Path = "/proc") -> dict[int, str]:
    """Return {thread id: thread name} of process `pid` (empty when it is gone); names decoded as kmsg's are."""
    threads: dict[int, str] = {}
    try:
        entries = os.listdir(Path(proc_root) / str(pid) / "task")
    except OSError:
        return threads
    for entry in entries:
        try:
            raw = (Path(proc_root) / str(pid) / "task" / entry / "comm").read_bytes()
        except OSError:
            continue  # the thread ended between the listing and the read
        threads[int(entry)] = raw.rstrip(b"\n").decode("utf-8", errors="replace")
    return threads


def wall_time_ns(monotonic_usec: int, now_monotonic_ns: int, now_wall_ns: int) -> int:
    """Return the wall-clock time of a record stamped `monotonic_usec` after boot.

    The kernel stamps records with local_clock(), which follows CLOCK_MONOTONIC closely (not across a
    suspend): pass time.monotonic_ns() and time.time_ns() read together.
    """
    return now_wall_ns - (now_monotonic_ns - monotonic_usec * 1000)


class KmsgReader:
    """Reads the kernel log records written since it was opened (or all still kept, with from_start=True).

    Accepts any path: /dev/kmsg (one record per read(), EAGAIN when none is left) or a regular file or FIFO
    holding saved records (several per read(), end of file when none is left).
    """

    def __init__(self, path: str | Path = "/dev/kmsg", from_start: bool = False, max_records_per_read: int = 10000):
        self.path = str(path)
        self.max_records_per_read = max_records_per_read
        self.lost_total = 0  # records overwritten in the kernel's buffer before this reader got them
        self.malformed_total = 0
        self._last_seq: int | None = None
        self._overrun = False
        self._partial = b""
        try:
            self._fd: int | None = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            raise KmsgUnavailable(f"cannot open {self.path}: {error.strerror}") from error
        if not from_start:
            try:
                os.lseek(self._fd, 0, os.SEEK_END)  # /dev/kmsg: the next record to be written
            except OSError as error:
                if error.errno != errno.ESPIPE:  # a FIFO cannot seek; it only has new data anyway
                    raise

    def close(self) -> None:
        """Close the kernel log."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "KmsgReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def fileno(self) -> int:
        """Return the file descriptor (for select/poll: /dev/kmsg is readable when a record waits)."""
        if self._fd is None:
            raise ValueError("the kernel log reader is closed")
        return self._fd

    def read_new(self) -> list[KmsgRecord]:
        """Return the records written since the last call, oldest first (at most max_records_per_read)."""
        fd = self.fileno()
        records: list[KmsgRecord] = []
        overruns = 0
        while len(records) < self.max_records_per_read:
            try:
                chunk = os.read(fd, READ_BUFFER_BYTES)
            except BlockingIOError:
                break  # EAGAIN: no record waiting
            except BrokenPipeError:
                self._overrun = True  # EPIPE: the next read returns the oldest record still kept
                overruns += 1
                if overruns > 3:
                    break
                continue
            if not chunk:
                break  # end of a regular file
            data = self._partial + chunk
            cut = data.rfind(b"\n") + 1
            self._partial = data[cut:]
            for text in split_records(data[:cut].decode("utf-8", errors="replace")):
                record = parse_record(text)
                if record is None:
                    self.malformed_total += 1
                    continue
                self._count_lost(record)
                records.append(record)
        return records

    def _count_lost(self, record: KmsgRecord) -> None:
        if self._last_seq is not None and record.seq > self._last_seq + 1:
            self.lost_total += record.seq - self._last_seq - 1
        elif self._overrun and self._last_seq is None:
            self.lost_total += 1  # overwritten before the first read: at least one, the number is unknown
        self._overrun = False
        self._last_seq = record.seq

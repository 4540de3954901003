"""Every thread of a process, read from /proc: its name, state, where it sleeps, in which syscall, its stack.

For the diagnosis of a hang and for forensics: a daemon whose every worker waits on a futex (a job lock) or on
a QEMU monitor's socket looks "sleeping" as a whole process (state S); its threads say where. Per thread,
under /proc/PID/task/TID (proc(5)):

- `comm`: the thread's name (at most 15 bytes, set by the program: any bytes but NUL, so it is data);
- `stat`: field 3 is the state letter, after the comm in parentheses, which may itself hold `) `: split at the
  LAST `)`;
- `wchan`: the kernel function the thread sleeps in, `0` when none (readable by the owner or root);
- `syscall`: the number of the syscall it is blocked in and its arguments, `running` when it runs, `-1 ...`
  when it is blocked outside a syscall (needs the rights to ptrace the process);
- `stack`: the kernel stack, one `[<0>] function+0x../0x..` line per frame (root only, CAP_SYS_ADMIN).

A file that may not be read, or that this kernel does not have, gives None. A thread that exits while it is
being read is left out; a process that exits before its task list is read raises ProcessGone.

Measured on this sandbox (kernel 6.18, libvirtd 9.0): reading 30 threads takes ~1.1 ms without stacks and
~1.6 ms with them; libvirtd's 17 threads with stacks ~1.7 ms. In the staged pool hang (tests/faults.PoolHang)
EVERY libvirtd thread sleeps (S): the job's holder in futex_do_wait (waiting for the stopped QEMU's monitor
reply) exactly like the workers waiting for its job lock. /proc cannot tell them apart; libvirtd's log can
(collector.job_locks names the holder's thread id, which is a tid listed here). What /proc shows on its own:
threads stuck in the kernel (D, with the wait channel and stack saying where) and a stopped daemon (T).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from collector.daemon_process import ProcessGone
from tsdb.point import printable

# x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl) of the syscalls a stuck thread usually sits in.
SYSCALL_NAMES_X86_64 = {
    0: "read", 1: "write", 7: "poll", 16: "ioctl", 23: "select", 34: "pause", 35: "nanosleep",
    42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 61: "wait4",
    73: "flock", 74: "fsync", 75: "fdatasync", 202: "futex", 219: "restart_syscall", 230: "clock_nanosleep",
    232: "epoll_wait", 247: "waitid", 257: "openat", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait",
    288: "accept4", 441: "epoll_pwait2",
}
SLEEPING_STATES = ("S", "I")  # interruptible sleep, idle kernel thread
STATE_WORDS = {
    "R": "running (R)", "S": "sleeping", "I": "sleeping", "D": "in D state", "T": "stopped (T)",
    "t": "stopped by a tracer (t)", "Z": "zombie (Z)", "X": "dead (X)", "P": "parked (P)",
}
MAX_STACK_FRAMES = 64
_FRAME = re.compile(r"\[<[0-9a-f]+>\] ")
_PLAIN_NAME = re.compile(r"[\w.:@/+#-]+")  # shown as it is; any other name is shown quoted (repr)


@dataclass(frozen=True)
class ThreadInfo:
    """One thread: its id, name, state letter, kernel wait channel, syscall and kernel stack (None: unknown)."""

    tid: int
    name: str
    state: str
    wchan: str | None
    syscall: str | None  # "futex", "running", "syscall 999" or "none" (blocked outside a syscall)
    stack: tuple[str, ...] | None

    @property
    def sleeping(self) -> bool:
        """Return True when the thread waits interruptibly (S) or is an idle kernel thread (I)."""
        return self.state in SLEEPING_STATES

    def brief(self) -> str:
        """Return 'name tid in wchan' (or 'in syscall' when the wait channel is unknown)."""
        where = self.wchan or (self.syscall if self.syscall not in (None, "running", "none") else None)
        return f"{show_name(self.name)} {self.tid}" + (f" in {where}" if where else "")

    def describe(self) -> str:
        """Return one line: name, id, state, wait channel, syscall and the innermost frames of the stack."""
        parts = [f"thread {show_name(self.name)} {self.tid} {STATE_WORDS.get(self.state, f'in state {self.state}')}"]
        if self.wchan:
            parts.append(f"in {self.wchan}")
        if self.syscall == "none":
            parts.append("not in a syscall")
        elif self.syscall and self.syscall != "running":
            parts.append(self.syscall if self.syscall.startswith("syscall ") else f"syscall {self.syscall}")
        if self.stack:
            parts.append("stack " + " < ".join(self.stack[:3]) + (" < ..." if len(self.stack) > 3 else ""))
        return ", ".join(parts)


def show_name(name: str) -> str:
    """Return a thread name as it may be shown in a message: as it is when plain, else in quotes (control
    characters escaped: tsdb.point.printable)."""
    return name if _PLAIN_NAME.fullmatch(name) else f"'{printable(name)}'"


@dataclass(frozen=True)
class ThreadCensus:
    """How many threads, how many in each state, and the threads that are not sleeping."""

    total: int
    by_state: dict[str, int] = field(default_factory=dict)
    not_sleeping: list[ThreadInfo] = field(default_factory=list)


def parse_state(stat_text: str) -> str:
    """Return the state letter of a /proc/PID/task/TID/stat line (the comm before it may hold ') ')."""
    head, paren, tail = stat_text.rpartition(")")
    fields = tail.split()
    if not paren or "(" not in head or not fields:
        raise ValueError(f"not a /proc stat line: {stat_text[:80]!r}")
    return fields[0]


def parse_syscall(text: str, names: dict[int, str] = SYSCALL_NAMES_X86_64) -> str | None:
    """Return the syscall a /proc/PID/task/TID/syscall text shows: its name, 'syscall N', 'running' or 'none'."""
    words = text.split()
    if not words:
        return None
    if words[0] == "running":
        return "running"
    try:
        number = int(words[0])
    except ValueError:
        return None
    if number < 0:
        return "none"  # blocked, but not in a syscall (a page fault, a stop in user space)
    return names.get(number, f"syscall {number}")


def parse_stack(text: str) -> tuple[str, ...]:
    """Return the frames of a /proc/PID/task/TID/stack text, innermost first, without their `[<0>] ` prefix."""
    frames = [_FRAME.sub("", line, count=1).strip() for line in text.splitlines()]
    return tuple(frame for frame in frames if frame)[:MAX_STACK_FRAMES]


class _Vanished(Exception):
    """The thread exited while it was being read."""


def _read(path: Path, task: Path) -> bytes | None:
    """Return a file's bytes; None when it may not be read or does not exist for a live thread."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, ProcessLookupError):
        if not task.exists():
            raise _Vanished from None
        return None  # this kernel has no such file
    except OSError:
        return None  # EACCES/EPERM without the rights; EINVAL and friends from an odd kernel


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def _read_thread(task: Path, tid: int, with_stack: bool, with_syscall: bool = True) -> ThreadInfo:
    """Read one thread's files; raise _Vanished when it is gone."""
    stat = _text(_read(task / "stat", task))
    if stat is None:
        raise _Vanished  # stat is world-readable: missing means the thread is gone
    try:
        state = parse_state(stat)
    except ValueError:
        raise _Vanished from None  # empty: read as the thread was being torn down
    comm = _read(task / "comm", task)
    if comm is not None:
        name = comm.decode("utf-8", errors="replace").removesuffix("\n")
    else:
        name = stat.partition("(")[2].rpartition(")")[0]
    wchan = _text(_read(task / "wchan", task))
    wchan = None if wchan is None or wchan.strip() in ("", "0") else wchan.strip()
    syscall_text = _text(_read(task / "syscall", task)) if with_syscall else None
    stack_text = _text(_read(task / "stack", task)) if with_stack else None
    return ThreadInfo(tid=tid, name=name, state=state, wchan=wchan,
                      syscall=parse_syscall(syscall_text) if syscall_text is not None else None,
                      stack=parse_stack(stack_text) if stack_text is not None else None)


def read_threads(pid: int, proc_root: Path = Path("/proc"), with_stack: bool = True,
                 max_threads: int = 2000, with_syscall: bool = True) -> list[ThreadInfo]:
    """Return the threads of process `pid`, by thread id (the first `max_threads` of them).

    stat, comm and wchan never wait on the process; the kernel stack and the syscall take its exec lock
    (`with_stack`, `with_syscall`: the agent's tick leaves them to the forensics capture, whose steps have
    deadlines).

    Raises ProcessGone when the process has no task list (it exited, or never was).
    """
    tasks = Path(proc_root) / str(pid) / "task"
    try:
        tids = sorted(int(entry) for entry in os.listdir(tasks) if entry.isdigit())
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        raise ProcessGone(f"process {pid} is gone: no {tasks}") from None
    threads = []
    for tid in tids[:max_threads]:
        try:
            threads.append(_read_thread(tasks / str(tid), tid, with_stack, with_syscall))
        except _Vanished:
            continue
    return threads


def census(threads: list[ThreadInfo]) -> ThreadCensus:
    """Count the threads by state and pick out those that are not sleeping."""
    by_state: dict[str, int] = {}
    for thread in threads:
        by_state[thread.state] = by_state.get(thread.state, 0) + 1
    return ThreadCensus(total=len(threads), by_state=by_state,
                        not_sleeping=[thread for thread in threads if not thread.sleeping])


def describe_census(census: ThreadCensus, limit: int = 4) -> str:
    """Return e.g. '22 threads: 20 sleeping, 2 in D state (rpc-libvirtd 4711 in nfs_wait_bit_killable, ...)'.

    At most `limit` threads of each state that is not sleeping are named.
    """
    if census.total == 0:
        return "no threads"
    words: dict[str, int] = {}
    for state, count in census.by_state.items():
        word = STATE_WORDS.get(state, f"in state {state}")
        words[word] = words.get(word, 0) + count
    noun = "thread" if census.total == 1 else "threads"
    if len(words) == 1:
        word = next(iter(words))
        if census.total == 1:
            return f"its one thread {word}"
        return f"{census.total} {noun}, all sleeping" if word == "sleeping" else f"all {census.total} {noun} {word}"
    parts = []
    for word, count in sorted(words.items(), key=lambda item: (item[0] != "sleeping", -item[1], item[0])):
        named = [thread for thread in census.not_sleeping
                 if STATE_WORDS.get(thread.state, f"in state {thread.state}") == word]
        listed = ", ".join(thread.brief() for thread in named[:limit])
        if len(named) > limit:
            listed += ", ..."
        parts.append(f"{count} {word}" + (f" ({listed})" if listed else ""))
    return f"{census.total} {noun}: " + ", ".join(parts)

"""A process's threads from /proc: a fixture tree with hostile names and vanishing threads, this test process's
own threads, and a real child process stopped with SIGSTOP."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from collector.daemon_process import ProcessGone
from collector.daemon_threads import (ThreadCensus, ThreadInfo, census, describe_census, parse_stack, parse_state,
                                      parse_syscall, read_threads)

PID = 4242
STACK = "[<0>] nfs_wait_bit_killable+0x1e/0x90\n[<0>] __wait_on_bit+0x31/0xa0\n[<0>] do_syscall_64+0x71/0x290\n"
HOSTILE_COMM = "rpc) S (évil ✓"  # 15 bytes at most in a real kernel; a fixture may hold anything


def stat_line(tid: int, comm: str, state: str) -> str:
    """A /proc/PID/task/TID/stat line: pid, (comm), state, then 49 more fields."""
    return f"{tid} ({comm}) {state} 1 " + " ".join(["0"] * 48) + "\n"


def write_thread(root: Path, tid: int, comm: str, state: str, wchan: str | None = "0", syscall: str | None = None,
                 stack: str | None = None) -> Path:
    """Write one thread's files; a None leaves that file out."""
    task = root / str(PID) / "task" / str(tid)
    task.mkdir(parents=True)
    (task / "comm").write_bytes(comm.encode() + b"\n")
    (task / "stat").write_text(stat_line(tid, comm, state))
    for name, text in (("wchan", wchan), ("syscall", syscall), ("stack", stack)):
        if text is not None:
            (task / name).write_text(text)
    return task


@pytest.fixture
def proc_tree(tmp_path):
    """A /proc tree of one process with six threads, one of which vanishes while it is read."""
    write_thread(tmp_path, PID, "libvirtd", "S", "do_epoll_wait", "232 0x3 0x5 0x7 0xffffffff 0x0 0x0 0x7ff 0x7f1",
                 "[<0>] do_epoll_wait+0x4b5/0x4f0\n[<0>] __x64_sys_epoll_wait+0x6f/0x110\n")
    write_thread(tmp_path, PID + 1, HOSTILE_COMM, "D", "nfs_wait_bit_killable", "0 0x1a 0x7f 0x1000 0x0 0x0 0x0",
                 None)  # no stack file (a kernel without CONFIG_STACKTRACE)
    write_thread(tmp_path, PID + 2, "rpc-libvirtd", "D", "0", "-1 0x7ffc 0x7f12", STACK)
    write_thread(tmp_path, PID + 3, "qemu-event", "R", "0", "running", "")
    unreadable = write_thread(tmp_path, PID + 4, "gmain", "S", None, "999 0x0 0x0", None)
    (unreadable / "stack").mkdir()  # reading it fails (EISDIR): an unreadable stack gives None
    # a thread that exited between the listing and the read: listed, but its directory is gone
    (tmp_path / str(PID) / "task" / str(PID + 5)).symlink_to(tmp_path / "gone")
    write_thread(tmp_path, PID + 6, "a\nnew line", "t", "ptrace_stop", "7 0x0", None)
    return tmp_path


def test_every_thread_of_a_fixture_tree_is_read_with_its_state_wchan_syscall_and_stack(proc_tree):
    threads = read_threads(PID, proc_root=proc_tree)
    assert threads == [
        ThreadInfo(PID, "libvirtd", "S", "do_epoll_wait", "epoll_wait",
                   ("do_epoll_wait+0x4b5/0x4f0", "__x64_sys_epoll_wait+0x6f/0x110")),
        ThreadInfo(PID + 1, HOSTILE_COMM, "D", "nfs_wait_bit_killable", "read", None),
        ThreadInfo(PID + 2, "rpc-libvirtd", "D", None, "none",
                   ("nfs_wait_bit_killable+0x1e/0x90", "__wait_on_bit+0x31/0xa0", "do_syscall_64+0x71/0x290")),
        ThreadInfo(PID + 3, "qemu-event", "R", None, "running", ()),
        ThreadInfo(PID + 4, "gmain", "S", None, "syscall 999", None),
        ThreadInfo(PID + 6, "a\nnew line", "t", "ptrace_stop", "poll", None),
    ]


def test_stacks_are_not_read_when_not_asked_for(proc_tree):
    assert {thread.stack for thread in read_threads(PID, proc_root=proc_tree, with_stack=False)} == {None}


def test_at_most_max_threads_are_read_lowest_thread_ids_first(proc_tree):
    assert [thread.tid for thread in read_threads(PID, proc_root=proc_tree, max_threads=2)] == [PID, PID + 1]


def test_a_process_without_a_task_list_is_gone(proc_tree):
    with pytest.raises(ProcessGone):
        read_threads(PID + 100, proc_root=proc_tree)


def test_a_thread_name_is_taken_from_stat_when_comm_cannot_be_read(proc_tree):
    (proc_tree / str(PID) / "task" / str(PID + 1) / "comm").unlink()
    assert read_threads(PID, proc_root=proc_tree)[1].name == HOSTILE_COMM


@pytest.mark.parametrize("text, state", [
    ("1 (libvirtd) S 1 2 3", "S"),
    ("7 (rpc) S (evil) D 1 2 3", "D"),
    ("7 ()) T 1", "T"),
    ("7 (a) (b) ) ) Z 0", "Z"),
])
def test_the_state_letter_follows_the_last_parenthesis_of_stat(text, state):
    assert parse_state(text) == state


@pytest.mark.parametrize("text", ["", "7 libvirtd S 1", "7 (libvirtd)"])
def test_a_stat_line_without_a_state_is_refused(text):
    with pytest.raises(ValueError):
        parse_state(text)


@pytest.mark.parametrize("text, syscall", [
    ("202 0x7f 0x80 0x0 0x0 0x0 0x0 0x7ffc 0x7f12\n", "futex"),
    ("230 0x1 0x0 0x7ffc 0x0 0x0 0x0 0x7ffc 0x7f12\n", "clock_nanosleep"),
    ("271 0x5 0x1 0x0 0x0 0x8 0x0 0x7ffc 0x7f12\n", "ppoll"),
    ("47 0x9 0x7ffc 0x0 0x0 0x0 0x0 0x7ffc 0x7f12\n", "recvmsg"),
    ("219 0x0 0x0 0x0 0x0 0x0 0x0 0x7ffc 0x7f12\n", "restart_syscall"),
    ("335 0x0 0x0 0x0 0x0 0x0 0x0 0x7ffc 0x7f12\n", "syscall 335"),
    ("running\n", "running"),
    ("-1 0x7ffc 0x7f12\n", "none"),
    ("", None),
    ("garbage", None),
])
def test_a_syscall_number_is_named_when_it_is_a_usual_suspect(text, syscall):
    assert parse_syscall(text) == syscall


def test_stack_frames_lose_their_address_prefix():
    assert parse_stack(STACK) == ("nfs_wait_bit_killable+0x1e/0x90", "__wait_on_bit+0x31/0xa0",
                                  "do_syscall_64+0x71/0x290")


# --- census ------------------------------------------------------------------------------------------------------

def thread(tid: int, state: str, name: str = "rpc-libvirtd", wchan: str | None = None,
           syscall: str | None = None) -> ThreadInfo:
    return ThreadInfo(tid, name, state, wchan, syscall, None)


def test_a_census_counts_states_and_names_the_threads_that_are_not_sleeping():
    threads = [thread(1, "S"), thread(2, "I"), thread(3, "D", wchan="nfs_wait_bit_killable"), thread(4, "S")]
    assert census(threads) == ThreadCensus(4, {"S": 2, "I": 1, "D": 1}, [threads[2]])


@pytest.mark.parametrize("threads, text", [
    ([thread(tid, "S") for tid in range(20)]
     + [thread(4711, "D", wchan="nfs_wait_bit_killable"), thread(4712, "D", syscall="read")],
     "22 threads: 20 sleeping, 2 in D state (rpc-libvirtd 4711 in nfs_wait_bit_killable, rpc-libvirtd 4712 in read)"),
    ([thread(tid, "T") for tid in range(22)], "all 22 threads stopped (T)"),
    ([thread(tid, "S") for tid in range(3)] + [thread(9, "I")], "4 threads, all sleeping"),
    ([thread(1, "R")], "its one thread running (R)"),
    ([], "no threads"),
    ([thread(tid, "D", wchan="io_schedule") for tid in range(6)] + [thread(7, "S"), thread(8, "R", syscall="running")],
     "8 threads: 1 sleeping, 6 in D state (rpc-libvirtd 0 in io_schedule, rpc-libvirtd 1 in io_schedule, "
     "rpc-libvirtd 2 in io_schedule, rpc-libvirtd 3 in io_schedule, ...), 1 running (R) (rpc-libvirtd 8)"),
    ([thread(1, "S"), thread(2, "D", name="evil) 2, D (x\n", wchan="w")],
     "2 threads: 1 sleeping, 1 in D state ('evil) 2, D (x\\n' 2 in w)"),
    ([thread(1, "S"), thread(2, "W")], "2 threads: 1 sleeping, 1 in state W (rpc-libvirtd 2)"),
])
def test_a_census_reads_as_one_sentence(threads, text):
    assert describe_census(census(threads)) == text


def test_a_thread_describes_itself_with_state_wchan_syscall_and_innermost_frames():
    info = ThreadInfo(7, "vm-web ✓", "D", "nfs_wait_bit_killable", "read", ("a+0x1", "b+0x2", "c+0x3", "d+0x4"))
    assert info.describe() == ("thread 'vm-web ✓' 7 in D state, in nfs_wait_bit_killable, syscall read, "
                               "stack a+0x1 < b+0x2 < c+0x3 < ...")
    assert ThreadInfo(8, "gmain", "S", None, "none", None).describe() == "thread gmain 8 sleeping, not in a syscall"
    assert not info.sleeping and ThreadInfo(9, "x", "I", None, None, None).sleeping


# --- real processes ------------------------------------------------------------------------------------------------

PR_SET_NAME = 15  # prctl(2)
REAL_NAME = "wait) R (ü✓"  # 14 bytes: fits the kernel's 15


def test_a_thread_of_this_process_is_found_sleeping_in_a_futex_under_its_hostile_name():
    ready, release = threading.Event(), threading.Event()

    def wait() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, REAL_NAME.encode(), 0, 0, 0)
        ready.set()
        release.wait()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    try:
        ready.wait(5)
        time.sleep(0.05)  # let it reach the futex
        threads = read_threads(os.getpid())
    finally:
        release.set()
        waiter.join(5)
    mine = {info.tid: info for info in threads}
    assert set(mine) == {int(tid) for tid in os.listdir(f"/proc/{os.getpid()}/task")} | {waiter.native_id}
    found = mine[waiter.native_id]
    assert (found.name, found.state, found.syscall) == (REAL_NAME, "S", "futex")
    assert found.wchan and "futex" in found.wchan
    if os.geteuid() == 0:
        assert found.stack and any("futex" in frame for frame in found.stack)
    assert mine[threading.main_thread().native_id].state == "R"  # the reader itself


CHILD = """
import sys, threading, time
for n in range(2):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print("ready", flush=True)
time.sleep(600)
"""


def wait_states(pid: int, states: set[str], timeout: float = 10.0) -> bool:
    """Wait until the states of pid's threads are exactly `states`; return whether that happened in time."""
    deadline = time.monotonic() + timeout
    while {info.state for info in read_threads(pid)} != states:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_every_thread_of_a_stopped_process_is_in_state_t():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert wait_states(child.pid, {"S"})  # the main thread goes to sleep just after it printed
        os.kill(child.pid, signal.SIGSTOP)
        assert wait_states(child.pid, {"T"})  # each thread stops when it next runs
        threads = read_threads(child.pid)
        assert [info.state for info in threads] == ["T", "T", "T"]
        assert {info.wchan for info in threads} <= {"do_signal_stop", None}  # the kernel's group stop
        assert describe_census(census(threads)) == "all 3 threads stopped (T)"
    finally:
        child.kill()
        child.wait()
    with pytest.raises(ProcessGone):
        read_threads(child.pid)

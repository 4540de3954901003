"""Daemon health: log signatures become events, error lines are counted, the kernel log is read for real."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest

from collector.daemon_health import DaemonHealth

LOCK_TIMEOUT = ("2026-11-23 20:02:49.561+0000: 21473: error : virDomainObjBeginJobInternal:468 : Timed out "
                "during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainGetInfo)")
CLIENT_EOF = ("2026-11-23 20:02:50.000+0000: 21473: error : virNetSocketReadWire:1791 : End of file while "
              "reading data: Input/output error")


def test_new_log_errors_become_events_by_signature_and_harmless_ones_are_only_counted(tmp_path):
    log_file = tmp_path / "libvirtd.log"
    log_file.write_text("2026-11-23 20:00:00.000+0000: 1: error : old : history, not news\n")
    health = DaemonHealth(None, None, log_file=log_file)
    assert health.read().events == []
    with open(log_file, "a") as handle:
        handle.write(LOCK_TIMEOUT + "\n" + CLIENT_EOF + "\n")
    reading = health.read()
    assert [(e.kind, e.severity) for e in reading.events] == [("log_lock_timeout", "warning")]
    assert "cannot acquire state change lock" in reading.events[0].message
    assert reading.fields["log_errors_total"] == 2
    health.close()


@pytest.mark.slow
def test_error_lines_of_a_real_daemon_are_counted(libvirtd):
    health = DaemonHealth(libvirtd.pidfile, None, log_file=libvirtd.log_path)
    health.read()
    # a client that exits without closing its connection makes the daemon log "End of file while reading data"
    subprocess.run([sys.executable, "-c", "import libvirt, os; c = libvirt.open(%r); c.getLibVersion(); "
                    "os._exit(0)" % libvirtd.uri_test], check=True)
    counted = 0
    for _ in range(50):
        counted = health.read().fields.get("log_errors_total", 0)
        if counted:
            break
        time.sleep(0.1)
    assert counted >= 1
    health.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="writing to /dev/kmsg needs root")
def test_a_user_space_line_imitating_a_segfault_in_the_real_kernel_log_is_not_blamed_on_libvirtd():
    health = DaemonHealth(None, None, kmsg_path="/dev/kmsg")
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write("libvirtd[4242]: segfault at 0 ip 00007f0000001000 sp 00007ffd00000000 error 4 in "
                   "libvirt.so.0.9000.0[7f0000000000+1c3000]\n")
    reading = health.read()
    assert reading.events == [] and reading.fields["segfaults_total"] == 0
    health.close()


def test_garbage_in_the_daemon_log_is_skipped_and_the_next_real_error_still_counts(tmp_path):
    log_file = tmp_path / "libvirtd.log"
    log_file.write_text("")
    health = DaemonHealth(None, None, log_file=log_file)
    with open(log_file, "ab") as handle:
        handle.write(b"\x00\xff\xfe garbage \x1b[31m\n2026-13-99 nonsense: x : y\n" + os.urandom(512) + b"\n")
        handle.write(LOCK_TIMEOUT.encode() + b"\n")
    reading = health.read()
    assert [e.kind for e in reading.events] == ["log_lock_timeout"]
    health.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="writing to /dev/kmsg needs root")
def test_garbage_written_to_the_real_kernel_log_is_skipped():
    health = DaemonHealth(None, None, kmsg_path="/dev/kmsg")
    with open("/dev/kmsg", "wb", buffering=0) as kmsg:
        kmsg.write(b"\x01\x02 not a record ;;; segfault at \xff\xfe\n")
        kmsg.write(b"libvirtd[]: segfault at zz ip\n")
    reading = health.read()
    assert reading.events == [] and reading.fields["segfaults_total"] == 0
    health.close()


# --- real faults in the kernel log: a fault is libvirtd's by its thread id, never by its thread's name ----------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="reading /dev/kmsg needs root")

# A stand-in for a daemon, or a local user's program: it names a thread as asked (prctl PR_SET_NAME), holds a
# libvirtd-style pidfile lock when given a pidfile, and on a line on stdin makes that thread read address 0
# for real (ctypes.string_at(0)): the kernel logs `<name>[<tid>]: segfault at 0 ...`, as it does for libvirtd.
# `kill -SEGV` would not do: the kernel logs only faults. `late` starts the thread only after that line.
FAULTING_PROGRAM = r"""
import ctypes, fcntl, os, sys, threading
pidfile, name, when = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
if pidfile != "-":
    fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, str(os.getpid()).encode())
go = threading.Event()
def fault():
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
    print(threading.get_native_id(), flush=True)
    go.wait()
    ctypes.string_at(0)
if when == "early":
    threading.Thread(target=fault).start()
else:
    print("ready", flush=True)
sys.stdin.readline()
if when == "late":
    threading.Thread(target=fault).start()
go.set()
threading.Event().wait()
"""
SLEEPING_DAEMON = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(fd, str(os.getpid()).encode())
print("ready", flush=True)
time.sleep(600)
"""


def no_core_dump() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def start(program: str, *args: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONFAULTHANDLER"}  # no SIGSEGV handler
    return subprocess.Popen([sys.executable, "-c", program, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, preexec_fn=no_core_dump)


def state_of(pid: int) -> str | None:
    try:
        return open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return None


def crash(child: subprocess.Popen, tid: int | None = None) -> tuple[int, str]:
    """Make the child's thread fault; return its thread id and the kernel's line, once the child is dead."""
    from collector.kmsg import KmsgReader, parse_segfault
    with KmsgReader() as kernel_log:
        child.stdin.write("go\n")
        child.stdin.flush()
        tid = tid if tid is not None else int(child.stdout.readline())
        lines, deadline = [], time.monotonic() + 30
        while not lines and time.monotonic() < deadline:
            lines = [r.message for r in kernel_log.read_new()
                     if r.from_kernel and (fault := parse_segfault(r.message)) and fault.tid == tid]
            time.sleep(0.02)
    assert lines, f"the kernel logged no fault of thread {tid} (kernel.print-fatal-signals? ratelimited?)"
    while state_of(child.pid) not in (None, "Z"):  # dead, not reaped: its pid is not reused meanwhile
        time.sleep(0.01)
    return tid, lines[0]


@needs_root
def test_a_real_crash_of_a_thread_named_rpc_libvirtd_in_another_process_is_not_libvirtds(tmp_path):
    pidfile = tmp_path / "libvirtd.pid"
    daemon = start(SLEEPING_DAEMON, str(pidfile))
    assert daemon.stdout.readline() == "ready\n"
    health = DaemonHealth(pidfile, None, kmsg_path="/dev/kmsg")
    try:
        assert health.read().fields["pid"] == daemon.pid
        hostile = start(FAULTING_PROGRAM, "-", "rpc-libvirtd", "early")  # any local user can do this
        tid = int(hostile.stdout.readline())
        tid, line = crash(hostile, tid)
        assert line.startswith(f"rpc-libvirtd[{tid}]: segfault at 0 ")  # exactly what libvirtd's thread prints
        reading = health.read()
        assert reading.events == [] and reading.fields["segfaults_total"] == 0
        assert reading.fields["pid"] == daemon.pid  # the daemon is there: the fault was simply not its
        hostile.wait()
    finally:
        health.close()
        daemon.kill()
        daemon.wait()


@needs_root
def test_a_real_crash_of_a_thread_of_the_daemons_process_is_counted_whatever_its_name(tmp_path):
    pidfile = tmp_path / "libvirtd.pid"
    daemon = start(FAULTING_PROGRAM, str(pidfile), "any name", "early")
    tid = int(daemon.stdout.readline())
    health = DaemonHealth(pidfile, None, kmsg_path="/dev/kmsg")
    try:
        assert health.read().fields["pid"] == daemon.pid and tid in health.threads_seen
        crash(daemon, tid)
        reading = health.read()
        assert [(e.kind, e.severity) for e in reading.events] == [("segfault", "critical")]
        assert reading.events[0].message.startswith(f"segfault in thread any name[{tid}] at ip 0x")
        assert reading.events[0].message.endswith(f"of libvirtd (pid {daemon.pid})")
        assert reading.fields["segfaults_total"] == 1
        daemon.wait()
    finally:
        health.close()


@needs_root
def test_a_crash_of_a_thread_born_after_the_last_read_in_a_daemon_now_gone_is_not_counted_and_said(tmp_path, caplog):
    pidfile = tmp_path / "libvirtd.pid"
    daemon = start(FAULTING_PROGRAM, str(pidfile), "rpc-libvirtd", "late")
    assert daemon.stdout.readline() == "ready\n"
    health = DaemonHealth(pidfile, None, kmsg_path="/dev/kmsg")
    try:
        assert health.read().fields["pid"] == daemon.pid
        tid, _line = crash(daemon)
        assert tid not in health.threads_seen
        with caplog.at_level(logging.DEBUG, logger="virtwatch.agent"):
            reading = health.read()
        assert reading.events == [] and reading.fields["segfaults_total"] == 0
        said = [r.getMessage() for r in caplog.records if "not counted as libvirtd's" in r.getMessage()]
        assert len(said) == 1 and f"rpc-libvirtd[{tid}]" in said[0] and f"thread {tid} is gone" in said[0]
        daemon.wait()
    finally:
        health.close()

"""The libvirtd process is found by its pidfile's lock (never taken) or by name, and read from /proc."""

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from collector import daemon_process
from collector.daemon_process import (
    CLOCK_TICKS, ProcessGone, RestartTracker, find_daemon_pid, parse_btime, parse_limits, parse_stat,
    parse_status, read_process,
)
from tsdb.schema import MEASUREMENTS

FIXTURES = Path(__file__).parent / "fixtures" / "daemon_proc"

# Like libvirtd (src/util/virpidfile.c): open, take a write lock on byte 0 with F_SETLK (never waiting),
# truncate, write the pid. Then obey stdin: "relock N" drops and retakes the lock N times without waiting and
# answers how many retakes failed; "quit" exits.
LOCKING_CHILD = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
os.ftruncate(fd, 0)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
for line in sys.stdin:
    words = line.split()
    if words[0] == "relock":
        failed = 0
        for _ in range(int(words[1])):
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
            except OSError:
                failed += 1
                fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
        print("failed", failed, flush=True)
    elif words[0] == "quit":
        break
"""


@pytest.fixture
def locking_child(tmp_path):
    """A process holding a write lock on byte 0 of a pidfile, as libvirtd does: (process, pidfile)."""
    pidfile = tmp_path / "libvirtd.pid"
    child = subprocess.Popen([sys.executable, "-c", LOCKING_CHILD, str(pidfile)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "locked\n"
    yield child, pidfile
    if child.poll() is None:
        child.kill()
    child.wait(5)


# --- parsers --------------------------------------------------------------------------------------------

def test_btime_is_read_from_the_proc_stat_file():
    assert parse_btime((FIXTURES / "stat").read_text()) == 1_700_000_000


def test_a_proc_stat_file_without_btime_is_an_error():
    with pytest.raises(ValueError, match="btime"):
        parse_btime("cpu  1 2 3 4\n")


def test_stat_fields_are_split_after_the_last_parenthesis_of_a_comm_with_spaces_and_parentheses():
    assert parse_stat((FIXTURES / "1234" / "stat").read_text()) == {
        "pid": 1234, "comm": "libvirt d) (S", "state": "T",
        "utime_ticks": 250, "stime_ticks": 75, "starttime_ticks": 360050}


def test_a_truncated_stat_line_is_an_error():
    with pytest.raises(ValueError, match="fields"):
        parse_stat("1234 (libvirtd) S 1 2 3\n")


def test_status_gives_resident_memory_in_bytes_and_threads():
    assert parse_status((FIXTURES / "1234" / "status").read_text()) == {"rss_bytes": 20612 * 1024, "threads": 11}


def test_status_of_a_process_without_memory_leaves_rss_out():
    assert parse_status("Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n") == {"threads": 1}


def test_limits_give_the_soft_open_files_limit():
    assert parse_limits((FIXTURES / "1234" / "limits").read_text()) == {"max_fds": 8192}


def test_an_unlimited_open_files_limit_is_left_out():
    assert parse_limits("Max open files            unlimited            unlimited            files     \n") == {}


# --- read_process -------------------------------------------------------------------------------------

def test_the_fixture_process_reads_exactly():
    assert read_process(1234, FIXTURES) == {
        "pid": 1234,
        "start_time_seconds": 1_700_000_000 + 360050 / CLOCK_TICKS,
        "rss_bytes": 20612 * 1024,
        "threads": 11,
        "open_fds": 7,
        "max_fds": 8192,
        "cpu_user_seconds_total": 250 / CLOCK_TICKS,
        "cpu_system_seconds_total": 75 / CLOCK_TICKS,
        "state": "T",
    }


def test_every_key_but_state_is_a_field_of_the_libvirtd_measurement():
    fields = set(read_process(1234, FIXTURES)) - set(daemon_process.NON_SCHEMA_KEYS)
    assert all(MEASUREMENTS["libvirtd"].field(name) for name in fields)


def test_a_process_that_is_not_there_is_gone():
    with pytest.raises(ProcessGone, match="4321"):
        read_process(4321, FIXTURES)


def test_a_process_whose_pid_is_reused_during_the_reads_is_gone(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES, proc)
    real_listdir = os.listdir

    def listdir_then_reuse_the_pid(path):
        stat = proc / "1234" / "stat"
        stat.write_text(stat.read_text().replace(" 360050 ", " 999999 "))
        return real_listdir(path)

    monkeypatch.setattr(daemon_process.os, "listdir", listdir_then_reuse_the_pid)
    with pytest.raises(ProcessGone, match="reused"):
        read_process(1234, proc)


def test_the_current_process_reads_sane_figures():
    started = time.time()
    fields = read_process(os.getpid())
    assert fields["pid"] == os.getpid()
    assert fields["state"] in ("R", "S")
    assert 1_000_000 < fields["rss_bytes"] < 16 * 2**30
    assert fields["threads"] >= 1
    assert fields["threads"] >= threading.active_count()
    assert 3 <= fields["open_fds"] <= fields.get("max_fds", 1 << 30)
    assert started - 24 * 3600 < fields["start_time_seconds"] <= started + 2
    assert fields["cpu_user_seconds_total"] + fields["cpu_system_seconds_total"] > 0
    times = os.times()
    assert fields["cpu_user_seconds_total"] == pytest.approx(times.user, abs=0.5)


# --- find_daemon_pid ----------------------------------------------------------------------------------

def test_the_holder_of_the_pidfile_lock_is_the_daemon(locking_child):
    child, pidfile = locking_child
    assert find_daemon_pid(pidfile, FIXTURES) == child.pid


def test_after_the_daemon_exits_its_stale_pidfile_finds_nothing(locking_child):
    child, pidfile = locking_child
    child.stdin.write("quit\n")
    child.stdin.flush()
    child.wait(5)
    assert pidfile.read_text() == str(child.pid)  # the stale pidfile stays, unlocked
    assert find_daemon_pid(pidfile, FIXTURES) is None  # and no process named libvirtd in the fixture tree


def test_a_stale_pidfile_means_no_daemon_even_when_a_process_has_the_name(tmp_path):
    # a daemon killed with SIGKILL leaves its pidfile unlocked; another libvirtd on the machine is not ours
    pidfile = tmp_path / "libvirtd.pid"
    pidfile.write_text("99999")
    assert find_daemon_pid(pidfile, FIXTURES, name="libvirt d) (S") is None


def test_a_missing_pidfile_falls_back_to_the_process_name(tmp_path):
    assert find_daemon_pid(tmp_path / "none.pid", FIXTURES, name="libvirt d) (S") == 1234
    assert find_daemon_pid(tmp_path / "none.pid", FIXTURES) is None


def test_the_oldest_of_several_processes_with_the_name_is_the_daemon(tmp_path):
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES, proc)
    shutil.copytree(proc / "1234", proc / "1300")  # a younger fork of the daemon, same name
    stat = proc / "1300" / "stat"
    stat.write_text(stat.read_text().replace("1234 (", "1300 (", 1).replace(" 360050 ", " 370000 "))
    assert find_daemon_pid(tmp_path / "none.pid", proc, name="libvirt d) (S") == 1234


def test_the_real_proc_scan_finds_this_process_by_its_name(tmp_path):
    name = Path(f"/proc/{os.getpid()}/comm").read_text().rstrip("\n")
    assert find_daemon_pid(tmp_path / "none.pid", Path("/proc"), name=name) is not None


def test_finding_the_daemon_only_asks_about_the_lock(locking_child, monkeypatch):
    child, pidfile = locking_child
    commands = []
    real_fcntl = fcntl.fcntl

    def spy(fd, command, *args):
        commands.append(command)
        return real_fcntl(fd, command, *args)

    monkeypatch.setattr(daemon_process.fcntl, "fcntl", spy)
    monkeypatch.setattr(daemon_process.fcntl, "lockf", lambda *a: pytest.fail("lockf called"))
    monkeypatch.setattr(daemon_process.fcntl, "flock", lambda *a: pytest.fail("flock called"))
    assert find_daemon_pid(pidfile, FIXTURES) == child.pid
    assert commands == [fcntl.F_GETLK]


def test_the_daemon_can_relock_its_pidfile_while_the_agent_keeps_checking(locking_child):
    child, pidfile = locking_child
    stop = threading.Event()
    seen = []

    def check_all_the_time():
        while not stop.is_set():
            seen.append(find_daemon_pid(pidfile, FIXTURES))

    checker = threading.Thread(target=check_all_the_time)
    checker.start()
    try:
        child.stdin.write("relock 2000\n")
        child.stdin.flush()
        answer = child.stdout.readline()
    finally:
        stop.set()
        checker.join(5)
    assert answer == "failed 0\n"
    assert len(seen) > 10 and set(seen) <= {child.pid, None}  # None: caught between unlock and relock


# --- RestartTracker -----------------------------------------------------------------------------------

def test_the_first_observation_is_no_restart():
    tracker = RestartTracker()
    assert tracker.observe(123, 1_700_000_000.0) is None
    assert tracker.restarts_total == 0


def test_the_same_process_again_is_no_restart():
    tracker = RestartTracker()
    tracker.observe(123, 1_700_000_000.0)
    assert tracker.observe(123, 1_700_000_000.0) is None
    assert tracker.observe(123, 1_700_000_001.0) is None  # btime jitter of a second: same process
    assert tracker.restarts_total == 0


def test_a_new_pid_is_a_restart():
    tracker = RestartTracker()
    tracker.observe(123, 1_700_000_000.0)
    assert tracker.observe(456, 1_700_000_100.0) == "pid 123 → 456"
    assert tracker.restarts_total == 1


def test_the_same_pid_with_another_start_time_is_a_restart():
    tracker = RestartTracker()
    tracker.observe(123, 1_700_000_000.0)
    reason = tracker.observe(123, 1_700_000_100.0)
    assert reason is not None and reason.startswith("start time changed")
    assert tracker.restarts_total == 1


def test_restarts_are_counted_against_the_last_observation():
    tracker = RestartTracker()
    tracker.observe(1, 10.0)
    tracker.observe(2, 20.0)
    assert tracker.observe(2, 20.0) is None
    assert tracker.observe(3, 30.0) == "pid 2 → 3"
    assert tracker.restarts_total == 2


# --- against a real private libvirtd (tests/libvirtd.py) ----------------------------------------------

@pytest.mark.slow
def test_a_real_libvirtd_is_found_by_its_pidfile_and_read_while_stopped(libvirtd):
    pid = find_daemon_pid(libvirtd.pidfile)
    assert pid == libvirtd.pid
    libvirtd.kill(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        while (fields := read_process(pid))["state"] != "T" and time.monotonic() < deadline:
            time.sleep(0.01)  # the signal is delivered asynchronously
    finally:
        libvirtd.kill(signal.SIGCONT)
    assert fields["state"] == "T"
    assert fields["threads"] > 2 and fields["open_fds"] > 3 and fields["rss_bytes"] > 1_000_000


@pytest.mark.slow
def test_a_restarted_libvirtd_is_a_new_process_to_the_tracker(libvirtd):
    tracker = RestartTracker()
    first = read_process(find_daemon_pid(libvirtd.pidfile))
    assert tracker.observe(first["pid"], first["start_time_seconds"]) is None
    libvirtd.restart()  # takes its pidfile's lock again: finding it never held the lock
    second = read_process(find_daemon_pid(libvirtd.pidfile))
    assert tracker.observe(second["pid"], second["start_time_seconds"]) == f"pid {first['pid']} → {second['pid']}"
    assert second["start_time_seconds"] >= first["start_time_seconds"]
    assert tracker.restarts_total == 1

"""Forensics bundles captured from real processes: a stand-in daemon (a child holding its pidfile's lock, with
named threads), a stand-in QEMU (a child named qemu-system-x86, stopped with SIGSTOP, its pidfile named the way
libvirt spells a hostile guest name), a real log file and saved kernel records; steps that block (FIFOs with
no writer) cut at their deadline and skipped while stuck; the policy of when to capture; the worker thread."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from collector.daemon_threads import read_threads
from collector.diagnosis import Evidence, diagnose
from collector.forensics import CapturePolicy, CaptureSources, ForensicsCapture, ForensicsWorker
from collector.guest_processes import StuckGuest, XML_QUOTES
from tsdb.forensics import JSON, decode_bundle
from tsdb.schema import MEASUREMENTS

HOST = "hv-test"
HOSTILE_GUEST = 'web 1,"x" & \'y\' <b>'
THREAD_NAMES = ["rpc-libvirtd", "qemu-event", "w) R (ü,'x\""]  # the last: 14 bytes, fits the kernel's 15
KERNEL_LINE = ("rpc-libvirtd[8146]: segfault at 7f6a57d2f0fe ip 00007f6a57d2f0fe sp 00007f6a53bfe9b0 error 15 in "
               "libvirt.so.0.9000.0[32f0fe,7f6a57d2f000+14c000] likely on CPU 0 (core 0, socket 0)")
STEP_DEADLINE_SECONDS = 2.0

DAEMON = r"""
import ctypes, fcntl, json, os, sys, threading, time
libc = ctypes.CDLL(None)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a POSIX lock on the pidfile, as libvirtd takes it
os.ftruncate(fd, 0)
os.write(fd, f"{os.getpid()}\n".encode())
libc.prctl(15, b"vw-fake-daemon", 0, 0, 0)  # PR_SET_NAME; not "libvirtd": no scan must mistake it
names = sys.argv[2:]
ready = threading.Barrier(len(names) + 1)
tids = {"vw-fake-daemon": threading.get_native_id()}
def run(name):
    libc.prctl(15, name.encode(), 0, 0, 0)
    tids[name] = threading.get_native_id()
    ready.wait()
    time.sleep(600)
for name in names:
    threading.Thread(target=run, args=(name,), daemon=True).start()
ready.wait()
print(json.dumps(tids), flush=True)
time.sleep(600)
"""

QEMU = r"""
import ctypes, time
ctypes.CDLL(None).prctl(15, b"qemu-system-x86", 0, 0, 0)  # the comm libvirt's QEMU processes have
print("ready", flush=True)
time.sleep(600)
"""


def thread_states(pid: int) -> set[str]:
    return {info.state for info in read_threads(pid, with_stack=False)}


def wait_for_states(pid: int, states: set[str], tries: int = 1000) -> None:
    """Wait until the states of pid's threads are exactly `states` (each thread sleeps or stops when it next runs)."""
    for _ in range(tries):
        if thread_states(pid) == states:
            return
        time.sleep(0.01)
    raise AssertionError(f"threads of {pid} are {thread_states(pid)}, not {states}")


class FakeDaemon:
    """A child process that holds its pidfile's lock like libvirtd and runs threads with the given names."""

    def __init__(self, pidfile: Path, names: list[str] = THREAD_NAMES):
        self.pidfile = pidfile
        self.child = subprocess.Popen([sys.executable, "-c", DAEMON, str(pidfile), *names], stdout=subprocess.PIPE,
                                      text=True)
        self.tids: dict[str, int] = json.loads(self.child.stdout.readline())
        self.pid = self.child.pid
        wait_for_states(self.pid, {"S"})

    def stop(self) -> None:
        self.child.kill()
        self.child.wait()
        self.child.stdout.close()


@pytest.fixture
def daemon(tmp_path):
    fake = FakeDaemon(tmp_path / "libvirtd.pid")
    yield fake
    fake.stop()


@pytest.fixture
def qemu_dir(tmp_path, daemon):
    """libvirt's QEMU pidfile dir: a stopped QEMU under a hostile name, a running one, a pidfile of a process
    that is no QEMU (the daemon), and one holding no pid."""
    pid_dir = tmp_path / "qemu"
    pid_dir.mkdir()
    stopped = subprocess.Popen([sys.executable, "-c", QEMU], stdout=subprocess.PIPE, text=True)
    calm = subprocess.Popen([sys.executable, "-c", QEMU], stdout=subprocess.PIPE, text=True)
    try:
        assert stopped.stdout.readline() == calm.stdout.readline() == "ready\n"
        os.kill(stopped.pid, signal.SIGSTOP)
        wait_for_states(stopped.pid, {"T"})
        wait_for_states(calm.pid, {"S"})
        assert escape(HOSTILE_GUEST, XML_QUOTES) == "web 1,&quot;x&quot; &amp; &apos;y&apos; &lt;b&gt;"
        (pid_dir / f"{escape(HOSTILE_GUEST, XML_QUOTES)}.pid").write_text(f"{stopped.pid}\n")
        (pid_dir / "calm.pid").write_text(str(calm.pid))
        (pid_dir / "not-qemu.pid").write_text(str(daemon.pid))
        (pid_dir / "garbage.pid").write_text("not a pid")
        yield pid_dir, stopped.pid, calm.pid
    finally:
        for child in (stopped, calm):
            child.kill()
            child.wait()
            child.stdout.close()


def libvirtd_stamp(seconds_ago: float = 0.0) -> str:
    moment = datetime.fromtimestamp(time.time() - seconds_ago, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "+0000"


def write_daemon_log(path: Path, lines: int = 500) -> list[str]:
    """A libvirtd log of `lines` lines whose last two say that a stats call holds the hostile guest's job."""
    text = [f"{libvirtd_stamp(60)}: 8100: info : virObjectUnref:{n} : line {n}" for n in range(lines - 2)]
    text += [f"{libvirtd_stamp(1)}: 8147: warning : virDomainObjBeginJobInternal:468 : Cannot start job (query, "
             f"none, none) in API remoteDispatchDomainMemoryStats for domain {HOSTILE_GUEST}; current job is (query, "
             f"none, none) owned by (8146 remoteDispatchDomainMemoryStats, 0 <null>, 0 <null> (flags=0x0)) for "
             f"(30s, 0s, 0s)",
             f"{libvirtd_stamp(1)}: 8147: error : virDomainObjBeginJobInternal:497 : Timed out during operation: "
             f"cannot acquire state change lock (held by monitor=remoteDispatchDomainMemoryStats)"]
    path.write_text("\n".join(text) + "\n")
    return text


def write_kernel_records(path: Path) -> None:
    """Saved /dev/kmsg records: a segfault two seconds ago (the kernel's monotonic clock is the record's stamp)."""
    usec = time.monotonic_ns() // 1000 - 2_000_000
    path.write_text(f"3,1001,{usec},-;{KERNEL_LINE}\n SUBSYSTEM=none\n")


def schema_types_match(measurement: str, fields: dict) -> None:
    types = {"int": int, "float": float, "str": str, "bool": bool}
    for name, value in fields.items():
        assert type(value) is types[MEASUREMENTS[measurement].field(name).type], f"{name} = {value!r}"


@pytest.fixture
def sources(tmp_path, daemon, qemu_dir) -> CaptureSources:
    log_file = tmp_path / "libvirtd.log"
    write_daemon_log(log_file)
    kmsg = tmp_path / "kmsg.txt"
    write_kernel_records(kmsg)
    return CaptureSources(pidfile=daemon.pidfile, log_file=log_file, kmsg_path=str(kmsg), qemu_pid_dir=qemu_dir[0])


# --- a capture of real processes ---------------------------------------------------------------------------------

def test_a_capture_of_a_real_process_holds_every_thread_the_log_tail_the_kernel_line_and_the_stopped_guest(
        tmp_path, daemon, qemu_dir, sources):
    _pid_dir, stopped_pid, calm_pid = qemu_dir
    diagnosis = diagnose(HOST, "hang", Evidence(stuck_guests={HOSTILE_GUEST: StuckGuest(stopped_pid, "T")}), 45.0)
    capture = ForensicsCapture(HOST, sources, tmp_path / "out", STEP_DEADLINE_SECONDS)
    done = capture.capture("hang", time.time_ns(), diagnosis, {"kernel_line": KERNEL_LINE})
    bundle = done.bundle

    assert [(step["name"], step["status"]) for step in bundle["steps"]] == [
        ("process", "ok"), ("threads", "ok"), ("daemon_log", "ok"), ("kernel_log", "ok"), ("qemu", "ok")]
    assert done.steps_cut == []
    assert (bundle["process"]["pid"], bundle["process"]["state"]) == (daemon.pid, "S")
    assert bundle["process"]["threads"] == len(THREAD_NAMES) + 1
    assert {(thread["tid"], thread["name"]) for thread in bundle["threads"]} == {
        (tid, name) for name, tid in daemon.tids.items()}
    assert {thread["state"] for thread in bundle["threads"]} == {"S"}
    assert bundle["daemon_log"] == sources.log_file.read_text().splitlines()[-200:]
    assert len(bundle["kernel_log"]) == 1 and bundle["kernel_log"][0].endswith(f"Z {KERNEL_LINE}")
    assert bundle["kernel_line"] == KERNEL_LINE
    assert bundle["qemu"] == [{"domain": "calm", "pid": calm_pid, "state": "S"},
                              {"domain": HOSTILE_GUEST, "pid": stopped_pid, "state": "T"}]
    assert (bundle["cause"], bundle["diagnosis"]) == (diagnosis.cause, diagnosis.fields)
    assert (bundle["host"], bundle["trigger"]) == (HOST, "hang")

    assert done.file is not None and done.file.parent == tmp_path / "out"
    assert json.loads(done.file.read_text(encoding="utf-8")) == bundle
    assert [path.name for path in (tmp_path / "out").iterdir()] == [done.file.name]  # no temporary file left

    point = done.point
    assert (point.measurement, point.tags, point.time_ns) == ("forensics", {"host": HOST, "trigger": "hang"},
                                                              bundle["time_ns"])
    assert set(point.fields) == {field.name for field in MEASUREMENTS["forensics"].fields}
    schema_types_match("forensics", point.fields)
    assert (point.fields["encoding"], point.fields["steps_cut"]) == (JSON, "")
    assert (point.fields["cause"], point.fields["file"]) == (diagnosis.cause, str(done.file))
    assert decode_bundle(point.fields["bundle"], point.fields["encoding"]) == bundle
    assert point.fields["size_bytes"] == len(done.file.read_bytes())


def test_a_manual_capture_diagnoses_what_it_read_the_stopped_guest_and_its_job_holder_from_the_log(
        tmp_path, sources):
    done = ForensicsCapture(HOST, sources, tmp_path / "out", STEP_DEADLINE_SECONDS).capture("manual", time.time_ns())
    cause = (f"libvirtd on hv-test: the QEMU of guest '{HOSTILE_GUEST}' is stopped (state T), its job held 30 s by "
             f"thread 8146 in remoteDispatchDomainMemoryStats (daemon log)")
    assert done.bundle["cause"] == done.point.fields["cause"] == cause
    assert json.loads(done.file.read_text(encoding="utf-8"))["cause"] == cause
    assert done.bundle["diagnosis"]["stuck_guest_names_json"] == json.dumps([HOSTILE_GUEST], ensure_ascii=False)
    assert (done.bundle["diagnosis"]["threads"], done.bundle["diagnosis"]["job_holder_thread"]) == (4, 8146)
    schema_types_match("diagnosis", done.bundle["diagnosis"])


def test_a_stopped_process_has_every_thread_in_state_t_and_the_manual_cause_says_so_first(tmp_path, daemon):
    os.kill(daemon.pid, signal.SIGSTOP)
    wait_for_states(daemon.pid, {"T"})
    done = ForensicsCapture(HOST, CaptureSources(pidfile=daemon.pidfile), tmp_path / "out",
                            STEP_DEADLINE_SECONDS).capture("manual", time.time_ns())
    assert [thread["state"] for thread in done.bundle["threads"]] == ["T"] * (len(THREAD_NAMES) + 1)
    assert done.bundle["process"]["state"] == "T"
    assert done.bundle["cause"] == (f"libvirtd on hv-test: the libvirtd process (pid {daemon.pid}) is stopped "
                                    f"(state T), all 4 of its threads")
    assert done.steps_cut == []


def test_the_pidfile_of_a_process_that_is_gone_fails_the_process_step_and_the_bundle_is_still_written(tmp_path):
    gone = FakeDaemon(tmp_path / "libvirtd.pid")
    seen = {tid: name for name, tid in gone.tids.items()}
    gone.stop()  # its pidfile stays, unlocked: a stale pidfile
    capture = ForensicsCapture(HOST, CaptureSources(pidfile=gone.pidfile), tmp_path / "out", STEP_DEADLINE_SECONDS)
    done = capture.capture("segfault", time.time_ns(), None, {"threads_seen": seen, "kernel_line": KERNEL_LINE})
    assert done.bundle["steps"] == [{"name": "process", "status": "failed", "ms": 0.0,
                                     "error": "no running libvirtd found"}]
    assert "threads" not in done.bundle and "process" not in done.bundle
    assert done.bundle["threads_seen_before"] == seen
    assert done.bundle["cause"] == "libvirtd on hv-test crashed: no libvirtd process is running"
    assert done.file.exists() and json.loads(done.file.read_text(encoding="utf-8"))["kernel_line"] == KERNEL_LINE
    assert done.point.fields["steps_cut"] == "process"


# --- steps that do not finish ------------------------------------------------------------------------------------

def stuck_step_threads(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == f"virtwatch-forensics-{name}"]


def release(fifo: Path) -> None:
    """Open a FIFO for writing and close it: a reader blocked in open() gets end of file."""
    for _ in range(1000):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no reader has it open yet
                raise
            time.sleep(0.01)
    raise AssertionError(f"nobody reads {fifo}")


def release_all(fifos: list[Path], name: str) -> None:
    """Release every FIFO until no thread of step `name` is stuck any more."""
    for _ in range(100):
        stuck = stuck_step_threads(name)
        if not stuck:
            return
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as error:
                if error.errno != errno.ENXIO:
                    raise
        for thread in stuck:
            thread.join(0.1)
    raise AssertionError(f"step {name} is still stuck")


def test_a_step_that_hangs_is_cut_at_its_deadline_named_and_skipped_while_it_is_still_stuck(tmp_path, daemon,
                                                                                            qemu_dir):
    fifo = tmp_path / "libvirtd.log"
    os.mkfifo(fifo)  # no writer: opening it blocks
    sources = CaptureSources(pidfile=daemon.pidfile, log_file=fifo, qemu_pid_dir=qemu_dir[0])
    capture = ForensicsCapture(HOST, sources, tmp_path / "out", STEP_DEADLINE_SECONDS)
    try:
        first = capture.capture("hang", time.time_ns())
        statuses = {step["name"]: step["status"] for step in first.bundle["steps"]}
        assert statuses == {"process": "ok", "threads": "ok", "daemon_log": "cut", "qemu": "ok"}
        assert first.steps_cut == ["daemon_log"] and first.point.fields["steps_cut"] == "daemon_log"
        cut = next(step for step in first.bundle["steps"] if step["name"] == "daemon_log")
        assert cut["error"] == "no result within its deadline of 2 s: abandoned"
        assert first.bundle["daemon_log"] == [] and len(first.bundle["threads"]) == 4  # the others still ran
        assert first.file.exists()
        assert len(stuck_step_threads("daemon_log")) == 1

        second = capture.capture("hang", time.time_ns() + 1)
        skipped = next(step for step in second.bundle["steps"] if step["name"] == "daemon_log")
        assert skipped == {"name": "daemon_log", "status": "skipped", "ms": 0.0,
                           "error": "the same step of an earlier capture is still stuck"}
        assert second.steps_cut == ["daemon_log"]
        assert len(stuck_step_threads("daemon_log")) == 1  # no second thread piled up on the stuck source

        release(fifo)
        for thread in stuck_step_threads("daemon_log"):
            thread.join(10)
        assert stuck_step_threads("daemon_log") == []
        third = capture.capture("hang", time.time_ns() + 2)  # the stuck thread ended: the step runs again
        assert [step["status"] for step in third.bundle["steps"] if step["name"] == "daemon_log"] == ["cut"]
    finally:
        release_all([fifo], "daemon_log")


def blocking_proc_tree(root: Path, pid: int, tids: list[int]) -> list[Path]:
    """A /proc tree for `pid` whose every file is a FIFO with no writer: each read of it blocks."""
    fifos = [root / str(pid) / "stat"] + [root / str(pid) / "task" / str(tid) / "stat" for tid in tids]
    for fifo in fifos:
        fifo.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(fifo)
    return fifos


def test_a_deadline_of_zero_cuts_every_step_then_skips_them_and_still_returns_a_bundle_and_a_point(tmp_path, daemon):
    proc = tmp_path / "proc"
    fifos = blocking_proc_tree(proc, daemon.pid, sorted(daemon.tids.values()))
    pid_dir = tmp_path / "qemu"
    pid_dir.mkdir()
    fifos += [tmp_path / "libvirtd.log", pid_dir / "web.pid"]
    for fifo in fifos[-2:]:
        os.mkfifo(fifo)
    sources = CaptureSources(pidfile=daemon.pidfile, proc_root=proc, log_file=tmp_path / "libvirtd.log",
                             qemu_pid_dir=pid_dir)
    capture = ForensicsCapture(HOST, sources, tmp_path / "out", step_deadline_seconds=0.0)
    try:
        first = capture.capture("hang", time.time_ns())
        assert [(step["name"], step["status"]) for step in first.bundle["steps"]] == [
            ("process", "cut"), ("threads", "cut"), ("daemon_log", "cut"), ("qemu", "cut")]
        assert first.point.fields["steps_cut"] == "process,threads,daemon_log,qemu"
        assert first.file.exists()
        # a read that was cut says nothing about the daemon: it is not said to be gone
        assert first.bundle["cause"] == "libvirtd on hv-test hung 0 s: no evidence could be read (no process, " \
                                        "admin API or log)"
        second = capture.capture("hang", time.time_ns() + 1)
        assert {step["status"] for step in second.bundle["steps"]} == {"skipped"}
        assert second.point.measurement == "forensics"
        assert sum(len(stuck_step_threads(name)) for name in ("process", "threads", "daemon_log", "qemu")) == 4
    finally:
        for name in ("process", "threads", "daemon_log", "qemu"):
            release_all(fifos, name)


# --- files --------------------------------------------------------------------------------------------------------

def test_only_the_newest_keep_files_bundles_remain(tmp_path):
    capture = ForensicsCapture(HOST, CaptureSources(), tmp_path / "out", keep_files=3)
    start = 1_796_433_765_000_000_000
    files = [capture.capture("manual", start + n * 10**9).file for n in range(6)]
    assert sorted((tmp_path / "out").iterdir()) == files[3:]
    assert [path.name for path in files[3:]] == ["20261205T012248.000000Z-manual-hv-test.json",
                                                 "20261205T012249.000000Z-manual-hv-test.json",
                                                 "20261205T012250.000000Z-manual-hv-test.json"]


def test_a_hostile_host_name_cannot_put_the_file_outside_the_bundle_directory(tmp_path):
    host = "../../etc/evil host\n'\"✓"
    done = ForensicsCapture(host, CaptureSources(), tmp_path / "out").capture("manual", 1_796_433_765_000_000_000)
    assert done.file.parent == tmp_path / "out"
    assert done.file.name == "20261205T012245.000000Z-manual-.._.._etc_evil_host____.json"
    assert json.loads(done.file.read_text(encoding="utf-8"))["host"] == host


def test_without_a_directory_no_file_is_written_and_the_point_says_so(tmp_path):
    done = ForensicsCapture(HOST, CaptureSources(), None).capture("manual", 1)
    assert done.file is None and done.point.fields["file"] == ""


# --- when to capture ----------------------------------------------------------------------------------------------

def test_a_hang_shorter_than_after_hang_seconds_is_not_captured_until_it_lasts_long_enough():
    policy = CapturePolicy(after_hang_seconds=10.0, min_gap_seconds=300.0)
    assert policy.decide("hang", "incident 1", now=1000.0, hang_seconds=9.4) == "the hang has lasted 9 s of 10"
    assert policy.decide("hang", "incident 1", now=1001.0, hang_seconds=10.0) is None


def test_an_incident_is_captured_once():
    policy = CapturePolicy(after_hang_seconds=10.0, min_gap_seconds=300.0)
    assert policy.decide("hang", "incident 1", now=1000.0, hang_seconds=20.0) is None
    assert policy.decide("hang", "incident 1", now=2000.0, hang_seconds=1020.0) == "captured for this incident already"
    assert policy.decide("hang", "incident 2", now=2000.0, hang_seconds=20.0) is None


def test_bundles_are_at_least_min_gap_seconds_apart():
    policy = CapturePolicy(after_hang_seconds=10.0, min_gap_seconds=300.0)
    assert policy.decide("segfault", 1, now=1000.0) is None
    assert policy.decide("segfault", 2, now=1299.0) == ("the last bundle was captured 299 s ago (at most one per "
                                                       "300 s: forensics_min_gap_seconds)")
    assert policy.decide("segfault", 3, now=1300.0) is None
    assert policy.decide("segfault", 4, now=1599.9) is not None


def test_a_hang_that_begins_within_the_gap_is_captured_once_the_gap_has_passed():
    policy = CapturePolicy(after_hang_seconds=10.0, min_gap_seconds=300.0)
    assert policy.decide("restart", "pid 1 → 2", now=1000.0) is None
    assert policy.decide("hang", "hang 1", now=1100.0, hang_seconds=15.0).startswith("the last bundle")
    assert policy.decide("hang", "hang 1", now=1299.0, hang_seconds=214.0).startswith("the last bundle")
    assert policy.decide("hang", "hang 1", now=1300.0, hang_seconds=215.0) is None
    assert policy.decide("hang", "hang 1", now=1310.0, hang_seconds=225.0) == "captured for this incident already"


def test_a_restart_right_after_a_segfault_is_skipped_by_the_gap():
    policy = CapturePolicy()
    assert policy.decide("segfault", 1_796_000_000_000_000_000, now=500.0) is None
    assert policy.decide("restart", "pid 900 → 901", now=505.0).startswith("the last bundle was captured 5 s ago")


# --- the worker ---------------------------------------------------------------------------------------------------

def test_a_requested_capture_runs_on_the_worker_and_its_point_is_taken_once(tmp_path):
    worker = ForensicsWorker(ForensicsCapture(HOST, CaptureSources(), tmp_path / "out"))
    try:
        assert worker.request("manual", 1_796_433_765_000_000_000, None, {}) is True
        assert worker.wait_idle(30)
        points = worker.take_points()
        assert [(point.measurement, point.tags) for point in points] == [
            ("forensics", {"host": HOST, "trigger": "manual"})]
        assert worker.take_points() == [] and worker.captures_total == 1
        assert len(list((tmp_path / "out").iterdir())) == 1
    finally:
        worker.stop()


def test_a_request_while_a_capture_runs_is_refused_not_queued(tmp_path):
    fifo = tmp_path / "libvirtd.log"
    os.mkfifo(fifo)
    capture = ForensicsCapture(HOST, CaptureSources(log_file=fifo), tmp_path / "out", step_deadline_seconds=600.0)
    worker = ForensicsWorker(capture)
    try:
        assert worker.request("hang", 1, None, {}) is True
        assert worker.request("segfault", 2, None, {}) is False  # the first one waits on the FIFO
        release(fifo)
        assert worker.wait_idle(30)
        points = worker.take_points()
        assert [point.tags["trigger"] for point in points] == ["hang"]
        # no pidfile: no process step; the released read failed (a FIFO cannot seek)
        assert points[0].fields["steps_cut"] == "process,daemon_log"
        assert worker.captures_total == 1
        assert worker.request("segfault", 3, None, {}) is True  # idle again: the next incident is taken
        release(fifo)
        assert worker.wait_idle(30)
        assert [point.tags["trigger"] for point in worker.take_points()] == ["segfault"]
    finally:
        worker.stop()
        release_all([fifo], "daemon_log")


def test_a_capture_that_fails_does_not_end_the_worker(tmp_path):
    worker = ForensicsWorker(ForensicsCapture(HOST, CaptureSources(), tmp_path / "out"))
    try:
        assert worker.request("no such trigger", 1, None, {}) is True  # its diagnosis raises ValueError
        assert worker.wait_idle(30)
        assert worker.take_points() == [] and worker.captures_total == 0
        assert worker.request("manual", 2, None, {}) is True
        assert worker.wait_idle(30)
        assert [point.tags["trigger"] for point in worker.take_points()] == ["manual"]
    finally:
        worker.stop()

"""The kernel log: records and segfault lines parse exactly; the reader sees new records on the real /dev/kmsg.

fixtures/kmsg/real-segfaults.txt holds records read from this sandbox's /dev/kmsg (kernel 6.18) after real
faults: a libvirtd 9.0 `rpc-libvirtd` thread and a per-guest `vm-` thread (made to fault by pointing their
instruction pointer at a non-executable address with gdb), and a Python libvirt CLIENT that crashed inside
libvirt.so. other-faults.txt holds the older kernels' format, trap lines, a record with dictionary lines
(the example of Documentation/ABI/testing/dev-kmsg) and a malformed line.
"""

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from collector import kmsg
from collector.kmsg import (
    LIBVIRTD_THREAD_NAMES, KmsgReader, KmsgRecord, KmsgUnavailable, Segfault, daemon_threads, is_daemon_thread,
    looks_like_daemon_thread, parse_record, parse_segfault, process_running, split_records, thread_group, unescape,
    wall_time_ns,
)

FIXTURES = Path(__file__).parent / "fixtures" / "kmsg"
IS_ROOT = os.geteuid() == 0


def fixture_records(name: str) -> list[KmsgRecord]:
    return [parse_record(text) for text in split_records((FIXTURES / name).read_text())]


def fixture_segfaults(name: str) -> list[Segfault]:
    return [s for r in fixture_records(name) if r and (s := parse_segfault(r.message))]


# --- records -------------------------------------------------------------------------------------------------------

def test_a_record_gives_sequence_time_priority_and_message():
    assert parse_record("6,358,4102132402,-;rpc-libvirtd[15948]: segfault at 7f6a57d2f0fe\n") == KmsgRecord(
        seq=358, monotonic_usec=4102132402, message="rpc-libvirtd[15948]: segfault at 7f6a57d2f0fe",
        level=6, facility=0, flags="-", fields=())


def test_the_priority_splits_into_facility_and_level():
    record = parse_record("11,344,3232851481,-;virtwatch-probe: hello")
    assert (record.facility, record.level, record.from_kernel) == (1, 3, False)


def test_dictionary_lines_become_fields():
    records = fixture_records("other-faults.txt")
    acpi = next(r for r in records if r and r.seq == 2007)
    assert acpi.fields == (("SUBSYSTEM", "acpi"), ("DEVICE", "+acpi:PNP0A03:00"))
    assert acpi.message == "pci_root PNP0A03:00: host bridge window [io  0x0000-0x0cf7] (ignored)"


def test_extra_prefix_fields_such_as_the_caller_are_accepted():
    record = parse_record("6,2008,93000000000,-,caller=T21471;hello")
    assert (record.seq, record.message) == (2008, "hello")


def test_escaped_bytes_are_unescaped_and_a_cut_character_is_replaced():
    assert unescape(r"a\x0ab\x5cc") == "a\nb\\c"
    assert unescape(r"vm-backup-node\xc3") == "vm-backup-node\ufffd"
    assert unescape(r"vm-web-\xc3\xbcn\xc3\xafc") == "vm-web-ünïc"


@pytest.mark.parametrize("text", ["this is not a kernel log record", "6,1,2;no flags", "x,1,2,-;bad priority",
                                  "6,1,2,-;fine\nbut this continuation has no leading space"])
def test_malformed_records_are_none(text):
    assert parse_record(text) is None


def test_saved_records_split_at_lines_that_do_not_start_with_a_space():
    texts = split_records((FIXTURES / "other-faults.txt").read_text())
    assert len(texts) == 10 and texts[6].count("\n") == 2


# --- segfaults -----------------------------------------------------------------------------------------------------

def test_a_real_daemon_thread_segfault_gives_thread_address_and_library():
    rpc = fixture_segfaults("real-segfaults.txt")[1]
    assert rpc == Segfault(
        thread_name="rpc-libvirtd", tid=15948, fault="segfault", ip=0x7f6a57d2f0fe, sp=0x7f6a53bfe9b0,
        error_code=0x15, address=0x7f6a57d2f0fe, region="libvirt.so.0.9000.0", region_offset=0x32f0fe,
        region_start=0x7f6a57d2f000, region_size=0x14c000, cpu=0)
    assert rpc.describe() == ("segfault in thread rpc-libvirtd[15948] at ip 0x7f6a57d2f0fe in "
                              "libvirt.so.0.9000.0+0x32f0fe")


def test_a_fault_outside_any_mapped_file_has_no_region():
    vm = fixture_segfaults("real-segfaults.txt")[2]
    assert (vm.thread_name, vm.tid, vm.region, vm.cpu) == ("vm-backup-node\ufffd", 17231, None, 0)


def test_the_code_lines_after_a_segfault_are_not_segfaults():
    records = fixture_records("real-segfaults.txt")
    assert [parse_segfault(r.message) is not None for r in records] == [True, False] * 3


def test_older_kernels_format_without_offset_or_cpu_parses():
    old = fixture_segfaults("other-faults.txt")[0]
    assert (old.thread_name, old.address, old.region, old.region_offset, old.region_start, old.region_size,
            old.cpu) == ("libvirtd", 0, "libvirt.so.0.9000.0", None, 0x7f3a1c200000, 0x1c3000, None)


def test_general_protection_faults_and_traps_parse_too():
    faults = {s.fault: s for s in fixture_segfaults("other-faults.txt")}
    gpf, ill = faults["general protection fault"], faults["trap invalid opcode"]
    assert (gpf.thread_name, gpf.tid, gpf.address, gpf.region) == ("gmain", 21466, None, "libglib-2.0.so.0.7400.6")
    assert (ill.thread_name, ill.region) == ("qemu-event", "libvirt.so.0.9000.0 (deleted)")


def test_non_fault_messages_are_not_segfaults():
    assert parse_segfault("amd_pstate: The CPPC feature is supported but currently disabled by the BIOS.") is None
    assert parse_segfault("Code: 48 8b 47 08 48 85 c0 74 0b <48> 8b 38") is None


# --- whose thread ---------------------------------------------------------------------------------------------------

def fake_proc(root: Path, threads: dict[int, tuple[int, str]]) -> Path:
    """Write /proc/<tid>/status (Tgid) for each thread {tid: (process, state)}, and stat for each process."""
    for tid, (tgid, state) in threads.items():
        (root / str(tid)).mkdir(parents=True)
        (root / str(tid) / "status").write_text(f"Name:\tx\nUmask:\t0022\nState:\t{state}\nTgid:\t{tgid}\n")
        if tid == tgid:
            (root / str(tid) / "stat").write_text(f"{tid} (a) b) {state} 1 " + "0 " * 48 + "\n")
    return root


DAEMON = 2435  # the daemon's pid (its main thread's id); 2436, 2437 its workers read at the last interval
KNOWN = frozenset({2435, 2436, 2437})


@pytest.mark.parametrize("name", sorted(LIBVIRTD_THREAD_NAMES | {"vm-vm-long-name", "vm-backup-node\ufffd"}))
def test_libvirtds_thread_names_look_like_the_daemons_but_a_name_never_decides(name, tmp_path):
    assert looks_like_daemon_thread(name)
    proc = fake_proc(tmp_path, {DAEMON: (DAEMON, "S"), 4000: (4000, "S")})
    # any local user can name a thread so: a thread of another process is not the daemon's, whatever its name
    assert not is_daemon_thread(4000, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=proc)


@pytest.mark.parametrize("name", ["gmain", "gdbus", "worker-x", "python3"])
def test_other_names_do_not_look_like_the_daemons(name):
    assert not looks_like_daemon_thread(name)


def test_a_thread_that_still_exists_is_the_daemons_by_its_thread_group_even_when_born_since_the_last_read(tmp_path):
    proc = fake_proc(tmp_path, {DAEMON: (DAEMON, "S"), 2999: (DAEMON, "S")})
    assert 2999 not in KNOWN and is_daemon_thread(2999, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=proc)


def test_a_known_id_now_held_by_another_process_is_not_the_daemons(tmp_path):
    proc = fake_proc(tmp_path, {DAEMON: (DAEMON, "S"), 2436: (2436, "S")})  # the worker ended, its id came round
    assert not is_daemon_thread(2436, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=proc)


def test_a_known_thread_that_is_gone_counts_when_the_daemon_is_gone_or_a_zombie(tmp_path):
    assert is_daemon_thread(2436, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=fake_proc(tmp_path / "gone", {}))
    zombie = fake_proc(tmp_path / "zombie", {DAEMON: (DAEMON, "Z")})
    assert is_daemon_thread(2436, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=zombie)


def test_a_known_thread_that_is_gone_while_the_daemon_still_runs_is_not_the_daemons(tmp_path):
    # an unhandled SIGSEGV kills the whole process: the daemon still running means the id was another's
    proc = fake_proc(tmp_path, {DAEMON: (DAEMON, "S")})
    assert not is_daemon_thread(2436, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=proc)


def test_an_unknown_thread_that_is_gone_cannot_be_told_and_is_not_counted(tmp_path):
    assert not is_daemon_thread(2999, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=fake_proc(tmp_path, {}))


def test_without_a_daemon_nothing_is_the_daemons(tmp_path):
    proc = fake_proc(tmp_path, {DAEMON: (DAEMON, "S")})
    assert not is_daemon_thread(DAEMON, daemon_pid=None, known_tids=KNOWN, proc_root=proc)


def test_a_crash_in_libvirt_so_inside_a_client_is_not_a_daemon_segfault(tmp_path):
    client = fixture_segfaults("real-segfaults.txt")[0]
    proc = fake_proc(tmp_path, {DAEMON: (DAEMON, "S")})
    assert client.region == "libvirt.so.0.9000.0"
    assert not is_daemon_thread(client.tid, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=proc)


def test_a_segfault_of_another_libvirtd_main_thread_is_not_ours(tmp_path):
    # a second libvirtd on the host (another test's, a nested one) crashes: its main thread's id is its pid
    proc = fake_proc(tmp_path, {2382: (2382, "Z"), DAEMON: (DAEMON, "Z")})
    assert not is_daemon_thread(2382, daemon_pid=DAEMON, known_tids=KNOWN, proc_root=proc)
    assert is_daemon_thread(DAEMON, daemon_pid=DAEMON, known_tids=frozenset(), proc_root=proc)


def test_the_thread_group_and_running_state_are_read_from_the_real_proc():
    seen: dict[str, int | None] = {}
    worker = threading.Thread(target=lambda: seen.update(tid=threading.get_native_id(),
                                                         group=thread_group(threading.get_native_id())))
    worker.start()
    worker.join()
    assert seen["tid"] != os.getpid() and seen["group"] == os.getpid()
    for _ in range(1000):  # join() returns when Python is done with the thread; the kernel takes a moment more
        if thread_group(seen["tid"]) != os.getpid():
            break
        time.sleep(0.01)
    assert thread_group(seen["tid"]) != os.getpid()  # it ended: gone from /proc, or its id already reused
    assert process_running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
        time.sleep(0.01)
    assert not process_running(child.pid)  # a zombie: exited, not reaped yet
    child.wait()
    assert not process_running(child.pid)


def test_thread_names_are_read_from_proc_the_way_kmsg_shows_them(tmp_path):
    for tid, comm in {100: b"libvirtd\n", 101: b"vm-backup-node\xc3\n"}.items():
        (tmp_path / "100" / "task" / str(tid)).mkdir(parents=True)
        (tmp_path / "100" / "task" / str(tid) / "comm").write_bytes(comm)
    threads = daemon_threads(100, proc_root=tmp_path)
    assert threads == {100: "libvirtd", 101: "vm-backup-node\ufffd"}
    assert threads[101] == fixture_segfaults("real-segfaults.txt")[2].thread_name
    assert daemon_threads(999, proc_root=tmp_path) == {}


def test_our_own_threads_are_listed_from_the_real_proc():
    assert os.getpid() in daemon_threads(os.getpid())


def test_a_records_wall_time_comes_from_the_monotonic_offset():
    assert wall_time_ns(5_000_000, now_monotonic_ns=7_000_000_000, now_wall_ns=1_000_000_000_000) == 998_000_000_000


# --- the reader on files and FIFOs ---------------------------------------------------------------------------------

def test_the_reader_reads_saved_records_from_a_file_from_its_start():
    with KmsgReader(FIXTURES / "other-faults.txt", from_start=True) as reader:
        records = reader.read_new()
        assert [r.seq for r in records] == [2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2010]
        assert reader.malformed_total == 1 and reader.lost_total == 1  # 2009 never came
        assert reader.read_new() == []


def test_records_cut_across_reads_are_joined(monkeypatch):
    monkeypatch.setattr(kmsg, "READ_BUFFER_BYTES", 7)
    with KmsgReader(FIXTURES / "real-segfaults.txt", from_start=True) as reader:
        assert [r.seq for r in reader.read_new()] == [348, 349, 358, 359, 360, 361]


def test_a_gap_in_sequence_numbers_counts_the_records_lost(tmp_path):
    saved = tmp_path / "kmsg"
    saved.write_text("6,10,1,-;a\n6,11,2,-;b\n6,15,3,-;c\n")
    with KmsgReader(saved, from_start=True) as reader:
        assert [r.message for r in reader.read_new()] == ["a", "b", "c"] and reader.lost_total == 3


def test_an_overrun_before_the_first_record_counts_at_least_one_lost(monkeypatch, tmp_path):
    saved = tmp_path / "kmsg"
    saved.write_text("6,500,1,-;oldest still kept\n")
    replies = iter([BrokenPipeError(32, "Broken pipe"), b"6,500,1,-;oldest still kept\n", BlockingIOError(11, "")])

    def fake_read(fd, size):
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply
    reader = KmsgReader(saved)
    monkeypatch.setattr(kmsg.os, "read", fake_read)
    assert [r.seq for r in reader.read_new()] == [500]
    assert reader.lost_total == 1
    monkeypatch.undo()
    reader.close()


def test_a_fifo_is_read_as_it_is_written(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with KmsgReader(fifo) as reader:  # no seek on a FIFO: it only has new data anyway
        writer = os.open(fifo, os.O_WRONLY)
        os.write(writer, b"6,1,1,-;first\n6,2,2,-;second\n")
        assert [r.message for r in reader.read_new()] == ["first", "second"]
        os.close(writer)


def test_a_kernel_log_that_cannot_be_opened_raises_kmsg_unavailable_with_the_reason(tmp_path):
    with pytest.raises(KmsgUnavailable, match="No such file or directory"):
        KmsgReader(tmp_path / "no-kmsg")


def test_reading_after_close_is_an_error(tmp_path):
    reader = KmsgReader(FIXTURES / "real-segfaults.txt")
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read_new()


# --- the real /dev/kmsg (root) -------------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(not IS_ROOT, reason="/dev/kmsg is readable and writable by root only")


def write_kmsg(text: str) -> None:
    """Write one record as user space does (the kernel files it under LOG_USER)."""
    with open("/dev/kmsg", "w") as handle:  # one open per record: writes are rate-limited per open file
        handle.write(text + "\n")


def read_until(reader: KmsgReader, marker: str, timeout: float = 5.0) -> list[KmsgRecord]:
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        seen += reader.read_new()
        if any(marker in r.message for r in seen):
            return seen
        time.sleep(0.02)
    return seen


@needs_root
def test_the_real_kernel_log_can_be_read_from_its_oldest_kept_record():
    with KmsgReader(from_start=True, max_records_per_read=50) as reader:
        records = reader.read_new()
    assert 1 <= len(records) <= 50
    assert [r.seq for r in records] == sorted(r.seq for r in records)


@needs_root
def test_a_record_written_after_opening_is_read_and_nothing_from_before():
    before = f"virtwatch-test: before {uuid.uuid4()}"
    after = f"virtwatch-test: after {uuid.uuid4()}"
    write_kmsg(f"<3>{before}")
    with KmsgReader() as reader:
        write_kmsg(f"<3>{after}")
        seen = read_until(reader, after)
        ours = [r for r in seen if r.message == after]
        assert len(ours) == 1 and not any(before in r.message for r in seen)
        assert (ours[0].level, ours[0].facility, ours[0].from_kernel) == (3, 1, False)
        assert abs(ours[0].monotonic_usec * 1000 - time.monotonic_ns()) < 5 * 10**9  # printk time ~ CLOCK_MONOTONIC
        assert not any(after in r.message for r in reader.read_new())  # EAGAIN: nothing more, and no wait


@needs_root
def test_a_segfault_line_written_to_the_kernel_log_parses_but_is_not_from_the_kernel():
    tid = 100000 + uuid.uuid4().int % 100000
    line = (f"libvirtd[{tid}]: segfault at 0 ip 00007f3a1c2b4e10 sp 00007ffd0bffe8c0 error 4 in "
            f"libvirt.so.0.9000.0[10a647,7f3a1c200000+1c3000] likely on CPU 1 (core 1, socket 0)")
    with KmsgReader() as reader:
        write_kmsg(f"<6>{line}")
        record = next(r for r in read_until(reader, f"libvirtd[{tid}]") if r.message == line)
    segfault = parse_segfault(record.message)
    assert (segfault.thread_name, segfault.tid, segfault.region, segfault.region_offset) == (
        "libvirtd", tid, "libvirt.so.0.9000.0", 0x10a647)
    assert not record.from_kernel  # user space cannot write facility 0: a real segfault line has it

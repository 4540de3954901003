"""libvirtd's log: the line parser reads the real format exactly; the tailer follows the file as logrotate treats it.

fixtures/logs/real-session.log is a real libvirtd 9.0 log from this sandbox; failures.log holds real-looking
lines of the other failures, multi-line QEMU errors, malformed lines and non-ASCII domain names.
"""

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from collector import daemon_log
from collector.daemon_log import LogRecord, LogTailer, is_header_start, parse_line, parse_lines, parse_text
from collector.event_points import cut_marker
from collector.signatures import classify

LOGS = Path(__file__).parent / "fixtures" / "logs"

LOCK_TIMEOUT = ("2026-11-23 20:02:49.561+0000: 21473: error : virDomainObjBeginJobInternal:468 : Timed out during "
                "operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainBlockResize)")
T0_NS = 1795464169561000000  # 2026-11-23 20:02:49.561 UTC


def line(n: int, message: str = "End of file while reading data: Input/output error", level: str = "error") -> str:
    """A header line n seconds after T0."""
    return f"2026-11-23 20:03:{n:02d}.000+0000: 21460: {level} : virNetSocketReadWire:1793 : {message}\n"


# --- the pure parser ---------------------------------------------------------------------------------------------

def test_a_header_line_gives_time_thread_level_function_and_message():
    assert parse_line(LOCK_TIMEOUT) == LogRecord(
        time_ns=T0_NS, thread_id=21473, level="error", function="virDomainObjBeginJobInternal",
        message="Timed out during operation: cannot acquire state change lock (held by "
                "monitor=remoteDispatchDomainBlockResize)",
        function_line=468)


def test_a_header_without_a_function_keeps_the_whole_message():
    record = parse_line("2026-11-23 21:17:37.713+0000: 784: info : libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 "
                        "(Debian)\n")
    assert (record.function, record.function_line) == (None, None)
    assert record.message == "libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 (Debian)"


def test_the_utc_offset_is_applied_to_the_time():
    record = parse_line("2026-11-23 15:02:49.561-0500: 1: warning : f:1 : m")
    assert record.time_ns == T0_NS


@pytest.mark.parametrize("text", [
    "2026-11-23T20:01:12.290455Z qemu-system-x86_64: warning: host doesn't support requested feature",
    "2026-11-23 20:08:30.000+0000: 21460: err",
    "2026-11-23 20:08:31.000+0000: 21460: fatal : f:1 : a level libvirt does not have",
    "2026-13-40 20:08:31.000+0000: 21460: error : f:1 : an impossible date",
    "",
    "plain text",
])
def test_text_that_is_not_a_whole_header_is_not_a_record(text):
    assert parse_line(text) is None


def test_a_qemu_timestamp_does_not_start_a_record_but_libvirtds_does():
    assert not is_header_start("2026-11-23T20:01:12.290455Z qemu-system-x86_64: warning")
    assert is_header_start("2026-11-23 20:08:30.000+0000: 21460: err")


def test_lines_without_a_header_continue_the_record_before_them():
    records, malformed = parse_text((LOGS / "failures.log").read_text(encoding="utf-8"))
    multi = [r for r in records if "daten-größe" in r.message]
    assert malformed == 2
    assert len(multi) == 1 and multi[0].message.endswith("ECX.svm [bit 2]")
    assert multi[0].message.count("\n") == 1


def test_a_message_ending_in_a_blank_line_is_trimmed():
    records, malformed = parse_text((LOGS / "real-session.log").read_text(encoding="utf-8"))
    dmidecode = [r for r in records if "dmidecode" in r.message]
    assert malformed == 0 and len(records) == 29
    assert dmidecode[0].message.endswith("/dev/mem: No such file or directory")


def test_unicode_domain_names_come_through_unchanged():
    records, _ = parse_text((LOGS / "failures.log").read_text(encoding="utf-8"))
    messages = "\n".join(r.message for r in records)
    assert "for domain 数据库-主;" in messages and "(vm='web-ünïcødé-01')" in messages


def test_malformed_lines_are_counted_and_the_rest_still_parses():
    records, malformed = parse_lines([
        "a continuation with nothing before it",
        "2026-11-23 20:08:30.000+0000: 21460: err",
        line(1).rstrip("\n"),
        "2026-11-23 20:08:31.000+0000: 21460: fatal : f:1 : no such level",
        line(2).rstrip("\n"),
    ])
    assert malformed == 3
    assert [r.time_ns - T0_NS for r in records] == [11_439_000_000, 12_439_000_000]  # 20:03:01 and 20:03:02


def test_only_warnings_and_errors_are_problems():
    levels = {r.level: r.is_problem for r in parse_text((LOGS / "real-session.log").read_text())[0]}
    assert levels == {"info": False, "error": True, "warning": True}


# --- the tailer ----------------------------------------------------------------------------------------------------

def append(path: Path, text: str | bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)


def messages(records) -> list[str]:
    return [r.message for r in records]


def test_the_tailer_starts_at_the_end_and_returns_only_what_is_appended(tmp_path):
    log = tmp_path / "libvirtd.log"
    append(log, line(1, "old history"))
    tailer = LogTailer(log)
    assert tailer.read_new() == ([], 0)
    append(log, line(2, "new"))
    assert messages(tailer.read_new()[0]) == ["new"]
    assert tailer.read_new() == ([], 0)


def test_from_start_reads_the_history_too(tmp_path):
    log = tmp_path / "libvirtd.log"
    append(log, line(1, "old") + line(2, "older"))
    assert messages(LogTailer(log, from_start=True).read_new()[0]) == ["old", "older"]


def test_a_missing_file_returns_nothing_until_it_appears_and_is_then_read_from_its_start(tmp_path):
    log = tmp_path / "libvirtd.log"
    tailer = LogTailer(log)
    assert tailer.read_new() == ([], 0) and tailer.missing
    append(log, line(1, "first"))
    assert messages(tailer.read_new()[0]) == ["first"]
    assert not tailer.missing


def test_a_missing_directory_is_missing_too(tmp_path):
    tailer = LogTailer(tmp_path / "no-such-dir" / "libvirtd.log")
    assert tailer.read_new() == ([], 0) and tailer.missing


def test_an_unfinished_last_line_is_kept_until_its_newline_arrives(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    append(log, line(1, "done") + line(2, "half of it")[:40])
    assert messages(tailer.read_new()[0]) == ["done"]
    append(log, line(2, "half of it")[40:])
    assert messages(tailer.read_new()[0]) == ["half of it"]


def test_a_record_whose_continuation_is_still_being_written_is_held_back(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    append(log, line(1, "internal error: qemu unexpectedly closed the monitor: first") + "2026-11-23T20:03:01.1Z qe")
    assert tailer.read_new() == ([], 0)
    append(log, "mu-system-x86_64: second\n")
    assert messages(tailer.read_new()[0]) == ["internal error: qemu unexpectedly closed the monitor: first\n"
                                              "2026-11-23T20:03:01.1Z qemu-system-x86_64: second"]


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    append(log, line(1, "domain ").encode()[:-1] + b"\xff\xfe caf\xc3\n")
    assert messages(tailer.read_new()[0]) == ["domain \ufffd\ufffd caf\ufffd"]


def test_malformed_lines_in_the_file_are_counted(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    append(log, "2026-11-23 20:08:30.000+0000: 21460: err\n" + line(1, "fine"))
    records, malformed = tailer.read_new()
    assert messages(records) == ["fine"] and malformed == 1


def test_rotation_by_rename_finishes_the_old_file_then_reads_the_new_one_from_its_start(tmp_path):
    log = tmp_path / "libvirtd.log"
    append(log, line(1, "history"))
    tailer = LogTailer(log)
    append(log, line(2, "last words in the old file"))
    log.rename(tmp_path / "libvirtd.log.1")
    append(log, line(3, "first in the new file"))
    assert messages(tailer.read_new()[0]) == ["last words in the old file", "first in the new file"]
    assert tailer.rotations_total == 1
    append(log, line(4, "more"))
    assert messages(tailer.read_new()[0]) == ["more"]


def test_while_the_path_is_missing_the_renamed_file_is_still_followed(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    log.rename(tmp_path / "libvirtd.log.1")
    append(tmp_path / "libvirtd.log.1", line(1, "the daemon still writes here"))
    assert messages(tailer.read_new()[0]) == ["the daemon still writes here"]
    assert tailer.missing
    append(log, line(2, "new file"))
    assert messages(tailer.read_new()[0]) == ["new file"] and not tailer.missing


def test_copytruncate_to_a_shorter_file_starts_over(tmp_path):
    log = tmp_path / "libvirtd.log"
    append(log, line(1, "a long history line " * 5))
    tailer = LogTailer(log)
    os.truncate(log, 0)
    append(log, line(2, "after"))
    assert messages(tailer.read_new()[0]) == ["after"]
    assert tailer.truncations_total == 1


def test_copytruncate_then_more_writes_than_before_is_noticed_by_the_changed_first_line(tmp_path):
    log = tmp_path / "libvirtd.log"
    append(log, line(1, "short"))
    tailer = LogTailer(log)
    os.truncate(log, 0)
    append(log, line(2, "after rotation, much longer than before " * 4) + line(3, "and more"))
    assert messages(tailer.read_new()[0]) == ["after rotation, much longer than before " * 4, "and more"]
    assert tailer.truncations_total == 1


def test_a_record_held_back_when_the_file_is_truncated_is_still_returned(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    append(log, line(1, "held back") + "unfinished continuation")
    assert tailer.read_new() == ([], 0)
    os.truncate(log, 0)
    append(log, line(2, "after"))
    assert messages(tailer.read_new()[0]) == ["held back\nunfinished continuation", "after"]


def test_a_record_held_back_too_long_to_buffer_is_taken_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(LogTailer, "MAX_PENDING_BYTES", 100)
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    append(log, line(1, "x" * 200) + "an unfinished continuation")
    assert messages(tailer.read_new()[0]) == ["x" * 200]
    append(log, "\n")
    assert tailer.read_new() == ([], 1)  # the continuation came after its record was taken: nothing to continue


# --- bounded lines: a flooded log costs at most MAX_LINE_BYTES a line ---------------------------------------------

def test_a_15_mib_line_is_cut_to_the_cap_with_the_bytes_cut_counted_and_never_held_whole(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    header = line(1, "")[:-1]
    huge = header + "x" * (15 << 20)
    with open(log, "ab") as handle:
        for start in range(0, len(huge), 1 << 20):  # written the way a daemon's many writes would land
            handle.write(huge[start:start + (1 << 20)].encode())
        handle.write(b"\n" + line(2, "the next record").encode())
    tracemalloc.start()
    try:
        records, malformed = tailer.read_new()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # chunks of READ_CHUNK_BYTES and one capped line, never the 15 MiB
    cap = LogTailer.MAX_LINE_BYTES
    assert malformed == 0 and messages(records) == [
        "x" * (cap - len(header)) + cut_marker(len(huge) - cap), "the next record"]
    assert tailer.lines_cut_total == 1


def test_a_line_cut_inside_a_character_keeps_whole_characters_and_counts_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(LogTailer, "MAX_LINE_BYTES", 100)
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    header = line(1, "")[:-1]
    assert (100 - len(header)) % 2 == 1  # "ü" is two bytes: the cap falls inside one
    append(log, header + "ü" * 100 + "\n")
    [record], _ = tailer.read_new()
    kept = (100 - len(header)) // 2
    assert record.message == "ü" * kept + cut_marker(200 - 2 * kept)
    assert "\ufffd" not in record.message


def test_an_unfinished_long_line_is_held_only_up_to_the_cap_and_counted_when_its_newline_comes(tmp_path, monkeypatch):
    monkeypatch.setattr(LogTailer, "MAX_LINE_BYTES", 100)
    monkeypatch.setattr(LogTailer, "READ_CHUNK_BYTES", 7)
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    header = line(1, "")[:-1]
    append(log, header + "y" * 300)
    assert tailer.read_new() == ([], 0)
    append(log, "z" * 400)
    assert tailer.read_new() == ([], 0)
    append(log, "\n")
    [record], _ = tailer.read_new()
    assert record.message == "y" * (100 - len(header)) + cut_marker(len(header) + 700 - 100)


def test_a_cut_line_held_when_the_file_rotates_is_finished_with_its_count(tmp_path, monkeypatch):
    monkeypatch.setattr(LogTailer, "MAX_LINE_BYTES", 100)
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    header = line(1, "")[:-1]
    append(log, header + "w" * 150)  # the daemon died mid-write
    assert tailer.read_new() == ([], 0)
    log.rename(tmp_path / "libvirtd.log.1")
    append(log, line(2, "new file"))
    assert messages(tailer.read_new()[0]) == ["w" * (100 - len(header)) + cut_marker(len(header) + 150 - 100),
                                              "new file"]


def test_a_big_backlog_comes_in_bounded_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(LogTailer, "MAX_READ_BYTES", 300)
    log = tmp_path / "libvirtd.log"
    log.touch()
    tailer = LogTailer(log)
    append(log, "".join(line(n, f"record {n}") for n in range(10)))
    seen = []
    for _ in range(10):
        seen += messages(tailer.read_new()[0])
    assert seen == [f"record {n}" for n in range(10)]


def test_no_permission_to_read_is_raised_not_taken_for_missing(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(daemon_log.os, "open", refuse)
    with pytest.raises(PermissionError):
        LogTailer(tmp_path / "libvirtd.log")


# --- a real daemon ------------------------------------------------------------------------------------------------

def wait_records(tailer: LogTailer, want, timeout: float = 10.0) -> list[LogRecord]:
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        seen += tailer.read_new()[0]
        if want(seen):
            return seen
        time.sleep(0.1)
    return seen


@pytest.mark.slow
def test_tailing_a_real_daemons_log_sees_a_client_that_exits_without_closing_and_a_restart(libvirtd):
    tailer = LogTailer(libvirtd.log_path)  # the start-up lines already there are history
    assert tailer.read_new() == ([], 0)
    exit_without_close = ("import libvirt, os, sys\n"
                          "libvirt.registerErrorHandler(lambda c, e: None, None)\n"
                          "conn = libvirt.open(sys.argv[1])\n"  # held: a dropped temporary closes cleanly
                          "conn.getLibVersion()\n"
                          "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", exit_without_close, libvirtd.uri_test], check=True, timeout=30)
    seen = wait_records(tailer, lambda rs: any(classify(r.message) for r in rs))
    found = [classify(r.message) for r in seen]
    assert [s.name for s in found if s] == ["client_eof"] and found[-1].severity == "info"

    libvirtd.restart()  # the new daemon appends to the same file: its start-up lines are new now
    seen = wait_records(tailer, lambda rs: any(r.message.startswith("libvirt version") for r in rs))
    dmidecode = [r for r in seen if "dmidecode" in r.message]
    assert dmidecode and dmidecode[0].is_problem and classify(dmidecode[0].message) is None
    assert all(found.severity == "info" for r in seen if (found := classify(r.message)))  # the start-up probe's EOF

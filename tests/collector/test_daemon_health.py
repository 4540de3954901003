"""Daemon health: log signatures become events, error lines are counted, the kernel log is read for real."""

from __future__ import annotations

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

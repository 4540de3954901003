"""The failure signature table: real libvirtd messages classify as the failure they show, harmless ones not at all.

Messages come from a real libvirtd 9.0 session in this sandbox (fixtures/logs/real-session.log: client EOFs, a
keepalive timeout, a lock timeout on a SIGSTOPped QEMU, a killed QEMU, a restart re-attaching a guest) and from
real-looking lines of the other failures (fixtures/logs/failures.log).
"""

import re
from collections import Counter
from pathlib import Path

import pytest

from collector.daemon_log import parse_text
from collector.signatures import IGNORED, SIGNATURES, Signature, by_name, classify, ignored, match
from tsdb.schema import EVENT_KINDS, SEVERITIES

LOGS = Path(__file__).parent / "fixtures" / "logs"

EXAMPLES = [
    # (message, signature name or None)
    ("Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchConnectGetAll"
     "DomainStats)", "lock_timeout"),
    ("operation failed: cannot acquire state change lock (held by monitor=remoteDispatchDomainGetJobInfo) due to "
     "max_queued limit", "lock_timeout"),
    ("internal error: connection closed due to keepalive timeout", "keepalive_timeout"),
    ("Unable to read from monitor: Connection reset by peer", "monitor_error"),
    ("Unable to write to monitor: Broken pipe", "monitor_error"),
    ("internal error: qemu unexpectedly closed the monitor: 2026-11-23T20:01:12.290113Z qemu-system-x86_64: "
     "-vnc 10.144.85.92:0: Failed to start VNC server", "monitor_error"),
    ("internal error: QEMU unexpectedly closed the monitor (vm='win11'): vfio 0000:03:00.0: group 83 is not "
     "viable", "monitor_error"),
    ("monitor socket did not show up: No such file or directory", "monitor_error"),
    ("RPC error : Too many active clients (120), dropping connection from 192.0.2.15;49822", "too_many_clients"),
    ("Failed to make pipe: Too many open files", "too_many_files"),
    ("End of file while reading data: Input/output error", "client_eof"),
    ("Cannot recv data: Connection reset by peer", "client_eof"),
    ("Cannot write data: Broken pipe", "client_eof"),
    ("cannot fork child process: Cannot allocate memory", "out_of_memory"),
    ("internal error: Out of memory", "out_of_memory"),
    ("cannot write data to file '/run/libvirt/qemu/web-01.xml.new': No space left on device", "no_space"),
    ("Failed to open file '/var/lib/libvirt/images/web-01.qcow2': Input/output error", "io_error"),
    ("Failed to terminate process 23110 with SIGKILL: Device or resource busy", "process_unkillable"),
    ("Guest agent is not responding: QEMU guest agent is not connected", "agent_unresponsive"),
    ("Failed to autostart VM 'db-replica': unsupported configuration: host doesn't support VMX", "autostart_failed"),
    ("Failed to connect socket to '/var/run/libvirt/virtlogd-sock': Connection refused", "virtlogd_unreachable"),
    ("XML error: Invalid value for attribute 'type' in element 'graphics': 'none'.", None),
    ("Domain id=1 name='web-01' uuid=3c6e1e2a-8f1d-4b7e-9f0a-2d5c8e4b1a77 is tainted: high-privileges", None),
]


@pytest.mark.parametrize("message, expected", EXAMPLES, ids=[e[1] or "nothing" for e in EXAMPLES])
def test_a_known_message_classifies_as_its_signature(message, expected):
    found = classify(message)
    assert (found.name if found else None) == expected


@pytest.mark.parametrize("message", [
    "internal error: Child process (/usr/sbin/dmidecode -q -t 0,1,2,3,4,11,17) unexpected exit status 1: "
    "/dev/mem: No such file or directory",
    "Unable to read from '/sys/fs/cgroup/cpuset/machine/qemu-3-vm-long-name-berlnge.libvirt-qemu/cgroup.threads'"
    ": No such file or directory",
    "Failed to open file '/sys/fs/cgroup/cpuset/machine/qemu-3-web.libvirt-qemu/cgroup.threads': No such file or "
    "directory",
    "cannot parse process status data",
    "Invalid XATTR timestamp detected on /var/lib/libvirt/images/win10.qcow2 secdriver=dac",
])
def test_harmless_sandbox_messages_never_classify_as_failures(message):
    assert ignored(message) is not None
    assert classify(message) is None
    assert match(message) is None


def test_an_ignored_cgroup_read_is_not_taken_for_a_monitor_read():
    message = "Unable to read from '/sys/fs/cgroup/cpuset/machine/x.libvirt-qemu/cgroup.threads': No such file"
    assert by_name("monitor_error").pattern.search("Unable to read from monitor: x")
    assert classify(message) is None


def test_a_client_disconnect_is_info_and_not_a_disk_io_error():
    found = classify("End of file while reading data: Input/output error")
    assert found.name == "client_eof" and found.severity == "info"


def test_resource_exhaustion_wins_over_the_monitor_error_it_causes():
    message = ("internal error: qemu unexpectedly closed the monitor: 2026-11-23T20:01:30.761002Z "
               "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory")
    assert classify(message).name == "out_of_memory"


def test_a_monitor_error_ending_in_an_io_error_stays_a_monitor_error():
    message = "internal error: qemu unexpectedly closed the monitor: Could not open '/x.qcow2': Input/output error"
    assert classify(message).name == "monitor_error"


def test_an_autostart_failure_wins_over_the_virtlogd_error_inside_it():
    found = match("Failed to autostart VM 'db-replica': Failed to connect socket to '/run/libvirt/virtlogd-sock': "
                  "Connection refused")
    assert (found.signature.name, found.domain) == ("autostart_failed", "db-replica")


@pytest.mark.parametrize("message, name, domain", [
    ("Cannot start job (query, none, none) in API remoteDispatchConnectGetAllDomainStats for domain web-ünïcødé-01; "
     "current job is (query, none, none) owned by (776 remoteDispatchConnectGetAllDomainStats, 0 <null>, 0 <null> "
     "(flags=0x0)) for (33s, 0s, 0s)", "job_wait", "web-ünïcødé-01"),
    ("Cannot start job (modify, none, none) for domain a; b; current job is (query, none) owned by (1, 0)",
     "job_wait", "a; b"),
    ("internal error: End of file from qemu monitor (vm='数据库-主')", "monitor_error", "数据库-主"),
    ("Unable to read from monitor: Connection reset by peer", "monitor_error", None),
])
def test_the_domain_named_in_a_message_is_picked_out(message, name, domain):
    found = match(message)
    assert (found.signature.name, found.domain) == (name, domain)


def test_the_real_session_log_classifies_as_what_happened_in_it():
    records, malformed = parse_text((LOGS / "real-session.log").read_text(encoding="utf-8"))
    seen = Counter(found.name for r in records if r.is_problem and (found := classify(r.message)))
    assert malformed == 0
    assert seen == {"client_eof": 10, "keepalive_timeout": 1, "job_wait": 1, "lock_timeout": 1, "monitor_error": 1}


def test_the_failures_log_shows_every_signature_in_the_table():
    records, _ = parse_text((LOGS / "failures.log").read_text(encoding="utf-8"))
    seen = {found.name for r in records if (found := classify(r.message))}
    assert seen == {s.name for s in SIGNATURES}


def test_every_signature_has_a_unique_name_a_schema_severity_and_a_libvirt_source():
    names = [s.name for s in SIGNATURES]
    assert len(names) == len(set(names))
    for signature in SIGNATURES:
        assert signature.severity in SEVERITIES
        assert "src/" in signature.source or signature.source.startswith("errno"), signature.name
        assert signature.description and signature.event_kind == f"log_{signature.name}"
    assert "log_error" in EVENT_KINDS  # the schema's umbrella kind for these


def test_every_ignored_entry_says_why_and_where():
    for entry in IGNORED:
        assert entry.reason and "src/" in entry.source


def test_a_signature_with_an_unknown_severity_is_refused():
    with pytest.raises(ValueError, match="severity"):
        Signature("x", re.compile("x"), "fatal", "d", "src/x.c")


def test_a_domain_pattern_without_a_domain_group_is_refused():
    with pytest.raises(ValueError, match="domain"):
        Signature("x", re.compile("x"), "info", "d", "src/x.c", re.compile("vm='(.*)'"))


def test_looking_up_an_unknown_signature_is_an_error():
    with pytest.raises(KeyError):
        by_name("no_such_signature")

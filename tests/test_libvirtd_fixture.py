"""The private libvirtd fixture itself: it answers, runs real QEMU guests, survives faults, and cleans up."""

import os
import signal
import subprocess
import time

import libvirt
import pytest

from libvirtd import cmdline, pid_alive, process_state

pytestmark = pytest.mark.slow

NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
STATS_TIMEOUT_SECONDS = 30.0


def stats_by_name(uri: str) -> dict[str, dict]:
    """getAllDomainStats (NOWAIT) through `uri`, keyed by domain name."""
    conn = libvirt.open(uri)
    try:
        return {dom.name(): stats for dom, stats in conn.getAllDomainStats(flags=NOWAIT)}
    finally:
        conn.close()


def wait_for_stats(uri: str, names, keys) -> dict[str, dict]:
    """Poll until every named domain reports every key (balloon stats come a moment after boot)."""
    deadline = time.monotonic() + STATS_TIMEOUT_SECONDS
    while True:
        stats = stats_by_name(uri)
        if all(key in stats.get(name, {}) for name in names for key in keys):
            return stats
        if time.monotonic() > deadline:
            pytest.fail(f"stats {keys} never came for all of {names}: {stats}")
        time.sleep(0.2)


def active_domain_names(uri: str) -> set[str]:
    """Names of the running domains through `uri`."""
    conn = libvirt.open(uri)
    try:
        return {dom.name() for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
    finally:
        conn.close()


def test_daemon_answers_all_domain_stats_through_the_test_driver(libvirtd):
    stats = stats_by_name(libvirtd.uri_test)

    assert stats["test"]["state.state"] == libvirt.VIR_DOMAIN_RUNNING
    assert cmdline(libvirtd.pid)[0].endswith("libvirtd")
    assert str(libvirtd.pidfile) in cmdline(libvirtd.pid)
    log = libvirtd.log_path.read_text()
    assert ": warning : " in log or ": error : " in log  # warnings and errors reach the log file


def test_two_qemu_guests_report_cpu_and_balloon_stats(libvirtd_with_guests):
    daemon, names = libvirtd_with_guests

    stats = wait_for_stats(daemon.uri_qemu, names, ["cpu.time", "balloon.current", "balloon.rss", "block.count"])

    assert set(stats) == set(names)  # the hostile name round-trips exactly
    for name in names:
        assert stats[name]["state.state"] == libvirt.VIR_DOMAIN_RUNNING
        assert stats[name]["cpu.time"] > 0
        assert stats[name]["balloon.current"] == 64 * 1024
        assert stats[name]["block.count"] == 1
    pids = [daemon.qemu_pid(name) for name in names]
    assert all(pid_alive(pid) for pid in pids) and len(set(pids)) == 2
    accel = "kvm" if daemon.domain_type == "kvm" else "tcg"
    assert all(accel in " ".join(cmdline(pid)) for pid in pids)


def test_sigkill_then_restart_brings_the_daemon_back_with_guests_running(libvirtd_with_guests):
    daemon, names = libvirtd_with_guests
    old_pid, qemu_pids = daemon.pid, [daemon.qemu_pid(name) for name in names]

    daemon.kill(signal.SIGKILL)

    assert not pid_alive(old_pid) and daemon.pid is None
    with pytest.raises(libvirt.libvirtError):
        libvirt.open(daemon.uri_test)
    assert all(pid_alive(pid) for pid in qemu_pids)  # guests outlive the daemon

    daemon.restart()

    assert daemon.pid not in (None, old_pid)
    assert active_domain_names(daemon.uri_qemu) == set(names)
    assert [daemon.qemu_pid(name) for name in names] == qemu_pids  # the same QEMU processes, re-attached
    wait_for_stats(daemon.uri_qemu, names, ["cpu.time"])


def test_sigstop_then_sigcont(libvirtd):
    pid = libvirtd.pid

    libvirtd.kill(signal.SIGSTOP)
    assert process_state(pid) == "T"
    libvirtd.kill(signal.SIGCONT)

    assert process_state(pid) != "T"
    assert libvirtd.pid == pid
    assert "test" in stats_by_name(libvirtd.uri_test)


def test_admin_socket_answers_virt_admin(libvirtd):
    result = subprocess.run(["virt-admin", "-c", libvirtd.admin_uri, "srv-threadpool-info", "libvirtd"],
                            capture_output=True, text=True, timeout=30)

    assert result.returncode == 0, result.stderr
    values = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    values = {key.strip(): value.strip() for key, value in values.items()}
    assert (values["minWorkers"], values["maxWorkers"], values["prioWorkers"]) == ("2", "10", "2")


def test_stop_leaves_no_process_and_no_cgroup(libvirtd_with_guests):
    daemon, names = libvirtd_with_guests
    pids = [daemon.pid, daemon.virtlogd_pid] + [daemon.qemu_pid(name) for name in names]
    assert all(pids)
    uuids = list(daemon.guests.values())

    daemon.stop()

    assert not any(pid_alive(pid) for pid in pids)
    assert daemon.pid is None and daemon.virtlogd_pid is None and daemon.qemu_pids() == []
    assert not any(uuid in cmdline(int(pid)) for pid in os.listdir("/proc") if pid.isdigit() for uuid in uuids)
    assert not any(path.exists() for path in daemon.cgroup_dirs())
    daemon.stop()  # a second stop (the fixture's) is harmless

"""The agent tells the truth when libvirtd is at its worst: a REAL private libvirtd and REAL QEMU guests,
stopped and killed the way production does it. No wall-clock limits: each collection is bounded by the
agent's own deadlines, and the tests count collections."""

from __future__ import annotations

import os
import signal
import time

import pytest

from collector.agent import Agent
from collector.daemon_health import DaemonHealth
from collector.libvirt_source import LibvirtSource
from tsdb import open_store

pytestmark = pytest.mark.slow
PROBE_DEADLINE_SECONDS = 2.0


@pytest.fixture
def store(tmp_path):
    with open_store(f"duckdb://{tmp_path}/faults.duckdb") as store:
        yield store


def make_agent(store, daemon, uri: str) -> Agent:
    source = LibvirtSource(uri, call_timeout_seconds=PROBE_DEADLINE_SECONDS, keepalive_interval_seconds=1,
                           keepalive_count=1)
    health = DaemonHealth(daemon.pidfile, daemon.admin_uri, admin_timeout_seconds=1.0)
    return Agent(store, source, "hv-fault", interval_seconds=1.0, daemon_health=health)


def kinds(store) -> list[str]:
    return store.events(0)["kind"].tolist()


def daemon_rows(store):
    return store.query("libvirtd", ["up", "hung", "probe_ok", "pid", "restarts_total", "workers_max"], 0, 2**62)


def test_a_stopped_daemon_is_reported_hung_while_host_and_agent_metrics_keep_coming(store, libvirtd):
    agent = make_agent(store, libvirtd, libvirtd.uri_test)
    try:
        assert agent.collect_and_write()
        libvirtd.kill(signal.SIGSTOP)
        assert agent.collect_and_write()
        assert agent.collect_and_write()
        libvirtd.kill(signal.SIGCONT)
        assert agent.collect_and_write()
    finally:
        libvirtd.kill(signal.SIGCONT)
        agent.source.close()
        agent.daemon_health.close()
    rows = daemon_rows(store)
    assert rows["hung"].tolist() == [0, 1, 1, 0]
    assert rows["probe_ok"].tolist() == [1, 0, 0, 1]
    assert rows["workers_max"].iloc[0] == 10  # the admin API answered before the hang
    events = store.events(0)
    order = events["kind"].tolist()
    assert order[0] == "hang_start" and order[-1] == "hang_end"
    assert set(order[1:-1]) <= {"keepalive_timeout"}  # the abandoned connection's keepalive may fire first
    assert "stopped (state T)" in events["message"].iloc[0]
    assert len(store.query("host", ["load1"], 0, 2**62)) == 4
    assert len(store.query("collector", ["scrape_duration_ms"], 0, 2**62)) == 4


def test_a_killed_daemon_is_reported_down_and_its_restart_is_counted(store, libvirtd):
    agent = make_agent(store, libvirtd, libvirtd.uri_test)
    try:
        assert agent.collect_and_write()
        first_pid = libvirtd.pid
        libvirtd.kill(signal.SIGKILL)
        for _ in range(50):  # the close callback fires within milliseconds of the kill
            if agent.source.closed.is_set():
                break
            time.sleep(0.02)
        assert agent.source.closed.is_set()
        assert agent.collect_and_write()
        libvirtd.restart()
        assert agent.collect_and_write()
    finally:
        agent.source.close()
        agent.daemon_health.close()
    rows = daemon_rows(store)
    assert rows["up"].tolist() == [1, 0, 1]
    assert rows["pid"].iloc[0] == first_pid and rows["pid"].iloc[-1] == libvirtd.pid != first_pid
    assert rows["restarts_total"].iloc[-1] == 1
    events = store.events(0)
    assert events["kind"].tolist() == ["daemon_down", "daemon_up", "restart"]
    assert "connection closed: eof" in events["message"].iloc[0]
    assert f"pid {first_pid}" in events["message"].iloc[2]


def test_a_stopped_guest_is_flagged_wedged_while_the_others_are_reported_every_interval(store, libvirtd_with_guests):
    daemon, (wedged, other) = libvirtd_with_guests
    agent = make_agent(store, daemon, daemon.uri_qemu)
    qemu = daemon.qemu_pid(wedged)
    try:
        assert agent.collect_and_write()
        os.kill(qemu, signal.SIGSTOP)
        for _ in range(3):
            assert agent.collect_and_write()
    finally:
        os.kill(qemu, signal.SIGCONT)
        agent.source.close()
        agent.daemon_health.close()
    frame = store.query("domain", ["state_code", "stats_partial", "cpu_time_seconds_total"], 0, 2**62,
                        group_by=["domain"])
    others = frame[frame["domain"] == other]
    assert len(others) == 4 and others["stats_partial"].tolist() == [0, 0, 0, 0]
    flagged = frame[frame["domain"] == wedged]["stats_partial"].tolist()
    assert flagged[0] == 0 and 1 in flagged[1:]
    assert daemon_rows(store)["hung"].tolist() == [0, 0, 0, 0]
    events = store.events(0)
    assert events[["kind", "domain"]].values.tolist() == [["domain_wedged", wedged]]


def test_a_killed_guest_gives_a_domain_failed_event_naming_it(store, libvirtd_with_guests):
    daemon, (victim, _) = libvirtd_with_guests
    agent = make_agent(store, daemon, daemon.uri_qemu)
    try:
        assert agent.collect_and_write()
        os.kill(daemon.qemu_pid(victim), signal.SIGKILL)
        for _ in range(40):  # libvirt sends the STOPPED(FAILED) event about 1.6 s after the kill
            assert agent.collect_and_write()
            if "domain_failed" in kinds(store):
                break
            time.sleep(0.25)
    finally:
        agent.source.close()
        agent.daemon_health.close()
    events = store.events(0)
    failed = events[events["kind"] == "domain_failed"]
    assert failed["domain"].tolist() == [victim]
    assert victim in failed["message"].iloc[0]
    assert failed["severity"].tolist() == ["critical"]


def test_the_agent_needs_only_the_read_only_socket(store, libvirtd_with_guests):
    daemon, names = libvirtd_with_guests
    uri = daemon.uri_qemu.replace("libvirt-sock", "libvirt-sock-ro")
    source = LibvirtSource(uri, call_timeout_seconds=PROBE_DEADLINE_SECONDS, read_only=True)
    agent = Agent(store, source, "hv-ro")
    try:
        assert agent.collect_and_write()
        os.kill(daemon.qemu_pid(names[0]), signal.SIGKILL)
        for _ in range(40):
            assert agent.collect_and_write()
            if "domain_failed" in kinds(store):
                break
            time.sleep(0.25)
    finally:
        source.close()
    assert store.tag_values("domain", "domain") == sorted(names)
    assert "domain_failed" in kinds(store)  # events arrive on a read-only connection too

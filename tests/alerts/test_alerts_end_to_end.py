"""End to end, as deployed: `virtwatch agent` watching a private libvirtd writes into a real InfluxDB 1.6, and
`virtwatch alerts` pages a real HTTP receiver. SIGSTOP the daemon: the hang page arrives; SIGCONT: its resolve.
SIGKILL it: the down page arrives; restart it: the resolve. The deadlines below only bound a broken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.influxdb]
HOST = 'hv e2e, "stopped"'
GIVE_UP_SECONDS = 120  # not a speed requirement: only how long a broken run waits before failing
VIRTWATCH = str(Path(sys.executable).with_name("virtwatch"))


def toml_string(value) -> str:
    return json.dumps(str(value), ensure_ascii=False)


@pytest.fixture
def config_file(tmp_path, libvirtd, influxdb_database, http_receiver):
    server, database = influxdb_database
    path = tmp_path / "virtwatch.toml"
    path.write_text(f"""
[store]
url = "influxdb://127.0.0.1:{server.port}/{database}"

[agent]
libvirt_uri = {toml_string(libvirtd.uri_test)}
admin_uri = {toml_string(libvirtd.admin_uri)}
host_name = {toml_string(HOST)}
interval_seconds = 1
probe_timeout_seconds = 1
keepalive_interval_seconds = 1
keepalive_count = 1
daemon_pidfile = {toml_string(libvirtd.pidfile)}
spool_dir = {toml_string(tmp_path / "spool")}

[alerts]
state_dir = {toml_string(tmp_path / "alerts")}
rules_interval_seconds = 0.5
daemon_down_after_seconds = 2
daemon_hung_after_seconds = 2

[[alerts.receivers]]
name = "oncall"
type = "webhook"
url = "{http_receiver.url}/hook"
timeout_seconds = 5
""", encoding="utf-8")
    return path


@pytest.fixture
def running(config_file, tmp_path):
    """Start the agent and the alert engine as the README says; stop them (SIGTERM) afterwards."""
    processes = []
    logs = []

    def start(*args):
        log = open(tmp_path / f"{args[0]}.log", "wb")
        logs.append(log)
        processes.append(subprocess.Popen([VIRTWATCH, *args, "--config", str(config_file)], stdout=log,
                                          stderr=subprocess.STDOUT))
    start("agent")
    start("alerts")
    yield tmp_path
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait(timeout=30) == 0, (tmp_path / "agent.log").read_text() + (tmp_path / "alerts.log").read_text()
    for log in logs:
        log.close()


def wait_for(what, condition, logs: Path):
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}; agent log:\n{(logs / 'agent.log').read_text()}\n"
                f"alerts log:\n{(logs / 'alerts.log').read_text()}")


def notifications(receiver, alertname):
    """Return (status, alert status) of each notification holding alertname, in order."""
    found = []
    for request in receiver.delivered:
        body = request.json()
        for alert in body["alerts"]:
            if alert["labels"]["alertname"] == alertname:
                found.append((body["status"], alert["status"], alert))
    return found


def test_a_stopped_daemon_pages_hung_and_continuing_it_resolves_the_page(libvirtd, running, http_receiver,
                                                                          influxdb_store):
    wait_for("the agent's first points", lambda: len(influxdb_store.query("libvirtd", ["up"], 0, 2**62)), running)
    libvirtd.kill(signal.SIGSTOP)
    try:
        [(status, _, alert)] = wait_for("the hang page", lambda: notifications(http_receiver, "LibvirtdHung"),
                                        running)
    finally:
        libvirtd.kill(signal.SIGCONT)
    assert status == "firing" and alert["labels"] == {"alertname": "LibvirtdHung", "severity": "page", "host": HOST}
    assert "hung for" in alert["annotations"]["summary"]
    assert alert["annotations"]["description"].startswith(f"libvirtd on {HOST} hung ")  # the agent's diagnosis
    wait_for("the resolve", lambda: len(notifications(http_receiver, "LibvirtdHung")) == 2, running)
    resolved_ns = time.time_ns()
    # five more collections (every 1 s), ten rules rounds (every 0.5 s): nothing else may arrive about it
    wait_for("five collections after the resolve",
             lambda: len(influxdb_store.query("libvirtd", ["up"], resolved_ns, 2**62)) >= 5, running)
    assert [n[1] for n in notifications(http_receiver, "LibvirtdHung")] == ["firing", "resolved"]
    history = influxdb_store.query("alert", ["status"], 0, 2**62, where={"alertname": "LibvirtdHung"})
    assert list(history["status"]) == ["firing", "resolved"]


def test_a_killed_daemon_pages_down_and_its_restart_resolves_the_page(libvirtd, running, http_receiver,
                                                                       influxdb_store):
    wait_for("the agent's first points", lambda: len(influxdb_store.query("libvirtd", ["up"], 0, 2**62)), running)
    libvirtd.kill(signal.SIGKILL)
    [(status, _, alert)] = wait_for("the down page", lambda: notifications(http_receiver, "LibvirtdDown"), running)
    assert status == "firing" and alert["labels"]["host"] == HOST
    libvirtd.start()
    wait_for("the resolve", lambda: len(notifications(http_receiver, "LibvirtdDown")) == 2, running)
    assert [n[1] for n in notifications(http_receiver, "LibvirtdDown")] == ["firing", "resolved"]
    assert os.path.exists(running / "alerts" / "alerts.json")

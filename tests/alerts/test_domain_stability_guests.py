"""Domain stability agrees with the events on REAL guests: `virtwatch agent` watches two QEMU guests of a private
libvirtd and writes into a real InfluxDB 1.6; their QEMU processes are SIGKILLed three times (each guest started
again after its failure and watched for several collections), then the rollups and the SLI count exactly the
three failures. The waits count the agent's collections; their deadlines only bound a broken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import libvirt
import pytest

from alerts.rollups import LAG_SECONDS, MINUTE_NS, NO_ROLLUPS, roll_up
from alerts.sli import PAUSED, PAUSED_STARTING_UP, Counts, compute_sli, read_rollups
from alerts.slo import SLO
from tsdb.schema import GUEST_FAILURE_KINDS

pytestmark = [pytest.mark.slow, pytest.mark.influxdb]
HOST = 'hv guests, "kvm"=\\tail ü🙂'  # round-trips exactly (tsdb.point.clean_name changes none of it)
KILLS = 3
HELD_COLLECTIONS = 4  # collections the agent makes while a killed guest stays shut off, and again once it runs
GIVE_UP_SECONDS = 120  # not a speed requirement: only how long a broken run waits before failing
VIRTWATCH = str(Path(sys.executable).with_name("virtwatch"))
SHUT_OFF = 5  # virDomainState VIR_DOMAIN_SHUTOFF
CRASHED = 6  # virDomainState VIR_DOMAIN_CRASHED: the state the old definition looked for
RUNNING = 1
STABILITY = SLO("guest stability", 99.9, "domain_stability")


def toml_string(value) -> str:
    """A TOML basic string holding value exactly."""
    return json.dumps(str(value), ensure_ascii=False)


@pytest.fixture
def agent(tmp_path, libvirtd_with_guests, influxdb_database):
    """`virtwatch agent` on the private daemon's QEMU guests, writing every second into the InfluxDB fixture;
    stopped with SIGTERM afterwards if the test did not stop it."""
    daemon, _ = libvirtd_with_guests
    server, database = influxdb_database
    config = tmp_path / "virtwatch.toml"
    config.write_text(f"""
[store]
url = "influxdb://127.0.0.1:{server.port}/{database}"

[agent]
libvirt_uri = {toml_string(daemon.uri_qemu)}
admin_uri = {toml_string(daemon.admin_uri)}
host_name = {toml_string(HOST)}
interval_seconds = 1
daemon_pidfile = {toml_string(daemon.pidfile)}
daemon_log_file = {toml_string(daemon.log_path)}
qemu_pid_dir = {toml_string(daemon.tmp / "run" / "qemu")}
forensics_dir = {toml_string(tmp_path / "forensics")}
spool_dir = {toml_string(tmp_path / "spool")}
""", encoding="utf-8")
    agent = AgentProcess(config, tmp_path / "agent.log")
    try:
        yield agent
    finally:
        agent.stop()


class AgentProcess:
    """A running `virtwatch agent` and its log."""

    def __init__(self, config: Path, log_path: Path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([VIRTWATCH, "agent", "--config", str(config)], stdout=log,
                                            stderr=subprocess.STDOUT)

    def stop(self) -> None:
        """Stop it with SIGTERM (it finishes its collection and writes it); it must exit 0."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0, self.log_path.read_text(errors="replace")


def collections(store, since_ns: int = 0) -> int:
    """How many collections the agent has written since `since_ns` (one collector point each)."""
    return len(store.query("collector", ["scrape_duration_ms"], since_ns, 2**62, where={"host": HOST}))


def failure_events(store):
    """The guests' failure events, oldest first."""
    return store.events(0, where={"kind": list(GUEST_FAILURE_KINDS)})


def domain_points(store, since_ns: int = 0):
    """The agent's domain points since `since_ns`, oldest first."""
    frame = store.query("domain", ["state_code", "state_reason_code", "stats_partial"], since_ns, 2**62,
                        where={"host": HOST}, group_by=["domain"])
    return frame.sort_values("time", kind="mergesort", ignore_index=True)


def wait_for(what: str, condition, log_path: Path):
    """Poll `condition` until it is true; fail with the agent's log if a broken run never gets there."""
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}; agent log:\n{log_path.read_text(errors='replace')}")


def held_in_state(store, guest: str, state: int, since_ns: int) -> bool:
    """Whether the agent wrote HELD_COLLECTIONS points of `guest` in `state` since `since_ns`."""
    points = domain_points(store, since_ns)
    return int(((points["domain"] == guest) & (points["state_code"] == state)).sum()) >= HELD_COLLECTIONS


def start_guest(daemon, guest: str) -> None:
    """Start a shut-off guest again through the daemon (a new QEMU process)."""
    conn = libvirt.open(daemon.uri_qemu)
    try:
        conn.lookupByName(guest).create()
    finally:
        conn.close()


def test_the_sli_counts_every_killed_guest_once_and_nothing_before_the_first_kill(libvirtd_with_guests, agent,
                                                                                   influxdb_store):
    daemon, guests = libvirtd_with_guests
    store, log_path = influxdb_store, agent.log_path
    wait_for("both guests running for a few collections",
             lambda: all(held_in_state(store, guest, RUNNING, 0) for guest in guests), log_path)
    first_kill_ns = time.time_ns()
    victims = [guests[i % len(guests)] for i in range(KILLS)]
    for kill, victim in enumerate(victims, start=1):
        killed_ns = time.time_ns()
        os.kill(daemon.qemu_pid(victim), signal.SIGKILL)
        wait_for(f"failure event {kill}", lambda: len(failure_events(store)) >= kill, log_path)
        wait_for(f"{victim} shut off for {HELD_COLLECTIONS} collections",
                 lambda: held_in_state(store, victim, SHUT_OFF, killed_ns), log_path)
        started_ns = time.time_ns()
        start_guest(daemon, victim)
        wait_for(f"{victim} running again for {HELD_COLLECTIONS} collections",
                 lambda: held_in_state(store, victim, RUNNING, started_ns), log_path)
    last_ns = time.time_ns()
    wait_for("two more collections", lambda: collections(store, last_ns) >= 2, log_path)
    agent.stop()  # nothing lands while the store counts

    events = failure_events(store)
    assert events["domain"].tolist() == victims and set(events["host"]) == {HOST}
    points = domain_points(store)
    assert not (points["state_code"] == CRASHED).any()  # shut off (crashed or failed), never in the CRASHED state
    partial = points[points["stats_partial"] == 1]  # only guests starting up again: their job is held meanwhile
    assert ((partial["state_code"] == PAUSED) & (partial["state_reason_code"] == PAUSED_STARTING_UP)).all()
    assert collections(store, first_kill_ns) >= KILLS * 2 * HELD_COLLECTIONS

    start = (int(points["time"].astype("int64").min()) // MINUTE_NS) * MINUTE_NS
    end = (time.time_ns() // MINUTE_NS + 1) * MINUTE_NS
    done = roll_up(store, STABILITY, end + LAG_SECONDS * 10**9, NO_ROLLUPS, backfill_seconds=2 * 3600)
    assert done.minute_until_ns == end
    rolled, raw = read_rollups(store, STABILITY, start, end), compute_sli(store, STABILITY, start, end)
    assert rolled == raw
    assert rolled.counts(HOST).bad == KILLS == len(events)
    assert rolled.counts(HOST).total == len(points) + KILLS
    assert set(rolled.hosts) == {HOST}

    before = compute_sli(store, STABILITY, start, first_kill_ns).counts(HOST)
    assert before.total >= 2 * HELD_COLLECTIONS and before.bad == 0
    minutes = store.query("sli", ["good_total", "valid_total"], start, end,
                          where={"slo": STABILITY.name, "resolution": "1m"})
    bad_minutes = minutes[minutes["valid_total"] > minutes["good_total"]]
    event_minutes = events["time"].astype("int64") // MINUTE_NS * MINUTE_NS
    assert sorted(bad_minutes["time"].astype("int64").tolist()) == sorted(set(event_minutes.tolist()))
    assert sum(Counts(g, t).bad for g, t in zip(minutes["good_total"], minutes["valid_total"])) == KILLS

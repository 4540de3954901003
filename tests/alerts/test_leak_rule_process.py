"""The leak rule on a real process that leaks descriptors: a python child holding its pidfile's lock as libvirtd
does, watched by a real `virtwatch agent` (its daemon_pidfile pointed at the child, a private libvirtd for the rest)
writing into a real InfluxDB 1.6, and the engine of the same config file paging a real HTTP receiver.

The story, counted in the agent's collections and the engine's leak rounds (the deadlines below only bound a
broken run): nothing while the child holds steady; ONE LibvirtdFdLeak page with the figures once it leaks; nothing
more while it keeps leaking up to its limit; a RESOLVED once it restarts (a new pid, its descriptors back down);
nothing false after."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alerts.leak_rule import FD_ALERTNAME, RSS_ALERTNAME
from virtwatch.config import load_config
from virtwatch.wiring import engine_from_config

pytestmark = [pytest.mark.slow, pytest.mark.influxdb]
HOST = 'hv leak, "fds"'
GIVE_UP_SECONDS = 120  # not a speed requirement: only how long a broken run waits before failing
VIRTWATCH = str(Path(sys.executable).with_name("virtwatch"))
SOFT_LIMIT = 128
STEADY_FDS = 30
INTERVAL_SECONDS = 0.5
FIT_SECONDS = 5

#: a process that behaves, for /proc, like a leaking libvirtd: it locks byte 0 of its pidfile (F_SETLK, as
#: virPidFileAcquirePath does) and writes its pid there, holds STEADY_FDS descriptors under a low soft limit, and
#: on SIGUSR1 opens one more every 0.1 s until the limit refuses it (then holds them all)
LEAKER = r"""
import fcntl, os, resource, signal, sys, time

pidfile, soft, steady = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = [os.open("/dev/null", os.O_RDONLY) for _ in range(steady)]
leaking = []
signal.signal(signal.SIGUSR1, lambda *_: leaking.append(True))
lock = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
os.ftruncate(lock, 0)
os.write(lock, f"{os.getpid()}\n".encode())
while True:
    if leaking:
        try:
            held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass  # EMFILE: at the limit, as a leaking daemon would be
    time.sleep(0.1)
"""


def toml_string(value) -> str:
    return json.dumps(str(value), ensure_ascii=False)


class Leaker:
    """The leaking child: start, leak, restart (a new process, back to STEADY_FDS)."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "leaker.py"
        self.script.write_text(LEAKER, encoding="utf-8")
        self.pidfile = tmp_path / "leaker.pid"
        self.process: subprocess.Popen | None = None

    def start(self) -> int:
        self.process = subprocess.Popen([sys.executable, str(self.script), str(self.pidfile), str(SOFT_LIMIT),
                                         str(STEADY_FDS)])
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while self.pidfile.read_text().strip() != str(self.process.pid) if self.pidfile.exists() else True:
            assert time.monotonic() < deadline and self.process.poll() is None, "the leaker did not start"
            time.sleep(0.05)
        return self.process.pid

    def leak(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def leaker(tmp_path):
    child = Leaker(tmp_path)
    yield child
    child.stop()


@pytest.fixture
def config_file(tmp_path, libvirtd, influxdb_database, http_receiver, leaker):
    server, database = influxdb_database
    path = tmp_path / "virtwatch.toml"
    path.write_text(f"""
[store]
url = "influxdb://127.0.0.1:{server.port}/{database}"

[agent]
libvirt_uri = {toml_string(libvirtd.uri_test)}
admin_uri = {toml_string(libvirtd.admin_uri)}
host_name = {toml_string(HOST)}
interval_seconds = {INTERVAL_SECONDS}
daemon_pidfile = {toml_string(leaker.pidfile)}
spool_dir = {toml_string(tmp_path / "spool")}

[alerts]
state_dir = {toml_string(tmp_path / "alerts")}
storm_wait_seconds = 0.1

[alerts.leak]
fd_share = 0.9
fd_horizon_seconds = 60
fd_fit_seconds = {FIT_SECONDS}
fd_min_rise = 5
rss_min_hours = 24

[[alerts.receivers]]
name = "oncall"
type = "webhook"
url = "{http_receiver.url}/hook"
timeout_seconds = 5
""", encoding="utf-8")
    return path


@pytest.fixture
def agent(config_file, tmp_path):
    """`virtwatch agent` as the README starts it; stopped (SIGTERM) afterwards."""
    log = open(tmp_path / "agent.log", "wb")
    process = subprocess.Popen([VIRTWATCH, "agent", "--config", str(config_file)], stdout=log,
                               stderr=subprocess.STDOUT)
    yield tmp_path / "agent.log"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, (tmp_path / "agent.log").read_text()
    log.close()


class Story:
    """The engine's leak rounds, run one at a time by the test, and what the store and the receiver hold."""

    def __init__(self, engine, store, receiver, agent_log: Path) -> None:
        self.engine, self.store, self.receiver, self.agent_log = engine, store, receiver, agent_log
        self.rounds = 0

    def leak_round(self) -> None:
        report = self.engine.run_round(slos=False, rules=False)
        assert report.error is None, report.error
        self.rounds += 1

    def collections(self, pid: int):
        """The agent's libvirtd points of one process, oldest first."""
        frame = self.store.query("libvirtd", ["open_fds", "max_fds", "rss_bytes", "start_time_seconds", "pid"],
                                 0, 2**62, where={"host": HOST})
        return frame[frame["pid"] == pid].reset_index(drop=True)

    def notices(self) -> list[tuple[str, dict]]:
        return [(alert["status"], alert) for request in self.receiver.delivered
                for alert in request.json()["alerts"] if alert["labels"]["alertname"] in (FD_ALERTNAME, RSS_ALERTNAME)]

    def rounds_until(self, what: str, condition):
        """Run leak rounds until `condition()` holds; return its value."""
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            self.leak_round()
            found = condition()
            if found:
                return found
            time.sleep(INTERVAL_SECONDS / 2)
        pytest.fail(f"gave up waiting for {what} after {self.rounds} leak rounds; agent log:\n"
                    f"{self.agent_log.read_text()}")


def test_a_real_process_leaking_descriptors_pages_once_and_its_restart_resolves_it(
        config_file, leaker, agent, influxdb_store, http_receiver):
    engine = engine_from_config(load_config(config_file).alerts, influxdb_store)
    assert engine.leak_rule is not None and engine.leak_rule.policy.fd_fit_seconds == FIT_SECONDS
    story = Story(engine, influxdb_store, http_receiver, agent)
    first = leaker.start()

    # steady: four fits' worth of collections, a leak round after each, and not a word
    story.rounds_until("steady collections",
                       lambda: len(story.collections(first)) >= 4 * FIT_SECONDS / INTERVAL_SECONDS)
    steady = story.collections(first)
    assert set(steady["open_fds"]) <= set(range(STEADY_FDS, STEADY_FDS + 8))  # the held ones, stdio, the pidfile
    assert story.rounds >= 4 * FIT_SECONDS / INTERVAL_SECONDS / 2 and story.notices() == []

    # it leaks: one page, with the figures
    leaker.leak()
    [(status, alert)] = story.rounds_until("the leak page", story.notices)
    assert status == "firing"
    assert alert["labels"] == {"alertname": FD_ALERTNAME, "severity": "page", "host": HOST}
    summary = alert["annotations"]["summary"]
    assert summary.startswith(f"{HOST}: libvirtd holds ") and f" of {SOFT_LIMIT} file descriptors (" in summary
    assert ", rising " in summary and "/h, at the limit " in summary
    assert alert["annotations"]["description"].startswith(f"libvirtd (pid {first}) runs since ")

    # it keeps leaking up to its limit: still the one page
    story.rounds_until("the limit", lambda: (story.collections(first)["open_fds"] >= SOFT_LIMIT - 1).any())
    rounds = story.rounds
    story.rounds_until("more rounds at the limit", lambda: story.rounds >= rounds + 10)
    assert [status for status, _ in story.notices()] == ["firing"]
    leaked = story.collections(first)
    assert leaked["open_fds"].is_monotonic_increasing and leaked["max_fds"].eq(SOFT_LIMIT).all()
    assert leaked[["rss_bytes", "start_time_seconds"]].notna().all().all()  # every collection has every figure
    assert len(leaked) > len(steady)

    # it restarts: a new pid, its descriptors back down, and the page resolves
    leaker.stop()
    second = leaker.start()
    assert second != first
    story.rounds_until("the resolve", lambda: len(story.notices()) == 2)
    status, resolved = story.notices()[1]
    assert status == "resolved" and resolved["labels"] == alert["labels"]
    summary = resolved["annotations"]["summary"]  # what is true now: the new process's figures
    assert summary.startswith(f"{HOST}: libvirtd holds ") and summary.endswith(": no leak sign")
    assert resolved["annotations"]["description"].startswith(f"libvirtd (pid {second}) runs since ")
    assert story.collections(second)["open_fds"].max() < STEADY_FDS + 8

    # nothing false after: four more fits' worth of collections of the new process
    seen = len(story.collections(second))
    story.rounds_until("collections after the restart",
                       lambda: len(story.collections(second)) >= seen + 4 * FIT_SECONDS / INTERVAL_SECONDS)
    assert [status for status, _ in story.notices()] == ["firing", "resolved"]
    history = influxdb_store.query("alert", ["status"], 0, 2**62, where={"alertname": FD_ALERTNAME})
    assert list(history["status"]) == ["firing", "resolved"]

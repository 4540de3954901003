"""The leak rule (alerts.leak_rule) on points planted in both stores, and through the engine to a real receiver."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from alerts.engine import Engine
from alerts.event_rules import DaemonDownRule
from alerts.leak_rule import FD_ALERTNAME, RSS_ALERTNAME, LeakMemory, LeakRule
from alerts.notify import Backoff, notifier_for
from alerts.rule_memory import RoundReads
from alerts.silences import Matcher
from alerts.storm import StormGate
from tsdb import Point
from tsdb.schema import EVENT_KINDS
from virtwatch.config import ReceiverConfig

S = 10**9
MIB = 2**20
NOW_S = 1_800_000_000
NOW = NOW_S * S
HOSTILE = 'hv 2,"quoted"=\\tail ü🙂'


def plant(store, host: str, fds, rss=lambda age_h: 300 * MIB, *, hours: float = 6, started_hours_ago: float = 6,
          pid: int = 4242, max_fds: int = 8000, every_seconds: int = 60, until_ns: int = NOW) -> None:
    """Write a host's libvirtd points every `every_seconds` for `hours` up to `until_ns`; fds and rss are
    functions of the point's age in hours (0 for the newest)."""
    points = []
    count = int(hours * 3600 / every_seconds)
    for i in range(count + 1):
        age_h = (count - i) * every_seconds / 3600
        points.append(Point("libvirtd", {"host": host},
                            {"open_fds": int(round(fds(age_h))), "max_fds": max_fds, "rss_bytes": int(rss(age_h)),
                             "start_time_seconds": float(NOW_S - started_hours_ago * 3600), "pid": pid},
                            until_ns - int(age_h * 3600 * S)))
    store.write(points)


def by_alert(results, host: str, alertname: str):
    [found] = [r for r in results if r.host == host and r.labels["alertname"] == alertname]
    return found


def leaking(age_h: float) -> float:
    """7,910 fds now, rising 310/h."""
    return 7910 - 310 * age_h


def test_a_host_leaking_descriptors_fires_with_its_figures_and_a_flat_host_does_not(store):
    plant(store, "hv-leak", leaking, every_seconds=10)  # as an agent writes
    plant(store, HOSTILE, lambda age_h: 200)
    results = LeakRule().evaluate(store, NOW)
    leak = by_alert(results, "hv-leak", FD_ALERTNAME)
    assert leak.active and leak.labels == {"alertname": FD_ALERTNAME, "severity": "page", "host": "hv-leak"}
    assert leak.annotations["summary"] == ("hv-leak: libvirtd holds 7,910 of 8,000 file descriptors (99%), rising "
                                           "310/h, at the limit in 17 min")
    lines = leak.annotations["description"].split("\n")
    assert lines[0] == "libvirtd (pid 4242) runs since 2027-01-15 02:00 UTC (6 h)"
    assert lines[1].startswith("open fds: least-squares fit over the last ") and ": 310/h, r² 1.00" in lines[1]
    assert "at this rate the limit is reached at 2027-01-15 08:17 UTC" in lines
    flat = by_alert(results, HOSTILE, FD_ALERTNAME)
    assert not flat.active and flat.labels["host"] == HOSTILE  # the hostile name round-trips as data
    assert flat.annotations["summary"] == (f"{HOSTILE}: libvirtd holds 200 of 8,000 file descriptors (2%), flat: "
                                           "no leak sign")


def test_descriptors_near_the_limit_fire_even_when_flat(store):
    plant(store, "hv-full", lambda age_h: 7300)  # 91% of 8,000
    leak = by_alert(LeakRule().evaluate(store, NOW), "hv-full", FD_ALERTNAME)
    assert leak.active
    assert leak.annotations["summary"] == "hv-full: libvirtd holds 7,300 of 8,000 file descriptors (91%)"


def test_a_restart_frees_the_descriptors_and_the_sign_is_gone(store):
    # leaking for 5 h 40 min, restarted 20 minutes ago as pid 5151 with 180 fds
    plant(store, "hv-restarted", leaking, hours=5.6, until_ns=NOW - 1200 * S)
    plant(store, "hv-restarted", lambda age_h: 180, hours=1 / 3, started_hours_ago=1 / 3, pid=5151)
    leak = by_alert(LeakRule().evaluate(store, NOW), "hv-restarted", FD_ALERTNAME)
    assert not leak.active
    assert leak.annotations["summary"] == ("hv-restarted: libvirtd holds 180 of 8,000 file descriptors (2%), flat: "
                                           "no leak sign")
    assert leak.annotations["description"].startswith("libvirtd (pid 5151) runs since 2027-01-15 07:40 UTC (20 min)")


def test_the_window_that_holds_a_restart_belongs_to_the_old_process(store):
    # a restart in the middle of a window: its mean mixes both processes, its smallest start time is the old one's
    rule = LeakRule()
    width = rule.fd_read[1]
    restart_ns = ((NOW - 1800 * S) // (width * S)) * width * S + width * S // 2  # mid-window, about 30 min ago
    plant(store, "hv-mixed", leaking, hours=4, until_ns=restart_ns - S)
    new_hours = (NOW - S - restart_ns) / 3600 / S
    plant(store, "hv-mixed", lambda age_h: 100 + 40 * (new_hours - age_h), hours=new_hours,
          started_hours_ago=(NOW - restart_ns) / 3600 / S, pid=77, until_ns=NOW - S)  # 100 fds rising 40/h
    leak = by_alert(rule.evaluate(store, NOW), "hv-mixed", FD_ALERTNAME)
    assert not leak.active and "(pid 77)" in leak.annotations["description"]
    assert ", rising 40/h: no leak sign" in leak.annotations["summary"]  # the old process's 7,000s are not in it


def test_steady_memory_growth_is_a_ticket_and_a_sawtooth_is_not(store):
    plant(store, "hv-grows", lambda age_h: 200, rss=lambda age_h: 900 * MIB - 12 * MIB * age_h)
    plant(store, "hv-saw", lambda age_h: 200, rss=lambda age_h: 300 * MIB + 40 * MIB * ((6 - age_h) % 0.5))
    results = LeakRule().evaluate(store, NOW)
    grows = by_alert(results, "hv-grows", RSS_ALERTNAME)
    assert grows.active and grows.labels["severity"] == "ticket"
    assert grows.annotations["summary"].startswith("hv-grows: libvirtd's resident memory grew steadily by 12.0 MiB/h "
                                                   "over 4.")
    assert grows.annotations["summary"].endswith("; 900 MiB resident now")
    saw = by_alert(results, "hv-saw", RSS_ALERTNAME)
    assert not saw.active and "does not grow steadily" in saw.annotations["summary"]
    assert not by_alert(results, "hv-grows", FD_ALERTNAME).active


def test_the_severities_are_configurable():
    rule = LeakRule(fd_severity="ticket", rss_severity="page")
    assert rule.fleet_observation(FD_ALERTNAME)[0]["severity"] == "ticket"
    with pytest.raises(ValueError, match="fd_severity must be one of page, ticket, got 'sms'"):
        LeakRule(fd_severity="sms")


def test_three_reads_serve_every_host(store):
    hosts = [f"hv-{i:02d}" for i in range(40)]
    for host in hosts:
        plant(store, host, lambda age_h: 200, hours=6)
    rule = LeakRule()
    reads = RoundReads()
    results = rule.evaluate(store, NOW, reads)
    assert reads.queries == 3 and reads.evaluated_hosts == 40
    windows = sum(int(seconds) // width + 1 for seconds, width in (rule.fd_read, rule.rss_read))  # epoch-aligned
    assert 40 * (windows - 2 + 1) <= reads.rows <= 40 * (windows + 1)  # and each host's newest point
    assert {r.host for r in results} == set(hosts) and len(results) == 80


def test_a_round_after_the_first_reads_only_the_new_windows_and_agrees_with_a_fresh_evaluation(store):
    for host in ("hv-a", "hv-b", HOSTILE):
        plant(store, host, lambda age_h: 200, every_seconds=30)
    plant(store, "hv-leak", leaking, every_seconds=30)
    memory = LeakMemory(LeakRule())
    first, later = RoundReads(), RoundReads()
    memory.evaluate(store, NOW, first)
    # five minutes on: hv-leak keeps leaking, hv-b restarted two minutes ago, hv-a went silent
    later_ns = NOW + 300 * S
    plant(store, "hv-leak", lambda age_h: 7936 - 310 * age_h, hours=1 / 12, until_ns=later_ns, every_seconds=30)
    plant(store, "hv-b", lambda age_h: 120, hours=1 / 30, started_hours_ago=-1 / 20, pid=99, until_ns=later_ns)
    plant(store, HOSTILE, lambda age_h: 200, hours=1 / 12, until_ns=later_ns, every_seconds=30)
    results = memory.evaluate(store, later_ns, later)
    assert results == LeakRule().evaluate(store, later_ns)
    assert later.queries == 3 and not later.resynced and first.resynced
    assert later.rows <= 4 * (1 + 5 + 3)  # per host: its newest point, and the windows of five minutes of each field
    assert by_alert(results, "hv-leak", FD_ALERTNAME).active
    assert "(pid 99)" in by_alert(results, "hv-b", FD_ALERTNAME).annotations["description"]


def test_a_host_without_points_in_the_lookback_is_not_observed(store):
    plant(store, "hv-old", leaking, hours=1, until_ns=NOW - 6 * 3600 * S)
    assert LeakRule().evaluate(store, NOW) == []


# ---- through the engine ----


def hook(url: str) -> dict:
    config = ReceiverConfig(name="oncall", type="webhook", url=url + "/hook", timeout_seconds=10)
    return {"oncall": notifier_for(config)}


class Clock:
    """The engine's clock, moved by the test."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now_ns / S, timezone.utc)


def leak_notices(receiver) -> list[tuple[str, dict]]:
    return [(alert["status"], alert) for request in receiver.delivered for alert in request.json()["alerts"]
            if alert["labels"]["alertname"] in (FD_ALERTNAME, RSS_ALERTNAME)]


def leak_engine(store, receiver, tmp_path, clock, **options) -> Engine:
    return Engine(store, [], [], hook(receiver.url), tmp_path / "state", clock=clock, leak_rule=LeakRule(),
                  storm=StormGate(wait_seconds=0.0), backoff=Backoff(base_seconds=0.01, max_seconds=0.02,
                                                                     max_attempts=2), **options)


def test_the_engine_pages_once_for_a_leak_and_resolves_it_after_the_restart(store, http_receiver, tmp_path):
    clock = Clock(NOW)
    plant(store, HOSTILE, leaking)
    engine = leak_engine(store, http_receiver, tmp_path, clock)
    for _ in range(3):
        report = engine.run_round()
        clock.now_ns += 60 * S
    assert report.leaks_evaluated == 1 and report.leak_reads.queries == 3
    [(status, alert)] = leak_notices(http_receiver)
    assert status == "firing" and alert["labels"] == {"alertname": FD_ALERTNAME, "severity": "page", "host": HOSTILE}
    assert alert["annotations"]["summary"].startswith(f"{HOSTILE}: libvirtd holds 7,910 of 8,000 file descriptors")
    # the daemon restarts (pid 5151, 180 fds): the next round resolves the page, and nothing follows
    plant(store, HOSTILE, lambda age_h: 180, hours=0.05, started_hours_ago=0.05, pid=5151, until_ns=clock.now_ns - S)
    for _ in range(3):
        engine.run_round()
        clock.now_ns += 60 * S
    assert [status for status, _ in leak_notices(http_receiver)] == ["firing", "resolved"]
    resolved = leak_notices(http_receiver)[1][1]["annotations"]  # the figures of the new process
    assert resolved["summary"].startswith(f"{HOSTILE}: libvirtd holds 180 of 8,000 file descriptors (2%), ")
    assert resolved["summary"].endswith(": no leak sign")
    assert resolved["description"].startswith("libvirtd (pid 5151) runs since ")
    history = store.query("alert", ["status"], 0, 2**62, where={"alertname": FD_ALERTNAME})
    assert list(history["status"]) == ["firing", "resolved"]


def test_a_silenced_leak_sends_nothing(duckdb_store, http_receiver, tmp_path):
    clock = Clock(NOW)
    plant(duckdb_store, "hv-quiet", leaking)
    engine = leak_engine(duckdb_store, http_receiver, tmp_path, clock)
    engine.silences.add([Matcher("alertname", "=", FD_ALERTNAME), Matcher("host", "=", "hv-quiet")],
                        clock().replace(year=2030), created_by="leak-test", comment="known leak, restart scheduled")
    engine.run_round()
    assert leak_notices(http_receiver) == []
    assert [a.labels["host"] for a in engine.tracker.firing()] == ["hv-quiet"]  # tracked, not sent


def test_many_hosts_starting_to_leak_in_one_round_are_one_fleet_page(duckdb_store, http_receiver, tmp_path):
    hosts = [f"hv-{i:02d}" for i in range(12)]
    for host in hosts:
        plant(duckdb_store, host, leaking, every_seconds=300)
    engine = leak_engine(duckdb_store, http_receiver, tmp_path, Clock(NOW))
    engine.run_round()
    [(status, alert)] = leak_notices(http_receiver)
    assert status == "firing" and alert["labels"] == {"alertname": FD_ALERTNAME, "scope": "fleet",
                                                      "severity": "page"}
    assert alert["annotations"]["summary"].startswith(f"{FD_ALERTNAME}: 12 of 12 hosts show the same leak sign")


def test_a_disabled_leak_rule_reads_nothing(duckdb_store, http_receiver, tmp_path):
    plant(duckdb_store, "hv-leak", leaking)
    engine = Engine(duckdb_store, [], [], hook(http_receiver.url), tmp_path / "state", clock=Clock(NOW))
    report = engine.run_round()
    assert report.leak_reads is None and leak_notices(http_receiver) == []


class StuckLeakReads:
    """The real store, except that the leak rule's windowed reads of `libvirtd` wait until released."""

    def __init__(self, store) -> None:
        self.store = store
        self.release = threading.Event()
        self.begun = self.finished = 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def query(self, measurement, *args, **kwargs):
        if measurement == "libvirtd" and kwargs.get("window_seconds"):
            self.begun += 1
            self.release.wait()
            self.finished += 1
        return self.store.query(measurement, *args, **kwargs)


def test_a_dead_daemon_pages_while_the_leak_round_is_stuck_on_the_store(duckdb_store, http_receiver, tmp_path):
    stuck = StuckLeakReads(duckdb_store)
    engine = Engine(stuck, [], [DaemonDownRule(after_seconds=1)], hook(http_receiver.url), tmp_path / "state",
                    rules_interval_seconds=0.2, leak_rule=LeakRule(), leak_interval_seconds=0.2,
                    backoff=Backoff(base_seconds=0.01, max_seconds=0.02, max_attempts=2))
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: stuck.begun == 1)  # the leak round waits on the store
        duckdb_store.write([Point("event", {"host": HOSTILE, "kind": "daemon_down",
                                            "severity": EVENT_KINDS["daemon_down"].severity},
                                  {"message": "libvirtd down", "count": 1}, time.time_ns() - 5 * S)])
        assert wait_for(lambda: [a["labels"]["host"] for r in http_receiver.delivered
                                 for a in r.json()["alerts"]] == [HOSTILE])
        assert (stuck.begun, stuck.finished) == (1, 0)  # paged while the leak round was still stuck
    finally:
        stuck.release.set()
        stop.set()
        thread.join(30)


def wait_for(condition, seconds: float = 60.0) -> bool:
    """Poll `condition` (a bound on a broken run, never a claim about speed)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.05)
    return condition()

"""The alert engine over a real store and a real HTTP receiver: page once, group, silence, resolve once, survive restarts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerts.engine import BLIND_ALERTNAME, SLO_ALERTNAME, Engine, group_key
from alerts.event_rules import DaemonDownRule, SegfaultRule
from alerts.notify import Backoff, notifier_for
from alerts.paths import silences_path
from alerts.silences import Matcher, SilenceStore
from alerts.slo import SLO
from tsdb import Point
from tsdb.schema import EVENT_KINDS
from virtwatch.config import ReceiverConfig

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
S = 10**9
HOSTILE = 'hv 2,"quoted"=\\tail ü🙂'


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * S


def event(host: str, kind: str, at: datetime, message: str = "") -> Point:
    return Point("event", {"host": host, "kind": kind, "severity": EVENT_KINDS[kind].severity},
                 {"message": message or f"{kind} on {host}", "count": 1}, ns(at))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_engine(duckdb_store, http_receiver, tmp_path, clock):
    """Build engines sharing one store, one receiver and one state_dir (a restart is a new engine)."""
    def make(slos=(), rules=(DaemonDownRule(after_seconds=5), SegfaultRule())):
        hook = ReceiverConfig(name="oncall", type="webhook", url=http_receiver.url + "/hook", timeout_seconds=2)
        return Engine(duckdb_store, slos, rules, {"oncall": notifier_for(hook)}, tmp_path / "state", clock=clock,
                      backoff=Backoff(base_seconds=0.01, max_seconds=0.02, max_attempts=2))
    return make


def bodies(receiver):
    return [request.json() for request in receiver.delivered]


def test_a_daemon_down_pages_once_and_resolves_once(make_engine, duckdb_store, http_receiver, clock):
    engine = make_engine()
    duckdb_store.write([event(HOSTILE, "daemon_down", T0, "libvirtd down: connection closed (eof)")])
    clock.advance(3)
    engine.run_round()
    assert bodies(http_receiver) == []  # down for 3 s only
    clock.advance(5)
    engine.run_round()
    clock.advance(5)
    engine.run_round()
    [page] = bodies(http_receiver)
    assert page["status"] == "firing" and page["commonLabels"] == {
        "alertname": "LibvirtdDown", "severity": "page", "host": HOSTILE}
    assert page["groupKey"] == group_key({"host": HOSTILE}) and "eof" in page["alerts"][0]["annotations"]["description"]
    duckdb_store.write([event(HOSTILE, "daemon_up", clock.now)])
    clock.advance(1)
    engine.run_round()
    engine.run_round()
    assert [b["status"] for b in bodies(http_receiver)] == ["firing", "resolved"]


def test_an_engine_restarted_mid_incident_neither_pages_again_nor_forgets_to_resolve(make_engine, duckdb_store,
                                                                                       http_receiver, clock):
    duckdb_store.write([event("hv1", "daemon_down", T0)])
    clock.advance(10)
    make_engine().run_round()
    assert len(bodies(http_receiver)) == 1
    restarted = make_engine()
    clock.advance(10)
    restarted.run_round()
    assert len(bodies(http_receiver)) == 1
    duckdb_store.write([event("hv1", "daemon_up", clock.now)])
    clock.advance(1)
    make_engine().run_round()
    make_engine().run_round()
    assert [b["status"] for b in bodies(http_receiver)] == ["firing", "resolved"]


def test_alerts_of_one_host_firing_together_go_out_as_one_group_and_the_group_resolves_when_all_do(
        make_engine, duckdb_store, http_receiver, clock):
    engine = make_engine()
    duckdb_store.write([event("hv1", "daemon_down", T0), event("hv1", "segfault", T0, "libvirtd[1]: segfault"),
                        event("hv2", "segfault", T0)])
    clock.advance(10)
    engine.run_round()
    by_key = {b["groupKey"]: b for b in bodies(http_receiver)}
    assert sorted(a["labels"]["alertname"] for a in by_key[group_key({"host": "hv1"})]["alerts"]) == [
        "LibvirtdDown", "LibvirtdSegfault"]
    assert len(by_key) == 2  # hv1's group and hv2's
    duckdb_store.write([event("hv1", "daemon_up", clock.now)])
    clock.advance(1)
    engine.run_round()
    last = bodies(http_receiver)[-1]
    # the down alert resolved, the segfault still fires: the group is still firing and says both
    assert last["status"] == "firing"
    assert {(a["labels"]["alertname"], a["status"]) for a in last["alerts"]} == {
        ("LibvirtdSegfault", "firing"), ("LibvirtdDown", "resolved")}


def test_a_silenced_alert_is_recorded_but_not_sent_until_the_silence_is_expired(make_engine, duckdb_store,
                                                                                  http_receiver, clock, tmp_path):
    engine = make_engine()
    silences = SilenceStore(silences_path(tmp_path / "state"), clock)
    silence = silences.add([Matcher.parse(f"host={HOSTILE}")], T0 + timedelta(hours=2), created_by="ops",
                           comment="planned libvirt upgrade")
    duckdb_store.write([event(HOSTILE, "daemon_down", T0)])
    clock.advance(10)
    engine.run_round()
    assert bodies(http_receiver) == []
    recorded = duckdb_store.query("alert", ["status", "silenced"], 0, ns(clock.now) + S)
    assert list(zip(recorded["status"], recorded["silenced"])) == [("firing", 1)]
    silences.expire(silence.id)
    clock.advance(5)
    engine.run_round()
    [page] = bodies(http_receiver)
    assert page["commonLabels"]["host"] == HOSTILE


def test_a_host_burning_its_availability_budget_pages_and_the_healthy_fleet_does_not(make_engine, duckdb_store,
                                                                                       http_receiver, clock):
    slo = SLO("libvirtd-availability", 99.9, "libvirtd_availability")
    start = ns(T0) - 2 * 3600 * S
    points = []
    for at in range(start, ns(T0), 10 * S):
        points.append(Point("libvirtd", {"host": "hv1"}, {"probe_ok": 0 if at >= ns(T0) - 600 * S else 1}, at))
        for host in ("hv2", "hv3", "hv4", "hv5", "hv6"):
            points.append(Point("libvirtd", {"host": host}, {"probe_ok": 1}, at))
    duckdb_store.write(points)
    engine = make_engine(slos=[slo], rules=())
    engine.run_round()
    # hv1 failed every probe for 10 minutes: 100% errors over 5 m and 1/12 over 1 h burn far past 14.4x; the
    # fleet of six burns 1/6 over 5 m (167x) and 60 of 2160 probes over 1 h (27.8x): the fleet pages at once,
    # hv1 after waiting storm_wait_seconds (one round) in case more hosts start with it (alerts.storm)
    assert [(a["labels"].get("scope"), a["labels"]["severity"]) for b in bodies(http_receiver) for a in b["alerts"]] == [
        ("fleet", "page")]
    clock.advance(30)
    engine.run_round()
    pages = [a for b in bodies(http_receiver) for a in b["alerts"] if a["status"] == "firing"]
    assert sorted((a["labels"].get("host") or a["labels"]["scope"], a["labels"]["severity"]) for a in pages) == [
        ("fleet", "page"), ("hv1", "page")]
    page = next(a for a in pages if a["labels"].get("host") == "hv1")
    assert page["labels"]["alertname"] == SLO_ALERTNAME and page["labels"]["slo"] == slo.name
    assert "page-1h-5m" in page["annotations"]["description"]
    # the ticket tier of hv1 burns too (10 minutes in the 2 h short window and the 1 d long one: 41.7x, 83.3x),
    # tracked but inhibited while the page fires
    ticket = {"alertname": SLO_ALERTNAME, "slo": slo.name, "host": "hv1", "severity": "ticket"}
    assert engine.tracker.inhibited(ticket)
    assert any(a.labels == ticket for a in engine.tracker.firing())
    assert engine.coverage[slo.name].minute_until_ns > 0  # it rolled up as it went


def test_an_engine_that_cannot_read_the_store_pages_about_itself_after_a_minute(make_engine, duckdb_store,
                                                                                  http_receiver, clock):
    engine = make_engine()
    duckdb_store.close()  # the store is gone
    report = engine.run_round()
    assert report.error and bodies(http_receiver) == []
    clock.advance(61)
    engine.run_round()
    [page] = bodies(http_receiver)
    assert page["commonLabels"]["alertname"] == BLIND_ALERTNAME
    assert "could not read the store" in page["alerts"][0]["annotations"]["summary"]

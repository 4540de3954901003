"""Event rules over planted events in the embedded store, and once in a real InfluxDB 1.6."""

from __future__ import annotations

import pytest

from alerts.event_rules import (AgentSilentRule, DaemonDownRule, DaemonHungRule, DomainFailureStormRule, RestartRule, SegfaultRule,
                                default_rules, evaluate_event_rules)
from tsdb import Point, open_store
from tsdb.schema import EVENT_KINDS

S = 10**9
NOW = 1_700_000_000 * S
HOSTILE = 'hv 2,=\'x"\\y ünï😀'


def event(host: str, kind: str, seconds_ago: float, message: str = "", domain: str = "") -> Point:
    tags = {"host": host, "kind": kind, "severity": EVENT_KINDS[kind].severity}
    if domain:
        tags["domain"] = domain
    return Point("event", tags, {"message": message or f"{kind} on {host}", "count": 1},
                 NOW - int(seconds_ago * S))


@pytest.fixture
def store(tmp_path):
    store = open_store(f"duckdb://{tmp_path}/s.duckdb")
    yield store
    store.close()


def results(store, rules, hosts=()):
    """Return {(host, alertname): RuleResult}."""
    return {(r.host, r.labels["alertname"]): r for r in evaluate_event_rules(store, rules, NOW, hosts=hosts)}


def test_a_daemon_down_for_10_s_is_not_active_but_one_down_for_40_s_is(store):
    store.write([event("hv1", "daemon_down", 10, "libvirtd down: connection closed"),
                 event("hv2", "daemon_down", 40, "libvirtd down: connection refused")])
    found = results(store, [DaemonDownRule(after_seconds=30)])
    assert not found["hv1", "LibvirtdDown"].active
    down = found["hv2", "LibvirtdDown"]
    assert down.active and down.labels == {"alertname": "LibvirtdDown", "severity": "page", "host": "hv2"}
    assert "40 s" in down.annotations["summary"] and "connection refused" in down.annotations["description"]


def test_a_daemon_up_after_the_down_clears_it_and_a_later_down_counts_from_itself(store):
    store.write([event("hv1", "daemon_down", 300), event("hv1", "daemon_up", 200),
                 event("hv2", "daemon_down", 300), event("hv2", "daemon_up", 200), event("hv2", "daemon_down", 20)])
    found = results(store, [DaemonDownRule(after_seconds=30)])
    assert not found["hv1", "LibvirtdDown"].active
    assert not found["hv2", "LibvirtdDown"].active  # down again, but only for 20 s
    assert "20 s" in found["hv2", "LibvirtdDown"].annotations["summary"]


def test_a_hang_without_its_end_is_active_after_the_threshold_and_ends_with_hang_end(store):
    store.write([event("hv1", "hang_start", 45, "libvirtd hung: probe timed out"),
                 event("hv2", "hang_start", 100), event("hv2", "hang_end", 5)])
    found = results(store, [DaemonHungRule(after_seconds=30)])
    assert found["hv1", "LibvirtdHung"].active
    assert "probe timed out" in found["hv1", "LibvirtdHung"].annotations["description"]
    assert not found["hv2", "LibvirtdHung"].active


def test_restarts_alert_as_a_ticket_from_the_threshold_within_the_window(store):
    store.write([event("hv1", "restart", s, f"pid {i} -> {i + 1}") for i, s in enumerate((3000, 2000, 1000))]
                + [event("hv2", "restart", s) for s in (4000, 2000, 1000)])  # one is outside the hour
    found = results(store, [RestartRule()])
    hv1 = found["hv1", "LibvirtdRestarting"]
    assert hv1.active and hv1.labels["severity"] == "ticket"
    assert hv1.annotations["summary"].startswith("3 libvirtd restarts") and "pid 2 -> 3" in hv1.annotations[
        "description"]
    assert not found["hv2", "LibvirtdRestarting"].active


def test_a_segfault_keeps_the_alert_active_for_the_window_after_it(store):
    store.write([event("hv1", "segfault", 3500, "libvirtd[123]: segfault at 0 ip ..."),
                 event("hv2", "segfault", 3700)])
    found = results(store, [SegfaultRule()])
    assert found["hv1", "LibvirtdSegfault"].active
    assert "segfault at 0" in found["hv1", "LibvirtdSegfault"].annotations["description"]
    assert not found["hv2", "LibvirtdSegfault"].active


def test_a_storm_of_guest_failures_counts_per_host_not_across_the_fleet(store):
    store.write([event("hv1", "domain_failed", 60 * i, domain=f"vm{i}") for i in range(3)]
                + [event("hv1", "domain_crashed", 60 * i + 30, domain=f"vm{i}") for i in range(2)]
                + [event(f"other{i}", "domain_failed", 10) for i in range(6)])
    found = results(store, [DomainFailureStormRule()])
    assert found["hv1", "DomainFailureStorm"].active
    assert found["hv1", "DomainFailureStorm"].annotations["summary"].startswith("5 guest failures")
    assert not any(found[f"other{i}", "DomainFailureStorm"].active for i in range(6))


def test_a_host_with_no_events_left_is_reported_inactive_when_asked_for(store):
    found = results(store, default_rules(), hosts=["quiet"])
    assert sorted(name for host, name in found) == sorted(r.alertname for r in default_rules())
    assert not any(r.active for r in found.values())


def test_hostile_host_names_come_back_exactly_in_the_labels(store):
    store.write([event(HOSTILE, "daemon_down", 60), event("hv1", "daemon_down", 60)])
    found = results(store, [DaemonDownRule()])
    assert found[HOSTILE, "LibvirtdDown"].active and found[HOSTILE, "LibvirtdDown"].labels["host"] == HOSTILE


def test_a_bad_threshold_names_the_rule_and_the_field():
    with pytest.raises(ValueError, match="RestartRule.count"):
        RestartRule(count=0)
    with pytest.raises(ValueError, match="DaemonDownRule.after_seconds"):
        DaemonDownRule(after_seconds=-1)


@pytest.mark.influxdb
def test_the_rules_read_the_same_from_a_real_influxdb(influxdb_database):
    server, database = influxdb_database
    store = open_store(f"influxdb://127.0.0.1:{server.port}/{database}")
    try:
        store.write([event(HOSTILE, "daemon_down", 40, "libvirtd down: connection closed"),
                     event("hv1", "daemon_down", 10), event("hv1", "restart", 100), event("hv1", "restart", 50),
                     event("hv1", "restart", 5), event("hv1", "segfault", 600)])
        found = results(store, default_rules())
        active = sorted(key for key, r in found.items() if r.active)
        assert active == sorted([(HOSTILE, "LibvirtdDown"), ("hv1", "LibvirtdRestarting"),
                                 ("hv1", "LibvirtdSegfault")])
    finally:
        store.close()


def libvirtd(host: str, seconds_ago: float, up: int, hung: int = 0) -> Point:
    return Point("libvirtd", {"host": host}, {"up": up, "hung": hung}, NOW - int(seconds_ago * S))


def test_a_down_daemon_whose_newest_point_says_up_is_not_down_even_without_a_daemon_up_event(store):
    # the agent restarted while libvirtd came back: it never saw the daemon_up, only that it answers
    store.write([event("hv1", "daemon_down", 300), libvirtd("hv1", 290, 0), libvirtd("hv1", 10, 1),
                 event("hv2", "daemon_down", 300), libvirtd("hv2", 10, 0)])
    found = results(store, [DaemonDownRule()])
    assert not found["hv1", "LibvirtdDown"].active
    assert "answer" in found["hv1", "LibvirtdDown"].annotations["description"]
    assert found["hv2", "LibvirtdDown"].active  # its newest point still says down


def test_a_hang_ends_when_the_newest_libvirtd_point_says_not_hung(store):
    store.write([event("hv1", "hang_start", 120), libvirtd("hv1", 5, 1, hung=0),
                 event("hv2", "hang_start", 120), libvirtd("hv2", 5, 1, hung=1)])
    found = results(store, [DaemonHungRule()])
    assert not found["hv1", "LibvirtdHung"].active and found["hv2", "LibvirtdHung"].active


def test_an_agent_silent_for_longer_than_the_threshold_pages_and_a_writing_one_does_not(store):
    collector = lambda host, ago: Point("collector", {"host": host}, {"scrape_duration_ms": 5.0},  # noqa: E731
                                        NOW - int(ago * S))
    store.write([collector("hv1", 15), collector(HOSTILE, 600), collector("hv3", 2 * 86400 + 600)])
    found = results(store, [AgentSilentRule(after_seconds=60)], hosts=["hv3"])
    assert not found["hv1", "AgentSilent"].active
    silent = found[HOSTILE, "AgentSilent"]
    assert silent.active and "600 s" in silent.annotations["summary"] and silent.labels["host"] == HOSTILE
    assert not found["hv3", "AgentSilent"].active  # silent for 2 days: decommissioned

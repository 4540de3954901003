"""Event rules over planted events (and diagnoses, forensics bundles) in the embedded store and a real InfluxDB 1.6."""

from __future__ import annotations

import urllib.parse

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


def results(store, rules, hosts=(), external_url=None):
    """Return {(host, alertname): RuleResult}."""
    return {(r.host, r.labels["alertname"]): r
            for r in evaluate_event_rules(store, rules, NOW, hosts=hosts, external_url=external_url)}


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
    assert silent.active and "10 min" in silent.annotations["summary"] and silent.labels["host"] == HOSTILE
    assert not found["hv3", "AgentSilent"].active  # silent for 2 days: decommissioned


# --- the diagnosis and the forensics bundle of an incident ------------------------------------------------------

GUEST = 'web "1" \\ <b>&amp;</b> *bold* _it_ :fire: <!channel> ünï😀'
DASHBOARD = "https://dash.example:8443/virtwatch/"


def diagnosis(host: str, trigger: str, seconds_ago: float, cause: str) -> Point:
    return Point("diagnosis", {"host": host, "trigger": trigger},
                 {"cause": cause, "hang_seconds": 0.0, "workers_busy": 10}, NOW - int(seconds_ago * S))


def bundle(host: str, trigger: str, seconds_ago: float, file: str) -> Point:
    return Point("forensics", {"host": host, "trigger": trigger},
                 {"bundle": '{"version": 1}', "encoding": "json", "size_bytes": 14, "capture_ms": 3.0,
                  "steps_cut": "", "cause": "captured", "file": file}, NOW - int(seconds_ago * S))


def cause(host: str, seconds: int) -> str:
    return (f"libvirtd on {host} hung {seconds} s: 10 of 10 workers busy, 8 calls queued; they wait on guest "
            f"'{GUEST}' whose QEMU is stopped (state T); 14 connections from memstat-poller (pid 4242)")


def link_of(url: str) -> tuple[str, dict[str, list[str]]]:
    """Return a link's address without its query, and its query parsed (independently of the code under test)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", urllib.parse.parse_qs(parts.query, strict_parsing=True)


def two_hangs(host: str) -> list[Point]:
    """A hang that ended 200 s ago with its diagnoses and bundle, and the current one since 60 s ago with two."""
    return [event(host, "hang_start", 400, "libvirtd hung: probe timed out"), event(host, "hang_end", 200),
            diagnosis(host, "hang_start", 400, "the previous hang's first diagnosis"),
            diagnosis(host, "hang", 250, "the previous hang's last diagnosis"),
            bundle(host, "hang", 300, "/var/lib/virtwatch/forensics/previous.json"),
            event(host, "hang_start", 60, "libvirtd hung: probe timed out after 5 s"),
            diagnosis(host, "hang_start", 60, cause(host, 5)),
            diagnosis(host, "hang", 10, cause(host, 50)),
            bundle(host, "hang", 30, "/var/lib/virtwatch/forensics/current.json")]


@pytest.fixture(params=["duckdb", pytest.param("influxdb", marks=pytest.mark.influxdb)])
def any_store(request):
    """The embedded store, and a real InfluxDB 1.6."""
    return request.getfixturevalue(f"{request.param}_store")


def test_a_hangs_description_starts_with_its_newest_diagnosis_and_links_its_bundle(any_store):
    any_store.write(two_hangs(HOSTILE))
    hung = results(any_store, [DaemonHungRule()], external_url=DASHBOARD)[HOSTILE, "LibvirtdHung"]
    assert hung.active
    description = hung.annotations["description"]
    assert description.startswith(cause(HOSTILE, 50) + "\n")  # the newer diagnosis of this hang, exactly
    assert "probe timed out after 5 s" in description  # then the evidence
    assert "previous hang" not in description
    address, query = link_of(hung.annotations["forensics"])
    assert address == "https://dash.example:8443/virtwatch/forensics"
    assert query == {"host": [HOSTILE], "time": [str(NOW - 30 * S)]}  # the current hang's bundle


def test_a_hang_with_only_the_previous_hangs_diagnosis_says_no_cause_and_links_no_bundle(store):
    store.write([p for p in two_hangs("hv1") if p.measurement == "event" or p.time_ns < NOW - 100 * S])
    hung = results(store, [DaemonHungRule()], external_url=DASHBOARD)["hv1", "LibvirtdHung"]
    assert hung.active and hung.annotations["description"].startswith("20")  # the evidence quote's time
    assert "forensics" not in hung.annotations


def test_a_diagnosis_stamped_a_moment_before_its_hang_start_still_explains_the_hang(store):
    store.write([event("hv1", "hang_start", 60), diagnosis("hv1", "hang_start", 60.5, cause("hv1", 5))])
    hung = results(store, [DaemonHungRule()])["hv1", "LibvirtdHung"]
    assert hung.annotations["description"].startswith(cause("hv1", 5) + "\n")


def test_a_segfault_carries_its_diagnosis_and_without_an_external_url_the_bundles_file_on_the_host(any_store):
    any_store.write([event(HOSTILE, "segfault", 120, "libvirtd[123]: segfault at 0 ip ..."),
                     diagnosis(HOSTILE, "segfault", 119, f"libvirtd on {HOSTILE} segfaulted in rpc-worker"),
                     diagnosis(HOSTILE, "hang", 60, "a hang explains no segfault"),
                     bundle(HOSTILE, "segfault", 118, "/var/lib/virtwatch/forensics/segfault 1.json")])
    segfault = results(any_store, [SegfaultRule()])[HOSTILE, "LibvirtdSegfault"]
    assert segfault.annotations["description"].startswith(f"libvirtd on {HOSTILE} segfaulted in rpc-worker\n")
    assert "segfault at 0" in segfault.annotations["description"]
    assert segfault.annotations["forensics"] == f"on {HOSTILE}: /var/lib/virtwatch/forensics/segfault 1.json"


def test_restarts_carry_the_newest_restart_diagnosis_and_a_down_the_segfault_that_took_the_daemon(store):
    store.write([event("hv1", "restart", s) for s in (3000, 2000, 1000)]
                + [diagnosis("hv1", "restart", 2000, "restarted: the old process was killed by the OOM killer"),
                   diagnosis("hv1", "restart", 1000, "restarted: the old process exited with status 1")]
                + [diagnosis("hv2", "segfault", 42, "libvirtd on hv2 segfaulted in virNetServerClientClose"),
                   bundle("hv2", "segfault", 41, "/var/lib/virtwatch/forensics/hv2.json"),
                   event("hv2", "daemon_down", 40, "libvirtd down: no process")])
    found = results(store, [RestartRule(), DaemonDownRule()], external_url=DASHBOARD)
    restarts = found["hv1", "LibvirtdRestarting"].annotations
    assert restarts["description"].startswith("restarted: the old process exited with status 1\n")
    assert "forensics" not in restarts
    down = found["hv2", "LibvirtdDown"]
    assert down.active and down.annotations["description"].startswith("libvirtd on hv2 segfaulted in")
    assert link_of(down.annotations["forensics"])[1] == {"host": ["hv2"], "time": [str(NOW - 41 * S)]}


class CountingStore:
    """The real store, recording each read made through it as (method, measurement, fields)."""

    def __init__(self, store) -> None:
        self.store = store
        self.reads: list[tuple[str, str, tuple[str, ...]]] = []

    def events(self, *args, **kwargs):
        self.reads.append(("events", "event", ("message",)))
        return self.store.events(*args, **kwargs)

    def latest(self, measurement, fields, *args, **kwargs):
        self.reads.append(("latest", measurement, tuple(fields)))
        return self.store.latest(measurement, fields, *args, **kwargs)

    def query(self, measurement, fields, *args, **kwargs):
        self.reads.append(("query", measurement, tuple(fields)))
        return self.store.query(measurement, fields, *args, **kwargs)

    def read(self, query):
        self.reads.append(("read", query.measurement, query.fields))
        return self.store.read(query)

    def tag_values(self, measurement, tag, *args, **kwargs):
        self.reads.append(("tag_values", measurement, (tag,)))
        return self.store.tag_values(measurement, tag, *args, **kwargs)


def test_rules_nothing_explains_read_neither_diagnosis_nor_forensics(store):
    counting = CountingStore(store)
    evaluate_event_rules(counting, [DomainFailureStormRule(), AgentSilentRule()], NOW)
    assert not [read for read in counting.reads if read[1] in ("diagnosis", "forensics")]


def test_one_round_reads_diagnosis_and_forensics_once_however_many_hosts_hang(tmp_path):
    reads = {}
    for hosts in (1, 30):
        store = open_store(f"duckdb://{tmp_path}/{hosts}.duckdb")
        try:
            store.write([p for i in range(hosts) for p in two_hangs(f"hv{i}")])
            counting = CountingStore(store)
            found = evaluate_event_rules(counting, default_rules(), NOW, external_url=DASHBOARD)
            assert [r.host for r in found if r.active] == sorted(f"hv{i}" for i in range(hosts))
            assert all(r.annotations["description"].startswith(cause(r.host, 50)) for r in found if r.active)
            reads[hosts] = counting.reads
        finally:
            store.close()
    assert reads[1] == reads[30]
    assert [read for read in reads[30] if read[1] in ("diagnosis", "forensics")] == [
        ("latest", "diagnosis", ("cause",)), ("latest", "forensics", ("cause", "file"))]  # never the bundle

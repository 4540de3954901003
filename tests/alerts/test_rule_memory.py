"""The event rules' memory: the same results as reading everything, from reads of only what is new."""

from __future__ import annotations

import random

import pytest

from alerts.event_rules import AgentSilentRule, DaemonDownRule, default_rules, evaluate_event_rules
from alerts.rule_memory import RuleMemory
from tsdb import Point, open_store
from tsdb.schema import EVENT_KINDS

S = 10**9
NOW = 1_700_000_000 * S
HOSTILE = 'hv 2,=\'x"\\y ünï😀'
KINDS = ["restart", "domain_failed", "domain_crashed", "hang_start", "hang_end", "daemon_down", "daemon_up",
         "segfault"]


def event(host: str, kind: str, at_ns: int) -> Point:
    return Point("event", {"host": host, "kind": kind, "severity": EVENT_KINDS[kind].severity},
                 {"message": f"{kind} on {host}", "count": 1}, at_ns)


def agents(hosts, at_ns: int) -> list[Point]:
    return [Point("collector", {"host": host}, {"scrape_duration_ms": 1.0}, at_ns) for host in hosts]


class RowCounter:
    """The real store, counting the reads made through it and the rows they returned."""

    def __init__(self, store) -> None:
        self.store, self.queries, self.rows = store, 0, 0

    def _counted(self, frame):
        self.queries += 1
        self.rows += len(frame)
        return frame

    def events(self, *args, **kwargs):
        return self._counted(self.store.events(*args, **kwargs))

    def latest(self, *args, **kwargs):
        return self._counted(self.store.latest(*args, **kwargs))

    def query(self, *args, **kwargs):
        return self._counted(self.store.query(*args, **kwargs))

    def tag_values(self, *args, **kwargs):
        found = self.store.tag_values(*args, **kwargs)
        self.queries += 1
        self.rows += len(found)
        return found


@pytest.fixture(params=["duckdb", "influxdb"])
def store(request, tmp_path):
    if request.param == "duckdb":
        store = open_store(f"duckdb://{tmp_path}/s.duckdb")
    else:
        server, database = request.getfixturevalue("influxdb_database")
        store = open_store(f"influxdb://127.0.0.1:{server.port}/{database}")
    yield store
    store.close()


def by_key(results):
    return {(r.host, r.labels["alertname"]): r for r in results}


def test_round_after_round_the_memory_gives_what_reading_everything_gives(store):
    rng = random.Random(7)
    hosts = [f"hv{i}" for i in range(12)] + [HOSTILE]
    store.write([event(rng.choice(hosts), rng.choice(KINDS), NOW - rng.randint(1, 7 * 86400) * S)
                 for _ in range(80)])
    store.write(agents(hosts[1:], NOW - 20 * S))
    memory, tracked, compared = RuleMemory(store, default_rules()), set(), 0
    for round_ in range(40):
        now = NOW + round_ * 5 * S
        if round_ % 2 == 0:
            store.write(agents(hosts[1:], now - S))
        if rng.random() < 0.6:  # a new event, sometimes written a minute late (the overlap re-reads it)
            store.write([event(rng.choice(hosts), rng.choice(KINDS), now - rng.choice([1, 1, 1, 60]) * S)])
        everything = by_key(evaluate_event_rules(store, default_rules(), now))
        remembered = by_key(memory.evaluate(now, hosts=tracked))
        assert {k for k, r in remembered.items() if r.active} == {k for k, r in everything.items() if r.active}
        for key, result in remembered.items():
            assert (result.active, result.annotations) == (everything[key].active, everything[key].annotations)
            compared += 1
        tracked = {host for host, _ in remembered if remembered[host, _].active}
    assert compared > 100  # the memory evaluated many hosts along the way, not just nothing


def test_a_quiet_fleet_reads_no_event_and_evaluates_no_host_after_the_first_round(tmp_path):
    store = open_store(f"duckdb://{tmp_path}/s.duckdb")
    hosts = [f"hv{i:03d}" for i in range(300)]
    store.write([p for i, host in enumerate(hosts) for p in
                 (event(host, "daemon_down", NOW - (i + 2) * 3600 * S), event(host, "daemon_up", NOW - (i + 1) * 3600 * S))])
    store.write(agents(hosts, NOW - 5 * S))
    counter = RowCounter(store)
    memory = RuleMemory(counter, default_rules())
    assert not [r for r in memory.evaluate(NOW) if r.active]
    first = counter.rows
    assert first >= 600  # the first round read the week of events
    rows = []
    for round_ in range(1, 6):
        now = NOW + round_ * 5 * S
        store.write(agents(hosts, now - S))
        counter.rows = 0
        assert memory.evaluate(now) == []
        assert memory.reads.evaluated_hosts == 0
        rows.append(counter.rows)
    assert all(count <= 2 * len(hosts) for count in rows)  # the agents' newest points, no event
    store.close()


def test_an_event_spooled_longer_than_the_overlap_counts_after_the_resync(tmp_path):
    store = open_store(f"duckdb://{tmp_path}/s.duckdb")
    store.write(agents(["hv1"], NOW))
    memory = RuleMemory(store, [DaemonDownRule()], overlap_seconds=60, resync_seconds=600)
    memory.evaluate(NOW)
    store.write([event("hv1", "daemon_down", NOW - 300 * S)])  # replayed from the agent's spool, 5 min old
    now = NOW + 5 * S
    assert not by_key(memory.evaluate(now)).get(("hv1", "LibvirtdDown"))
    later = NOW + 600 * S
    found = by_key(memory.evaluate(later))[("hv1", "LibvirtdDown")]
    assert found.active and memory.reads.resynced
    store.close()


def test_a_restarted_engine_still_sees_an_agent_silent_for_hours(tmp_path):
    store = open_store(f"duckdb://{tmp_path}/s.duckdb")
    store.write(agents(["hv-quiet", HOSTILE], NOW - 3 * 3600 * S) + agents([HOSTILE], NOW - 5 * S))
    found = by_key(RuleMemory(store, [AgentSilentRule()]).evaluate(NOW))
    assert found["hv-quiet", "AgentSilent"].active
    assert (HOSTILE, "AgentSilent") not in found  # writing: nothing to say
    store.close()


def test_a_down_daemon_that_answers_again_without_an_up_event_resolves(tmp_path):
    store = open_store(f"duckdb://{tmp_path}/s.duckdb")
    store.write([event("hv1", "daemon_down", NOW - 120 * S)] + agents(["hv1"], NOW - 5 * S))
    memory = RuleMemory(store, [DaemonDownRule()])
    assert by_key(memory.evaluate(NOW))["hv1", "LibvirtdDown"].active
    store.write([Point("libvirtd", {"host": "hv1"}, {"up": 1.0, "hung": 0.0}, NOW + 2 * S)])
    result = by_key(memory.evaluate(NOW + 5 * S))["hv1", "LibvirtdDown"]
    assert not result.active and "answer" in result.annotations["description"]
    store.close()


def test_a_decommissioned_host_silent_for_days_is_no_longer_evaluated(tmp_path):
    store = open_store(f"duckdb://{tmp_path}/s.duckdb")
    store.write(agents(["hv-gone"], NOW - 3 * 86400 * S) + agents(["hv1"], NOW - 5 * S))
    memory = RuleMemory(store, default_rules())
    assert memory.evaluate(NOW) == [] and memory.reads.evaluated_hosts == 0
    reference = by_key(evaluate_event_rules(store, default_rules(), NOW))
    assert not reference["hv-gone", "AgentSilent"].active  # what reading everything says too
    store.close()


def test_rounds_that_change_nothing_go_over_every_hosts_events_once_a_minute_and_a_new_event_at_once(store):
    from alerts.rule_memory import TRIM_SECONDS

    hosts = [f"hv{i}" for i in range(5)] + [HOSTILE]
    store.write([event(host, "restart", NOW - 3 * 86400 * S) for host in hosts]
                + [event(HOSTILE, "restart", NOW - 30 * S)] + agents(hosts, NOW - 5 * S))
    memory = RuleMemory(store, default_rules())
    memory.evaluate(NOW)
    assert memory.reads.trimmed
    trimmed = []
    for round_ in range(1, 2 * TRIM_SECONDS // 2 + 1):  # a round every 2 s for two minutes, nothing new
        memory.evaluate(NOW + round_ * 2 * S)
        trimmed.append(memory.reads.trimmed)
    assert trimmed.count(True) == 2 and trimmed.index(True) == TRIM_SECONDS // 2 - 1  # once a minute
    store.write([event(HOSTILE, "restart", NOW + 125 * S)])
    memory.evaluate(NOW + 126 * S)
    assert memory.reads.trimmed

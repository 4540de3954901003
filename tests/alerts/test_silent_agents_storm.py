"""Agents that go silent together are one page: half a fleet's agents stop writing at once (a partition between the
hosts and the store) and on-call gets one fleet page naming them, held for as long as the silence lasts, resolved
when they write again; one agent that goes silent alone still pages on its own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerts.engine import Engine
from alerts.event_rules import AgentSilentRule
from alerts.notify import Backoff, notifier_for
from tsdb import Point
from virtwatch.config import ReceiverConfig

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
S = 10**9
HOSTILE = 'hv 2,"quoted"=\\tail ü🙂'
HOSTS = [HOSTILE] + [f"hv-{n:02d}" for n in range(1, 40)]


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def collector_points(host: str, start: datetime, end: datetime) -> list[Point]:
    """The agent's collector points every 10 s in [start, end)."""
    first, last = int(start.timestamp()), int(end.timestamp())
    return [Point("collector", {"host": host}, {"scrape_duration_ms": 3.0}, t * S) for t in range(first, last, 10)]


@pytest.fixture
def engine_at(duckdb_store, http_receiver, tmp_path):
    """An engine with only the AgentSilent rule over the DuckDB store, its clock, paging a real HTTP receiver."""
    clock = Clock()
    hook = ReceiverConfig(name="oncall", type="webhook", url=http_receiver.url + "/hook", timeout_seconds=2)
    engine = Engine(duckdb_store, [], [AgentSilentRule(after_seconds=60)], {"oncall": notifier_for(hook)},
                    tmp_path / "state", clock=clock, backoff=Backoff(base_seconds=0.01, max_seconds=0.02,
                                                                     max_attempts=2))
    return engine, clock


def notices(receiver) -> list[tuple[str, str, str]]:
    """(status, host or "fleet", summary) of every AgentSilent alert delivered, in order."""
    found = []
    for request in receiver.delivered:
        for alert in request.json()["alerts"]:
            if alert["labels"]["alertname"] == "AgentSilent":
                found.append((alert["status"], alert["labels"].get("host", alert["labels"].get("scope")),
                              alert["annotations"]["summary"]))
    return found


def rounds_until(engine: Engine, clock: Clock, end: datetime, every_seconds: float = 10.0) -> int:
    """Run rules rounds (and delivery) every `every_seconds` of the test's clock up to `end`; return how many."""
    count = 0
    while clock.now < end:
        clock.now += timedelta(seconds=every_seconds)
        assert engine.run_round(slos=False).error is None
        count += 1
    return count


def test_half_the_agents_going_silent_together_is_one_fleet_page_for_as_long_as_it_lasts(engine_at, duckdb_store,
                                                                                         http_receiver):
    engine, clock = engine_at
    writing, silent = HOSTS[20:], HOSTS[:20]
    duckdb_store.write([p for host in writing for p in collector_points(host, T0 - timedelta(minutes=10),
                                                                        T0 + timedelta(hours=2))])
    duckdb_store.write([p for host in silent for p in collector_points(host, T0 - timedelta(minutes=10), T0)])
    assert rounds_until(engine, clock, T0 + timedelta(seconds=50)) == 5
    assert notices(http_receiver) == []  # nobody silent for a minute yet
    rounds_until(engine, clock, T0 + timedelta(hours=1))  # an hour of partition, past the 15-minute hold
    assert [(status, who) for status, who, _ in notices(http_receiver)] == [("firing", "fleet")]
    [(_, _, summary)] = notices(http_receiver)
    assert summary.startswith("AgentSilent: 20 of 40 hosts have agents that went silent together, a fleet-wide "
                              "cause: ")
    assert HOSTILE in summary  # the sample names the first hosts by name, the hostile one among them
    # the partition heals: every silent agent writes again (its spool replayed), the fleet page resolves alone
    duckdb_store.write([p for host in silent for p in collector_points(host, clock.now, T0 + timedelta(hours=2))])
    rounds_until(engine, clock, clock.now + timedelta(minutes=2))
    assert [(status, who) for status, who, _ in notices(http_receiver)] == [("firing", "fleet"), ("resolved", "fleet")]


def test_one_agent_going_silent_alone_pages_for_its_host_only(engine_at, duckdb_store, http_receiver):
    engine, clock = engine_at
    duckdb_store.write([p for host in HOSTS[1:] for p in collector_points(host, T0 - timedelta(minutes=10),
                                                                          T0 + timedelta(hours=1))])
    duckdb_store.write(collector_points(HOSTILE, T0 - timedelta(minutes=10), T0))
    rounds_until(engine, clock, T0 + timedelta(minutes=5))
    assert [(status, who) for status, who, _ in notices(http_receiver)] == [("firing", HOSTILE)]

"""The running engine's cadences: a stuck SLO round or a receiver that never answers delays no page."""

from __future__ import annotations

import threading
import time

import pytest

from alerts.engine import Engine
from alerts.event_rules import DaemonDownRule
from alerts.notify import Backoff, notifier_for
from alerts.slo import SLO
from receivers import TIMEOUT, HTTPReceiver
from servers import free_port
from tsdb import Point
from tsdb.schema import EVENT_KINDS
from virtwatch.config import ReceiverConfig

S = 10**9
HOSTILE = 'hv 2,"quoted"=\\tail ü🙂'


class StuckRollups:
    """The real store, except that reads of the `sli` rollups wait until released (a store drowning in the SLO
    round's reads); counts the reads begun and finished."""

    def __init__(self, store) -> None:
        self.store = store
        self.release = threading.Event()
        self.begun = self.finished = 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def _maybe_stuck(self, measurement, read):
        if measurement != "sli":
            return read()
        self.begun += 1
        self.release.wait()
        try:
            return read()
        finally:
            self.finished += 1

    def latest(self, measurement, *args, **kwargs):
        return self._maybe_stuck(measurement, lambda: self.store.latest(measurement, *args, **kwargs))

    def query(self, measurement, *args, **kwargs):
        return self._maybe_stuck(measurement, lambda: self.store.query(measurement, *args, **kwargs))

    def read(self, query):
        return self._maybe_stuck(query.measurement, lambda: self.store.read(query))


def down_event(host: str, seconds_ago: float) -> Point:
    return Point("event", {"host": host, "kind": "daemon_down", "severity": EVENT_KINDS["daemon_down"].severity},
                 {"message": f"libvirtd down on {host}", "count": 1}, time.time_ns() - int(seconds_ago * S))


def hook(name: str, url: str, timeout_seconds: float = 30) -> ReceiverConfig:
    return ReceiverConfig(name=name, type="webhook", url=url + "/hook", timeout_seconds=timeout_seconds)


def wait_for(condition, seconds: float = 60.0) -> bool:
    """Poll `condition` (a test timeout, never a claim about speed)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def running():
    """Run an engine's threads until the test ends: yields start(engine)."""
    started = []

    def start(engine: Engine) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
        thread.start()
        started.append((stop, thread))

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(30)


def pages_for(receiver: HTTPReceiver) -> list[str]:
    return [alert["labels"]["host"] for request in receiver.delivered for alert in request.json()["alerts"]
            if request.json()["status"] == "firing"]


def test_a_dead_daemon_pages_while_the_slo_round_is_stuck_on_the_store(duckdb_store, http_receiver, tmp_path,
                                                                        running):
    stuck = StuckRollups(duckdb_store)
    engine = Engine(stuck, [SLO("availability", 99.9, "libvirtd_availability")], [DaemonDownRule(after_seconds=1)],
                    {"oncall": notifier_for(hook("oncall", http_receiver.url))}, tmp_path / "state",
                    slo_interval_seconds=0.2, rules_interval_seconds=0.2,
                    backoff=Backoff(base_seconds=0.01, max_seconds=0.02, max_attempts=2))
    try:
        running(engine)
        assert wait_for(lambda: stuck.begun == 1)  # the SLO round waits on the store
        duckdb_store.write([down_event(HOSTILE, 5)])
        assert wait_for(lambda: pages_for(http_receiver) == [HOSTILE])
        assert (stuck.begun, stuck.finished) == (1, 0)  # paged while the SLO round was still stuck
    finally:
        stuck.release.set()


def test_a_receiver_that_never_answers_delays_no_other_receivers_page(duckdb_store, http_receiver, tmp_path,
                                                                     running):
    hung = HTTPReceiver(port=free_port())
    hung.start()
    hung.script(*[TIMEOUT] * 10)
    try:
        # its deadline is far longer than the test waits for any page: a page that waited for it never comes
        notifiers = {"hung": notifier_for(hook("hung", hung.url, timeout_seconds=600)),
                     "oncall": notifier_for(hook("oncall", http_receiver.url))}
        engine = Engine(duckdb_store, [], [DaemonDownRule(after_seconds=1)], notifiers, tmp_path / "state",
                        rules_interval_seconds=0.2, backoff=Backoff(base_seconds=0.01, max_seconds=0.02,
                                                                   max_attempts=2))
        running(engine)
        duckdb_store.write([down_event("hv-a", 5)])
        assert wait_for(lambda: pages_for(http_receiver) == ["hv-a"])
        duckdb_store.write([down_event("hv-b", 5)])  # a second incident while the first is still held
        assert wait_for(lambda: sorted(pages_for(http_receiver)) == ["hv-a", "hv-b"])
        assert len(hung.requests) == 1 and hung.delivered == []  # still holding the first, nothing answered
    finally:
        hung.stop()

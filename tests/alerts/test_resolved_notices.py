"""A RESOLVED notice says what is true now: the engine over a real store resolves through every receiver type (a
real HTTP receiver), and each resolved payload carries the current figures, the firing evidence only as "was"."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerts.engine import SLO_ALERTNAME, Engine
from alerts.event_rules import DaemonDownRule
from alerts.notify import Backoff, notifier_for
from alerts.slo import SLO
from tsdb import Point
from tsdb.schema import EVENT_KINDS
from virtwatch.config import ReceiverConfig

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
S = 10**9
HOST = 'hv 2,"quoted"=\\tail ü🙂'
#: receiver type -> the path it posts to on the test's HTTP receiver
PATHS = {"webhook": "/hook", "alertmanager": "/am/api/v2/alerts", "pagerduty": "/pd", "slack": "/slack"}


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


def event(host: str, kind: str, at: datetime, message: str) -> Point:
    return Point("event", {"host": host, "kind": kind, "severity": EVENT_KINDS[kind].severity},
                 {"message": message, "count": 1}, ns(at))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def engine_of(duckdb_store, http_receiver, tmp_path, clock):
    """Build an engine over the store that notifies every receiver type, each at its own path of the receiver."""
    def make(slos=(), rules=()):
        notifiers = {}
        for kind, path in PATHS.items():
            url = http_receiver.url + (path.removesuffix("/api/v2/alerts") if kind == "alertmanager" else path)
            config = ReceiverConfig(name=kind, type=kind, url=url, timeout_seconds=2,
                                    routing_key="r0utingkey" if kind == "pagerduty" else None)
            notifiers[kind] = notifier_for(config)
        return Engine(duckdb_store, slos, rules, notifiers, tmp_path / "state", clock=clock,
                      backoff=Backoff(base_seconds=0.01, max_seconds=0.02, max_attempts=2))
    return make


def sent(receiver, path: str) -> list:
    """Return the bodies the receiver got at `path`, in order."""
    return [request.json() for request in receiver.delivered if request.path == path]


def resolved_in(kind: str, body) -> list[dict]:
    """Return what a receiver type's body says about its resolved alerts: [{"summary", "was", "text"}]."""
    if kind == "webhook":
        return [{"summary": a["annotations"]["summary"], "was": a["annotations"].get("was_summary", ""),
                 "text": a["annotations"].get("description", "")} for a in body["alerts"] if a["status"] == "resolved"]
    if kind == "alertmanager":
        return [{"summary": a["annotations"]["summary"], "was": a["annotations"].get("was_summary", ""),
                 "text": a["annotations"].get("description", "")} for a in body if "endsAt" in a]
    if kind == "pagerduty":
        if body["event_action"] != "resolve":
            return []
        details = body["payload"]["custom_details"]
        return [{"summary": body["payload"]["summary"], "was": details.get("was", ""),
                 "text": details.get("description", "")}]
    if not body["text"].startswith("RESOLVED"):
        return []
    return [{"summary": body["text"], "was": "", "text": "\n".join(b["text"]["text"] for b in body["blocks"]
                                                                   if b["type"] == "section")}]


@pytest.mark.parametrize("kind", list(PATHS))
def test_a_resolved_daemon_down_notice_says_libvirtd_is_up_again_not_that_it_is_down(
        kind, engine_of, duckdb_store, http_receiver, clock):
    engine = engine_of(rules=[DaemonDownRule(after_seconds=5)])
    duckdb_store.write([event(HOST, "daemon_down", T0, "libvirtd down: connection closed (eof)")])
    clock.advance(10)
    engine.run_round()
    [page] = sent(http_receiver, PATHS[kind])
    assert resolved_in(kind, page) == []
    duckdb_store.write([event(HOST, "daemon_up", clock.now, "libvirtd answers again: probe 12 ms")])
    clock.advance(1)
    engine.run_round()
    notices = [found for body in sent(http_receiver, PATHS[kind]) for found in resolved_in(kind, body)]
    [notice] = notices
    up_at = (T0 + timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"libvirtd is no longer down: daemon_up at {up_at}" in notice["summary"]
    assert "probe 12 ms" in notice["text"]  # the event that ended it, quoted
    assert "down for" not in notice["summary"] and "eof" not in notice["summary"]
    if kind == "slack":  # the message says what it fired with on a line of its own
        assert "\nwas: libvirtd down for 10 s" in notice["text"]
    else:
        assert notice["was"].startswith("libvirtd down for 10 s (since ")


def test_a_resolved_notice_keeps_the_firing_summary_and_description_as_was(engine_of, duckdb_store,
                                                                                   http_receiver, clock):
    engine = engine_of(rules=[DaemonDownRule(after_seconds=5)])
    duckdb_store.write([event("hv1", "daemon_down", T0, "libvirtd down: connection closed (eof)")])
    clock.advance(10)
    engine.run_round()
    [page] = sent(http_receiver, PATHS["webhook"])
    firing = page["alerts"][0]["annotations"]
    duckdb_store.write([event("hv1", "daemon_up", clock.now, "libvirtd up")])
    clock.advance(1)
    engine.run_round()
    resolved = sent(http_receiver, PATHS["webhook"])[-1]["alerts"][0]
    assert resolved["status"] == "resolved"
    assert resolved["annotations"]["was_summary"] == firing["summary"]
    assert resolved["annotations"]["was_description"] == firing["description"]
    assert resolved["annotations"]["summary"] != firing["summary"]


def test_a_resolved_burn_page_carries_the_burn_rates_of_now_not_those_it_fired_with(engine_of, duckdb_store,
                                                                                    http_receiver, clock):
    slo = SLO("libvirtd-availability", 99.9, "libvirtd_availability")
    start = ns(T0) - 2 * 3600 * S

    def probes(first_ns: int, last_ns: int, hv1_ok) -> list[Point]:
        return [Point("libvirtd", {"host": host}, {"probe_ok": 1 if host != "hv1" else hv1_ok(at)}, at)
                for at in range(first_ns, last_ns, 10 * S) for host in ("hv1", "hv2", "hv3", "hv4", "hv5", "hv6")]

    duckdb_store.write(probes(start, ns(T0), lambda at: 0 if at >= ns(T0) - 600 * S else 1))
    engine = engine_of(slos=[slo])
    engine.run_round()
    clock.advance(30)
    engine.run_round()  # hv1 pages once the storm gate's wait is over

    def hv1_page(body):
        return [a for a in body["alerts"] if a["labels"].get("host") == "hv1" and a["labels"]["severity"] == "page"]

    [firing] = [a for body in sent(http_receiver, PATHS["webhook"]) for a in hv1_page(body)]
    assert firing["status"] == "firing" and firing["labels"]["alertname"] == SLO_ALERTNAME
    # hv1 answers every probe again: rounds every five minutes until the page resolves (its 30 m window clears)
    duckdb_store.write(probes(ns(T0), ns(T0) + 3600 * S, lambda at: 1))
    rounds = 0
    while not [a for body in sent(http_receiver, PATHS["webhook"]) for a in hv1_page(body)
               if a["status"] == "resolved"]:
        assert rounds < 12, "hv1's page never resolved in an hour of good probes"
        clock.advance(300)
        engine.run_round()
        rounds += 1
    [resolved] = [a for body in sent(http_receiver, PATHS["webhook"]) for a in hv1_page(body)
                  if a["status"] == "resolved"]
    notes = resolved["annotations"]
    assert " and 0x over " in notes["summary"], notes  # the short window burns nothing now
    assert "FIRING" not in notes["description"], notes  # no window pair fires now
    assert notes["summary"] != firing["annotations"]["summary"]
    assert "FIRING" in notes["was_description"]  # what it fired with, kept apart
    # PagerDuty: the group (hv1, the SLO) stays triggered by the ticket tier that fires once the page no longer
    # inhibits it; the resolved page is listed in its details with the figures of now
    [pd] = [r for b in sent(http_receiver, PATHS["pagerduty"]) for r in b["payload"]["custom_details"]["resolved"]
            if r["labels"].get("host") == "hv1"]
    assert pd["annotations"]["summary"] == notes["summary"]


def test_the_alert_history_records_a_resolve_with_what_its_notice_said(engine_of, duckdb_store, http_receiver,
                                                                         clock):
    engine = engine_of(rules=[DaemonDownRule(after_seconds=5)])
    duckdb_store.write([event(HOST, "daemon_down", T0, "libvirtd down: connection closed (eof)")])
    clock.advance(10)
    engine.run_round()
    duckdb_store.write([event(HOST, "daemon_up", clock.now, "libvirtd answers again: probe 12 ms")])
    clock.advance(1)
    engine.run_round()
    history = duckdb_store.query("alert", ["status", "summary"], 0, 2**62, where={"alertname": "LibvirtdDown"},
                                 group_by=["host"])
    assert list(history["status"]) == ["firing", "resolved"] and set(history["host"]) == {HOST}
    firing, resolved = history["summary"]
    [notice] = [found for body in sent(http_receiver, PATHS["webhook"]) for found in resolved_in("webhook", body)]
    assert resolved == notice["summary"] and resolved != firing
    assert firing.startswith("libvirtd down for 10 s")

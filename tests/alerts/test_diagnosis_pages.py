"""A hang's page on every receiver says why (the agent's newest diagnosis) and where its forensics bundle is.

The engine reads planted events, diagnoses and bundles from a real store and pages a real HTTP receiver as a
webhook, PagerDuty and Slack, and Debian's Alertmanager. The cause sentence names a guest whose name holds
quotes, a backslash, `<`, `&`, `*`, `_` and unicode: it must arrive exactly, and on Slack as text, not markup.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from alerts.engine import Engine
from alerts.event_rules import DaemonHungRule
from alerts.notify import Backoff, notifier_for
from servers import http
from tsdb import Point
from tsdb.schema import EVENT_KINDS
from virtwatch.config import ReceiverConfig

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
S = 10**9
HOST = 'hv 7,"quoted"=\\tail <!here> & *b* ü🙂'
GUEST = 'web "1" \\ <b>&amp;</b> *bold* _it_ ~x~ `y` :fire: <!channel> ünï😀'
CAUSE = (f"libvirtd on {HOST} hung 45 s: 10 of 10 workers busy, 8 calls queued; they wait on guest '{GUEST}' "
         "whose QEMU is stopped (state T); 14 connections from memstat-poller (pid 4242)")
DASHBOARD = "https://dash.example:8443/virtwatch"
ROUTING_KEY = "routingkey0123456789abcdef012345"


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * S


def hang(host: str) -> list[Point]:
    """A hang since T0 whose diagnosis grew sharper 15 s in, with its bundle captured at 12 s."""
    return [Point("event", {"host": host, "kind": "hang_start", "severity": EVENT_KINDS["hang_start"].severity},
                  {"message": "libvirtd hung: probe timed out after 5 s", "count": 1}, ns(T0)),
            Point("diagnosis", {"host": host, "trigger": "hang_start"},
                  {"cause": f"libvirtd on {host} hung 5 s: 10 of 10 workers busy"}, ns(T0)),
            Point("diagnosis", {"host": host, "trigger": "hang"}, {"cause": CAUSE.replace(HOST, host)},
                  ns(T0 + timedelta(seconds=15))),
            Point("forensics", {"host": host, "trigger": "hang"},
                  {"bundle": "{}", "encoding": "json", "size_bytes": 2, "capture_ms": 4.0, "steps_cut": "",
                   "cause": "captured", "file": "/var/lib/virtwatch/forensics/hang.json"},
                  ns(T0 + timedelta(seconds=12)))]


def link_query(url: str) -> tuple[str, dict[str, list[str]]]:
    """Return a link's address without its query, and its query parsed."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", urllib.parse.parse_qs(parts.query, strict_parsing=True)


def slack_escaped(text: str) -> str:
    """Return text as Slack requires it: &, < and > as HTML entities, nothing else touched."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def engine_paging(store, tmp_path, receivers: dict[str, ReceiverConfig]) -> Engine:
    """Return an engine at T0 + 20 s paging `receivers` about hangs longer than 10 s, with the dashboard's URL."""
    return Engine(store, [], [DaemonHungRule(after_seconds=10)],
                  {name: notifier_for(config, DASHBOARD) for name, config in receivers.items()},
                  tmp_path / "state", clock=lambda: T0 + timedelta(seconds=20), external_url=DASHBOARD,
                  backoff=Backoff(base_seconds=0.01, max_seconds=0.02, max_attempts=2))


def test_a_hangs_page_carries_its_cause_exactly_and_its_forensics_link_on_webhook_pagerduty_and_slack(
        duckdb_store, http_receiver, tmp_path):
    duckdb_store.write(hang(HOST))
    engine = engine_paging(duckdb_store, tmp_path, {
        "hook": ReceiverConfig(name="hook", type="webhook", url=http_receiver.url + "/hook", timeout_seconds=2),
        "pd": ReceiverConfig(name="pd", type="pagerduty", url=http_receiver.url + "/v2/enqueue",
                             routing_key=ROUTING_KEY, timeout_seconds=2),
        "slack": ReceiverConfig(name="slack", type="slack", url=http_receiver.url + "/services/T0/B0/x",
                                timeout_seconds=2)})
    report = engine.run_round()
    assert report.error is None and report.delivery_failures == 0
    sent = {request.path: request.json() for request in http_receiver.delivered}
    assert sorted(sent) == ["/hook", "/services/T0/B0/x", "/v2/enqueue"]

    (alert,) = sent["/hook"]["alerts"]
    description, link = alert["annotations"]["description"], alert["annotations"]["forensics"]
    assert alert["labels"]["host"] == HOST
    assert description.startswith(CAUSE + "\n\n") and "probe timed out after 5 s" in description
    assert link_query(link) == (DASHBOARD + "/forensics",
                                {"host": [HOST], "time": [str(ns(T0 + timedelta(seconds=12)))]})
    assert sent["/hook"]["commonAnnotations"]["description"] == description

    details = sent["/v2/enqueue"]["payload"]["custom_details"]
    assert details["description"] == description
    assert details["firing"][0]["annotations"] == alert["annotations"]
    assert sent["/v2/enqueue"]["links"] == [{"href": link, "text": f"forensics bundle: LibvirtdHung on {HOST}"}]

    slack = sent["/services/T0/B0/x"]
    texts = [slack["text"]] + [block["text"]["text"] for block in slack["blocks"] if "text" in block]
    assert not any("<" in text or ">" in text for text in texts)  # no mention, no link: all text
    header, section, actions = slack["blocks"]
    assert header["text"]["text"] == slack_escaped(f"FIRING: LibvirtdHung on {HOST}")
    assert section["text"]["type"] == "plain_text" and section["text"]["emoji"] is False  # no markup, no :emoji:
    assert slack_escaped(CAUSE + "\n\n") in section["text"]["text"]
    assert f"forensics: {slack_escaped(link)}" in section["text"]["text"]
    assert actions["elements"][0]["url"] == link
    assert slack["mrkdwn"] is False


def test_slack_keeps_the_cause_when_the_evidence_is_cut_to_its_section_limit(duckdb_store, http_receiver,
                                                                              tmp_path):
    planted = hang("hv1")
    planted[0].fields["message"] = "libvirtd hung: " + "<&>" * 2000  # 9 escaped characters each
    duckdb_store.write(planted)
    engine = engine_paging(duckdb_store, tmp_path, {"slack": ReceiverConfig(
        name="slack", type="slack", url=http_receiver.url + "/s", timeout_seconds=2)})
    engine.run_round()
    (request,) = http_receiver.delivered
    text = request.json()["blocks"][1]["text"]["text"]
    assert 2995 < len(text) <= 3000 and text.endswith("…")
    assert slack_escaped(CAUSE.replace(HOST, "hv1")) in text
    assert text[:-1].endswith(("&lt;", "&amp;", "&gt;"))  # cut between escapes, never inside one


@pytest.mark.slow
def test_alertmanager_shows_the_hangs_cause_and_forensics_link_exactly(duckdb_store, alertmanager_server, tmp_path):
    host = f"{HOST} {uuid.uuid4().hex[:8]}"  # the session's Alertmanager is shared: this test's own host
    duckdb_store.write(hang(host))
    engine = engine_paging(duckdb_store, tmp_path, {"am": ReceiverConfig(
        name="am", type="alertmanager", url=alertmanager_server.url, timeout_seconds=5)})
    assert engine.run_round().delivery_failures == 0
    query = urllib.parse.urlencode({"filter": 'alertname="LibvirtdHung"'})
    status, body = http("GET", f"{alertmanager_server.url}/api/v2/alerts?{query}")
    assert status == 200, body
    (shown,) = [a for a in json.loads(body) if a["labels"]["host"] == host]
    assert shown["annotations"]["description"].startswith(CAUSE.replace(HOST, host) + "\n\n")
    assert link_query(shown["annotations"]["forensics"])[1] == {
        "host": [host], "time": [str(ns(T0 + timedelta(seconds=12)))]}

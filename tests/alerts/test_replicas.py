"""Two replicas of the alert engine, for availability: each with its own state_dir, both over ONE real InfluxDB 1.6,
both with the same receivers. A host's libvirtd goes down and comes back while the two run their rounds in turn.

What on-call then gets depends on the receiver, and the README says so:
- through a real Alertmanager (Debian's prometheus-alertmanager, its webhook a real HTTP receiver): ONE firing
  notification and ONE resolved, since Alertmanager merges the replicas' alerts by their labels;
- PagerDuty (Events API v2, a loopback receiver standing in for it): a trigger from each replica under the SAME
  dedup_key, so one incident, and a resolve from each under it;
- a plain webhook: the incident from each replica, with the same groupKey and fingerprint, to deduplicate by.

The engines' clock is a seam the test moves (a round every ROUND_SECONDS of it, a little in the past so the times
Alertmanager reads are past too); nothing asserts wall time. Waits for Alertmanager only bound a broken run.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alerts.engine import Engine, group_key
from alerts.event_rules import DaemonDownRule
from alerts.notify import AlertmanagerNotifier, Backoff, notifier_for
from alerts.notify.model import fingerprint, format_time
from alerts.notify.pagerduty import dedup_key
from receivers import AlertmanagerServer
from servers import started
from tsdb import Point
from tsdb.schema import EVENT_KINDS
from virtwatch.config import ReceiverConfig

pytestmark = [pytest.mark.slow, pytest.mark.influxdb]

HOST = "hv 07, east"
LABELS = {"alertname": "LibvirtdDown", "severity": "page", "host": HOST}
ROUND_SECONDS = 2      # the replicas' rounds, in turn: each replica evaluates every 4 s of the clock
DOWN_SECONDS = 80      # long enough for each replica's keep-alive to Alertmanager (every 60 s) to go out once
AFTER_ROUNDS = 6       # rounds after both resolved: nothing more may be sent
GROUP_WAIT, GROUP_INTERVAL = "500ms", "1s"
QUIET_SECONDS = 4      # after the resolve: four of Alertmanager's group intervals for anything else to arrive
GIVE_UP_SECONDS = 60   # not a speed requirement: how long a broken run waits for Alertmanager
S = 10**9


class Clock:
    """The replicas' clock, which the test moves; it starts 10 minutes in the past, whole seconds."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=10)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def event(kind: str, at: datetime, message: str) -> Point:
    return Point("event", {"host": HOST, "kind": kind, "severity": EVENT_KINDS[kind].severity},
                 {"message": message, "count": 1}, int(at.timestamp()) * S)


class RecordingAlertmanager(AlertmanagerNotifier):
    """The alertmanager notifier, recording what it posted (the engine re-sends only to alertmanager receivers)."""

    def __init__(self, config: ReceiverConfig) -> None:
        super().__init__(config)
        self.sent = []

    def send(self, notification):
        super().send(notification)
        self.sent.append(notification)


def replica(store, clock, state_dir: Path, notifier) -> Engine:
    """One replica: its own state_dir; the store, clock and receiver configuration the other has."""
    return Engine(store, [], [DaemonDownRule(after_seconds=5)], {notifier.name: notifier}, state_dir, clock=clock,
                  backoff=Backoff(base_seconds=0.01, max_seconds=0.02, max_attempts=2))


def firing_in(engine: Engine) -> bool:
    return any(alert.labels == LABELS for alert in engine.tracker.firing())


def down_and_back(store, clock: Clock, replicas: list[Engine], before_recovery=lambda: None) -> int:
    """Take HOST's libvirtd down; run the replicas' rounds in turn (one every ROUND_SECONDS of the clock) for
    DOWN_SECONDS; call before_recovery; bring it back and run rounds until neither replica has it firing, and
    AFTER_ROUNDS more. Return the rounds run."""
    rounds = 0

    def one_round():
        nonlocal rounds
        clock.advance(ROUND_SECONDS)
        report = replicas[rounds % len(replicas)].run_round()
        assert report.error is None and report.delivery_failures == 0, report
        rounds += 1

    down_at = clock.now
    store.write([event("daemon_down", down_at, "libvirtd down: connection closed (eof)")])
    while clock.now < down_at + timedelta(seconds=DOWN_SECONDS):
        one_round()
    assert all(firing_in(engine) for engine in replicas)
    before_recovery()
    clock.advance(1)
    store.write([event("daemon_up", clock.now, "libvirtd answers again")])
    while any(firing_in(engine) for engine in replicas):
        one_round()
    for _ in range(AFTER_ROUNDS):
        one_round()
    return rounds


def wait_for(what: str, condition, where: str = ""):
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}{where}")


def bodies(receiver) -> list[dict]:
    return [request.json() for request in receiver.delivered]


# --- through Alertmanager: one notification per incident --------------------------------------------------------


class WebhookAlertmanager(AlertmanagerServer):
    """Alertmanager routing every alert, grouped by host and slo as the engine groups, to one webhook."""

    def __init__(self, data_dir, webhook_url: str) -> None:
        super().__init__(data_dir)
        self.webhook_url = webhook_url

    def command(self, binary: str) -> list[str]:
        config = Path(self.data_dir) / "alertmanager.yml"
        config.write_text(f"""route:
  receiver: oncall
  group_by: [host, slo]
  group_wait: {GROUP_WAIT}
  group_interval: {GROUP_INTERVAL}
  repeat_interval: 1h
receivers:
  - name: oncall
    webhook_configs:
      - url: "{self.webhook_url}"
        send_resolved: true
""")
        return [binary, f"--config.file={config}", f"--storage.path={Path(self.data_dir) / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="]


@pytest.fixture
def alertmanager(tmp_path, http_receiver):
    """A private Alertmanager whose only receiver is the test's HTTP receiver."""
    server = started(WebhookAlertmanager(tmp_path / "alertmanager", http_receiver.url + "/hook"))
    yield server
    server.stop()


def test_two_replicas_through_alertmanager_page_once_and_resolve_once(influxdb_store, alertmanager, http_receiver,
                                                                       tmp_path):
    clock = Clock()
    config = ReceiverConfig(name="alertmanager", type="alertmanager", url=alertmanager.url, timeout_seconds=5)
    notifiers = [RecordingAlertmanager(config), RecordingAlertmanager(config)]
    a, b = (replica(influxdb_store, clock, tmp_path / name, n) for name, n in zip("ab", notifiers))
    where = f"; Alertmanager's log:\n{alertmanager.log_tail()}"

    def page_arrived():
        wait_for("the page through Alertmanager", lambda: bodies(http_receiver), where)

    rounds = down_and_back(influxdb_store, clock, [a, b], before_recovery=page_arrived)
    wait_for("the resolve through Alertmanager", lambda: [x for x in bodies(http_receiver)
                                                           if x["status"] == "resolved"], where)
    time.sleep(QUIET_SECONDS)  # a few group intervals: anything else Alertmanager would send arrives by then

    # each replica posted the incident: its first firing, a keep-alive (DOWN_SECONDS > 60 s: Alertmanager resolves
    # alerts nobody re-sends within its resolve_timeout) and its resolve, each with its own annotations and times
    posted = [[alert for n in notifier.sent for alert in n.alerts] for notifier in notifiers]
    assert [[alert.status for alert in each] for each in posted] == [["firing", "firing", "resolved"]] * 2
    starts, ends = [each[0].starts_at for each in posted], [each[-1].ends_at for each in posted]
    assert starts[0] < starts[1] and ends[0] < ends[1]  # replica a fired, and resolved, a round before b
    summaries = {alert.annotations["summary"] for notifier in notifiers for n in notifier.sent for alert in n.alerts}
    assert len(summaries) >= 4  # "libvirtd down for 6 s (...)", "... 8 s ...", the keep-alives' later ones

    # ... and on-call got ONE firing notification and ONE resolved, nothing else. (The alerts start minutes in the
    # past, on the test's clock, so Alertmanager flushes the new group at once rather than after group_wait: the
    # page carries the first post to arrive, replica a's or, when its delivery thread ran late on a loaded machine,
    # b's; the other post of the same alert, the keep-alives and the first resolve each changed the group without
    # a notification of their own.)
    assert rounds > DOWN_SECONDS // ROUND_SECONDS
    got = bodies(http_receiver)
    assert [(x["status"], [alert["status"] for alert in x["alerts"]]) for x in got] == [
        ("firing", ["firing"]), ("resolved", ["resolved"])]
    page, resolve = got
    for body in got:
        [alert] = body["alerts"]
        assert alert["labels"] == LABELS and body["groupLabels"] == {"host": HOST}
        assert alert["fingerprint"]  # Alertmanager's own (a hash of the labels, not ours)
    # Alertmanager's groupKey of the root route is the engine's own group key: a receiver sees one key either way
    assert page["groupKey"] == resolve["groupKey"] == group_key(LABELS)
    # merged by labels: once both posts are in, the earliest start wins (replica a's), whatever the later posts said
    assert page["alerts"][0]["startsAt"] in {_go_time(start) for start in starts}
    assert resolve["alerts"][0]["startsAt"] == _go_time(starts[0])
    # the annotations are those of the newest post before each notification (the page's and the resolve's differ):
    # one of the replicas'; the end is the later replica's resolve
    assert page["alerts"][0]["annotations"]["summary"] in summaries
    assert resolve["alerts"][0]["annotations"]["summary"] in summaries
    assert resolve["alerts"][0]["endsAt"] == _go_time(ends[1])


def _go_time(moment: datetime) -> str:
    """Return a time as Alertmanager's webhook writes it (Go's RFC 3339, no fraction for whole seconds)."""
    return format_time(moment).replace(".000000", "")


# --- PagerDuty: one incident through the shared dedup_key -------------------------------------------------------


def test_two_replicas_paging_pagerduty_trigger_and_resolve_one_incident_under_one_dedup_key(
        influxdb_store, http_receiver, tmp_path):
    http_receiver.script(*[202] * 20)  # PagerDuty's answer to an accepted event
    clock = Clock()
    config = ReceiverConfig(name="pagerduty", type="pagerduty", url=http_receiver.url + "/v2/enqueue",
                            routing_key="R0UTINGKEY0000000000000000000000", timeout_seconds=5)
    a, b = (replica(influxdb_store, clock, tmp_path / name, notifier_for(config)) for name in "ab")
    down_and_back(influxdb_store, clock, [a, b])

    events = bodies(http_receiver)
    assert [(e["event_action"], e["payload"]["source"]) for e in events] == [
        ("trigger", HOST), ("trigger", HOST), ("resolve", HOST), ("resolve", HOST)]
    # the same dedup_key from both replicas: PagerDuty keeps one incident, the second trigger adds to it, the first
    # resolve resolves it and the second finds it resolved
    assert {e["dedup_key"] for e in events} == {dedup_key(group_key(LABELS))}
    assert all(request.path == "/v2/enqueue" for request in http_receiver.delivered)


# --- a plain webhook: each replica's notification, one groupKey ----------------------------------------------


def test_a_plain_webhook_behind_two_replicas_gets_each_replicas_notification_under_one_group_key(
        influxdb_store, http_receiver, tmp_path):
    clock = Clock()
    config = ReceiverConfig(name="oncall", type="webhook", url=http_receiver.url + "/hook", timeout_seconds=5)
    a, b = (replica(influxdb_store, clock, tmp_path / name, notifier_for(config)) for name in "ab")
    down_and_back(influxdb_store, clock, [a, b])

    got = bodies(http_receiver)
    assert [x["status"] for x in got] == ["firing", "firing", "resolved", "resolved"]
    assert {x["groupKey"] for x in got} == {group_key(LABELS)}
    alerts = [alert for x in got for [alert] in [x["alerts"]]]
    assert {alert["fingerprint"] for alert in alerts} == {fingerprint(LABELS)}
    # the two replicas' copies differ in their times and annotations: dedupe by groupKey (or fingerprint) and
    # status, not by the whole body
    firing = [alert for alert in alerts if alert["status"] == "firing"]
    assert firing[0]["startsAt"] < firing[1]["startsAt"]
    assert firing[0]["annotations"]["summary"] != firing[1]["annotations"]["summary"]
    # each replica records the incident in the store too: the dashboard's alert history lists it once per replica
    history = influxdb_store.query("alert", ["status", "fingerprint"], 0, 2**62, where={"alertname": "LibvirtdDown"})
    assert Counter(history["status"]) == {"firing": 2, "resolved": 2}

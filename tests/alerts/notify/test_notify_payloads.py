"""What each receiver puts on the wire, read back from a real HTTP receiver on 127.0.0.1."""

from datetime import datetime, timedelta, timezone

from alerts.notify import Alert, Notification, fingerprint, notifier_for
from alerts.notify.config import ReceiverConfig
from alerts.notify.pagerduty import dedup_key
from alerts.notify.webhook import SIGNATURE_HEADER, verify_signature
from notify_conformance import T0, sample_notification

SECRET = "hmac-secret-for-tests"
ROUTING_KEY = "routingkey0123456789abcdef012345"


def test_the_fingerprint_is_stable_and_ignores_label_order():
    labels = {"alertname": "LibvirtdHung", "host": "host-a", "severity": "page"}
    reordered = dict(reversed(list(labels.items())))
    assert fingerprint(labels) == fingerprint(reordered) == Alert(labels=reordered).fingerprint
    assert len(fingerprint(labels)) == 16 and int(fingerprint(labels), 16) >= 0
    assert fingerprint(labels) != fingerprint({**labels, "host": "host-b"})
    assert fingerprint({"a": "b,c"}) != fingerprint({"a": "b", "c": ""})  # no ambiguity in the encoding


def test_a_notification_fires_while_any_alert_fires():
    firing, resolved = sample_notification("firing").alerts[0], sample_notification("resolved").alerts[0]
    other = Alert(labels={"alertname": "Other"}, status="resolved", ends_at=T0)
    assert Notification("r", "k", {}, [resolved, firing]).status == "firing"
    assert Notification("r", "k", {}, [resolved, other]).status == "resolved"


def test_the_webhook_posts_alertmanagers_version_4_shape_signed_with_hmac(http_receiver):
    config = ReceiverConfig(name="hook", type="webhook", url=http_receiver.url + "/hook", secret=SECRET)
    notifier_for(config, external_url="http://dashboard.example").send(sample_notification())
    (request,) = http_receiver.requests
    body = request.json()
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "oncall"
    assert body["groupLabels"] == {"alertname": "LibvirtdHung", "host": "host-a"}
    assert body["commonLabels"]["slo"] == "daemon" and body["externalURL"] == "http://dashboard.example"
    (alert,) = body["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert alert["startsAt"] == "2024-05-01T12:00:00Z" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["fingerprint"] == fingerprint(alert["labels"])
    assert verify_signature(SECRET, request.body, request.headers[SIGNATURE_HEADER])
    assert not verify_signature("another secret", request.body, request.headers[SIGNATURE_HEADER])
    assert not verify_signature(SECRET, request.body + b" ", request.headers[SIGNATURE_HEADER])


def test_a_webhook_without_a_secret_sends_no_signature(http_receiver):
    notifier_for(ReceiverConfig(name="hook", type="webhook", url=http_receiver.url)).send(sample_notification())
    assert SIGNATURE_HEADER not in http_receiver.requests[0].headers


def test_pagerduty_trigger_and_resolve_share_one_dedup_key(http_receiver):
    config = ReceiverConfig(name="pd", type="pagerduty", url=http_receiver.url + "/v2/enqueue",
                            routing_key=ROUTING_KEY)
    notifier = notifier_for(config)
    notifier.send(sample_notification("firing"))
    notifier_for(config).send(sample_notification("resolved"))  # a new notifier: as after an engine restart
    trigger, resolve = (r.json() for r in http_receiver.requests)
    assert http_receiver.requests[0].path == "/v2/enqueue"
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == dedup_key(sample_notification().group_key)
    assert trigger["routing_key"] == ROUTING_KEY
    payload = trigger["payload"]
    assert payload["severity"] == "critical"  # severity=page
    assert payload["source"] == "host-a"
    assert payload["summary"] == "[FIRING:1] LibvirtdHung on host-a: libvirtd on host-a answers no calls"
    assert payload["custom_details"]["firing"][0]["labels"]["slo"] == "daemon"


def test_pagerduty_dedup_keys_differ_between_groups():
    assert dedup_key('{}:{host="a"}') != dedup_key('{}:{host="b"}')


def test_slack_gets_a_readable_message_with_status_host_slo_and_summary(http_receiver):
    url = http_receiver.url + "/services/T0/B0/token"
    notifier_for(ReceiverConfig(name="slack", type="slack", url=url)).send(sample_notification())
    notifier_for(ReceiverConfig(name="slack", type="slack", url=url)).send(sample_notification("resolved"))
    firing, resolved = (r.json() for r in http_receiver.requests)
    assert firing["text"] == "FIRING: LibvirtdHung on host-a: libvirtd on host-a answers no calls"
    assert resolved["text"].startswith("RESOLVED: LibvirtdHung on host-a")
    section = firing["blocks"][1]["text"]["text"]
    assert section.splitlines() == ["FIRING: LibvirtdHung", "host: host-a", "slo: daemon", "severity: page",
                                    "libvirtd on host-a answers no calls",
                                    "the stats probe timed out 3 times in a row"]


def test_times_are_sent_in_utc_whatever_zone_they_were_given_in(http_receiver):
    local = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    alert = Alert(labels={"alertname": "X"}, starts_at=local)
    notification = Notification("oncall", "k", {}, [alert])
    notifier_for(ReceiverConfig(name="hook", type="webhook", url=http_receiver.url)).send(notification)
    assert http_receiver.requests[0].json()["alerts"][0]["startsAt"] == "2024-05-01T12:00:00Z"


def test_the_console_receiver_prints_the_headline_and_every_alert_of_a_notification():
    import io

    from alerts.notify.console import ConsoleNotifier

    stream = io.StringIO()
    ConsoleNotifier(stream=stream).send(sample_notification())
    text = stream.getvalue()
    assert text.startswith("*** FIRING: ") and "host: host-a" in text and text.endswith("\n")


def test_slack_text_is_escaped_and_a_cut_never_splits_an_escape():
    from alerts.notify.slack import slack_text

    text = "guest 'a<b>&c' *x* _y_ ü😀 " * 20
    assert slack_text(text, 10_000) == text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for limit in range(2, 200):
        cut = slack_text(text, limit)
        assert len(cut) <= limit and cut.endswith("…")
        shown = cut[:-1].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        assert text.startswith(shown)  # what Slack shows is the text's beginning, exactly
        assert "&" not in cut[:-1].replace("&lt;", "").replace("&gt;", "").replace("&amp;", "")


def _explained(forensics: str) -> Notification:
    alert = Alert(labels={"alertname": "LibvirtdSegfault", "severity": "page", "host": "hv 1"},
                  annotations={"summary": "1 libvirtd segfaults in the last 3600 s (alert at 1)",
                               "description": "libvirtd on hv 1 segfaulted in rpc-worker\n\nfirst at ...",
                               "forensics": forensics}, starts_at=T0)
    return Notification("oncall", "k", {"host": "hv 1"}, [alert])


def test_pagerduty_links_a_forensics_url_but_not_a_file_on_the_host(http_receiver):
    config = ReceiverConfig(name="pd", type="pagerduty", url=http_receiver.url, routing_key=ROUTING_KEY)
    url = "https://dash.example/forensics?host=hv+1&time=1"
    notifier_for(config).send(_explained(url))
    notifier_for(config).send(_explained("on hv 1: /var/lib/virtwatch/forensics/a.json"))
    linked, unlinked = (r.json() for r in http_receiver.requests)
    assert linked["links"] == [{"href": url, "text": "forensics bundle: LibvirtdSegfault on hv 1"}]
    assert "links" not in unlinked
    details = unlinked["payload"]["custom_details"]
    assert details["description"].startswith("libvirtd on hv 1 segfaulted in rpc-worker\n")
    assert details["firing"][0]["annotations"]["forensics"] == "on hv 1: /var/lib/virtwatch/forensics/a.json"


def test_slack_shows_a_bundle_file_as_text_without_a_button_and_the_console_unescaped():
    import io

    from alerts.notify.console import ConsoleNotifier
    from alerts.notify.slack import message_json

    notification = _explained("on hv 1: /var/lib/<x>&/a.json")
    message = message_json(notification)
    assert [block["type"] for block in message["blocks"]] == ["header", "section"]
    assert message["blocks"][1]["text"]["text"].endswith("\nforensics: on hv 1: /var/lib/&lt;x&gt;&amp;/a.json")
    stream = io.StringIO()
    ConsoleNotifier(stream=stream).send(notification)
    assert "    forensics: on hv 1: /var/lib/<x>&/a.json\n" in stream.getvalue()

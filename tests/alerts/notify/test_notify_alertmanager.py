"""The alertmanager notifier against a real Prometheus Alertmanager (Debian prometheus-alertmanager)."""

import json
import urllib.parse
import uuid
from datetime import datetime, timezone

import pytest

from alerts.notify import Alert, Notification, notifier_for
from alerts.notify.config import ReceiverConfig
from servers import http

pytestmark = pytest.mark.slow


def alerts_named(server, alertname: str, **query) -> list[dict]:
    """Return Alertmanager's alerts with this alertname (GET /api/v2/alerts)."""
    params = urllib.parse.urlencode({"filter": f'alertname="{alertname}"', **query})
    status, body = http("GET", f"{server.url}/api/v2/alerts?{params}")
    assert status == 200, body
    return json.loads(body)


def test_a_pushed_alert_fires_in_alertmanager_and_a_resolved_one_leaves_its_active_alerts(alertmanager_server):
    name = f"LibvirtdHung_{uuid.uuid4().hex[:8]}"
    labels = {"alertname": name, "host": "host-a", "severity": "page", "slo": "daemon"}
    started = datetime.now(timezone.utc)
    notifier = notifier_for(ReceiverConfig(name="am", type="alertmanager", url=alertmanager_server.url + "/"))

    firing = Alert(labels=labels, annotations={"summary": "libvirtd on host-a answers no calls"},
                   starts_at=started, generator_url="http://dashboard.example/alerts")
    notifier.send(Notification("am", "k", {"alertname": name}, [firing]))
    (shown,) = alerts_named(alertmanager_server, name)
    assert shown["labels"] == labels
    assert shown["annotations"] == {"summary": "libvirtd on host-a answers no calls"}
    assert shown["status"]["state"] in ("active", "unprocessed")  # unprocessed: not yet through its dispatcher
    assert shown["generatorURL"] == "http://dashboard.example/alerts"

    resolved = Alert(labels=labels, status="resolved", starts_at=started, ends_at=datetime.now(timezone.utc))
    notifier.send(Notification("am", "k", {"alertname": name}, [resolved]))
    assert alerts_named(alertmanager_server, name, active="true", inhibited="false", silenced="false",
                        unprocessed="false") == []

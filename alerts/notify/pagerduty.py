"""PagerDuty Events API v2: one incident per notification group, triggered and resolved under one dedup_key.

The dedup_key is the SHA-256 of the group key (as Alertmanager's PagerDuty receiver does), so the trigger and
the resolve of a group, a re-send after an engine restart, and the same group from a second engine replica all
land on the same PagerDuty incident. PagerDuty answers 202 when it accepted an event, 400 for a bad event or
routing key, 429 when rate limited (https://developer.pagerduty.com/docs/events-api-v2/overview/).

`custom_details` carries the first alert's `description` (which starts with the diagnosis's cause sentence; in a
resolve, the current figures, with what it fired with as `was`) and every alert's labels and annotations, as
they are; each alert's `forensics` URL is also one of the event's `links`. Only `summary` is cut (to
PagerDuty's 1024 characters); the whole event must stay under 512 KB.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tsdb.config_keys import url_with_path

from .config import ReceiverConfig, ReceiverType
from .model import FIRING, Notification
from .transport import Transport

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"  # PagerDuty Events API v2: the default url
SUMMARY_MAX_CHARS = 1024  # the Events API v2 limit on payload.summary
SEVERITIES = ("critical", "error", "warning", "info")  # PagerDuty's, most severe first
# Our severity label values (SRE workbook: page / ticket) and common synonyms, onto PagerDuty's.
SEVERITY_OF_LABEL = {"critical": "critical", "page": "critical", "error": "error", "warning": "warning",
                     "warn": "warning", "ticket": "warning", "info": "info"}
DEFAULT_SEVERITY = "error"  # an alert without a known severity label


def dedup_key(group_key: str) -> str:
    """Return the PagerDuty dedup_key of a notification group: hex SHA-256 of its group key."""
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()


def severity(notification: Notification) -> str:
    """Return the most severe PagerDuty severity among the notification's alerts."""
    found = [SEVERITY_OF_LABEL.get(a.labels.get("severity", "").lower(), DEFAULT_SEVERITY)
             for a in notification.alerts]
    return min(found, key=SEVERITIES.index)


def summary(notification: Notification) -> str:
    """Return a one-line summary: status, count, alert name, host and the first alert's summary annotation."""
    alerts = notification.firing or notification.resolved
    first = alerts[0]
    common = notification.common_labels()
    text = f"[{notification.status.upper()}:{len(alerts)}] {common.get('alertname', first.name)}"
    if "host" in common:
        text += f" on {common['host']}"
    if first.annotations.get("summary"):
        text += f": {first.annotations['summary']}"
    return text if len(text) <= SUMMARY_MAX_CHARS else text[:SUMMARY_MAX_CHARS - 1] + "…"


def event_json(notification: Notification, routing_key: str, external_url: str = "") -> dict[str, Any]:
    """Return the Events API v2 event for a notification: trigger while any alert fires, else resolve."""
    common = notification.common_labels()
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if notification.status == FIRING else "resolve",
        "dedup_key": dedup_key(notification.group_key),
        "payload": {
            "summary": summary(notification),
            "source": common.get("host", "virtwatch"),
            "severity": severity(notification),
            "custom_details": {
                "firing": [_details(a) for a in notification.firing],
                "resolved": [_details(a) for a in notification.resolved],
                "group_labels": dict(notification.group_labels),
            },
        },
        "client": "virtwatch",
    }
    first = (notification.firing or notification.resolved)[0]
    if first.annotations.get("description"):
        event["payload"]["custom_details"]["description"] = first.annotations["description"]
    if first.annotations.get("was_summary"):  # a resolve: what it fired with, beside the current figures
        event["payload"]["custom_details"]["was"] = first.annotations["was_summary"]
    if "alertname" in common:
        event["payload"]["class"] = common["alertname"]
    if external_url:
        event["client_url"] = external_url
    found = links(notification)
    if found:
        event["links"] = found
    return event


def links(notification: Notification) -> list[dict[str, str]]:
    """Return the events' `links`: each alert's forensics bundle that is a URL (not a file on a host), once."""
    found: dict[str, str] = {}
    for alert in notification.firing + notification.resolved:
        href = alert.annotations.get("forensics", "")
        if href.startswith(("https://", "http://")) and href not in found:
            where = f" on {alert.labels['host']}" if "host" in alert.labels else ""
            found[href] = f"forensics bundle: {alert.name}{where}"
    return [{"href": href, "text": text} for href, text in found.items()]


def _details(alert) -> dict[str, Any]:
    """Return one alert's labels and annotations for custom_details."""
    return {"labels": dict(alert.labels), "annotations": dict(alert.annotations), "fingerprint": alert.fingerprint}


class PagerDutyNotifier:
    """Send Events API v2 events to the configured URL (PagerDuty's enqueue endpoint by default)."""

    def __init__(self, config: ReceiverConfig, external_url: str = "") -> None:
        if not config.routing_key:
            raise ValueError(f"pagerduty receiver {config.name!r} has no routing_key")
        self.name = config.name
        self._url = config.url
        self._routing_key = config.routing_key
        self._external_url = external_url
        self.timeout_seconds = config.timeout_seconds  # the deadline of one attempt
        self._transport = Transport(f"pagerduty receiver {config.name!r}", config.timeout_seconds,
                                    secrets=(config.routing_key,))

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(name={self.name!r})"

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise NotifyError if it did not get through."""
        event = event_json(notification, self._routing_key, self._external_url)
        self._transport.post_json(self._url, json.dumps(event, ensure_ascii=False).encode("utf-8"))


#: a pagerduty table: `routing_key` required, url PagerDuty's own endpoint unless set (a proxy, a test server)
RECEIVER_TYPE = ReceiverType("pagerduty", build=PagerDutyNotifier, takes=("routing_key",),
                             requires=("url", "routing_key"), defaults={"url": EVENTS_URL}, show_url=url_with_path)

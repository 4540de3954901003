"""Push alerts into a Prometheus Alertmanager through its API: POST <url>/api/v2/alerts, a list of alerts.

Alertmanager then groups, silences, inhibits and routes them itself. A firing alert is sent without endsAt, so
Alertmanager keeps it active for its `resolve_timeout` (5 minutes by default) and then resolves it on its own:
the engine must re-send firing alerts more often than that, as Prometheus does every evaluation. A resolved
alert is sent with endsAt set to when it resolved, which resolves it at once.
"""

from __future__ import annotations

import json
from typing import Any

from tsdb.config_keys import url_with_path

from .config import ReceiverConfig, ReceiverType
from .model import Alert, Notification, format_time
from .transport import Transport

ALERTS_PATH = "/api/v2/alerts"


def postable_alert(alert: Alert) -> dict[str, Any]:
    """Return one alert as Alertmanager's API v2 postableAlert."""
    item: dict[str, Any] = {"labels": dict(alert.labels), "annotations": dict(alert.annotations)}
    if alert.starts_at:
        item["startsAt"] = format_time(alert.starts_at)
    if alert.ends_at:
        item["endsAt"] = format_time(alert.ends_at)
    if alert.generator_url:
        item["generatorURL"] = alert.generator_url
    return item


class AlertmanagerNotifier:
    """POST a notification's alerts to an Alertmanager's /api/v2/alerts."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.name = config.name
        self._endpoint = config.url.rstrip("/") + ALERTS_PATH
        self.timeout_seconds = config.timeout_seconds  # the deadline of one attempt
        self._transport = Transport(f"alertmanager receiver {config.name!r}", config.timeout_seconds,
                                    secret_url=config.url)

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier(name={self.name!r})"

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise NotifyError if it did not get through."""
        body = json.dumps([postable_alert(a) for a in notification.alerts], ensure_ascii=False).encode("utf-8")
        self._transport.post_json(self._endpoint, body)


def _build(config: ReceiverConfig, _external_url: str) -> AlertmanagerNotifier:
    """Build the notifier of an alertmanager receiver (Alertmanager links to itself, not to our dashboard)."""
    return AlertmanagerNotifier(config)


#: an alertmanager's table: its url (the Alertmanager's base address) is public but for userinfo and query
RECEIVER_TYPE = ReceiverType("alertmanager", build=_build, show_url=url_with_path)

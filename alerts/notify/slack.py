"""Slack incoming webhooks: a readable message with a plain-text fallback (`text`) and Block Kit blocks.

The webhook URL is the secret (whoever has it can post to the channel), so it never appears in an error.
Slack answers 200 "ok", or 400/403/404/410 with a reason such as invalid_payload or channel_is_archived
(https://api.slack.com/messaging/webhooks#handling_errors).
"""

from __future__ import annotations

import json
from typing import Any

from virtwatch.config import ReceiverConfig

from .model import Alert, Notification
from .transport import Transport

MAX_ALERT_BLOCKS = 10  # Slack allows 50 blocks per message; ten alerts are all a reader takes in
SECTION_MAX_CHARS = 3000  # Block Kit's limit on a section's text
HEADER_MAX_CHARS = 150  # Block Kit's limit on a header's text


def headline(notification: Notification) -> str:
    """Return the message's first line, e.g. "FIRING: LibvirtdDown (2 alerts) on host-a"."""
    alerts = notification.firing or notification.resolved
    common = notification.common_labels()
    name = common.get("alertname") or ", ".join(sorted({a.name for a in alerts}))
    text = f"{notification.status.upper()}: {name}"
    if len(alerts) > 1:
        text += f" ({len(alerts)} alerts)"
    if "host" in common:
        text += f" on {common['host']}"
    return text


def alert_lines(alert: Alert) -> str:
    """Return a few lines describing one alert: status, name, host, SLO, severity, summary, description."""
    lines = [f"{alert.status.upper()}: {alert.name}"]
    for label in ("host", "slo", "severity"):
        if label in alert.labels:
            lines.append(f"{label}: {alert.labels[label]}")
    for annotation in ("summary", "description"):
        if alert.annotations.get(annotation):
            lines.append(alert.annotations[annotation])
    text = "\n".join(lines)
    return text if len(text) <= SECTION_MAX_CHARS else text[:SECTION_MAX_CHARS - 1] + "…"


def message_json(notification: Notification) -> dict[str, Any]:
    """Return the incoming-webhook message for a notification: text for notifications, blocks for reading."""
    alerts = notification.firing + notification.resolved
    first = alerts[0]
    text = headline(notification)
    if first.annotations.get("summary"):
        text += f": {first.annotations['summary']}"
    header = {"type": "plain_text", "text": headline(notification)[:HEADER_MAX_CHARS]}
    blocks: list[dict[str, Any]] = [{"type": "header", "text": header}]
    for alert in alerts[:MAX_ALERT_BLOCKS]:
        blocks.append({"type": "section", "text": {"type": "plain_text", "text": alert_lines(alert)}})
    if len(alerts) > MAX_ALERT_BLOCKS:
        blocks.append({"type": "context", "elements": [
            {"type": "plain_text", "text": f"and {len(alerts) - MAX_ALERT_BLOCKS} more"}]})
    return {"text": text, "blocks": blocks}


class SlackNotifier:
    """POST a readable message to a Slack incoming webhook."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.name = config.name
        self._url = config.url
        self._transport = Transport(f"slack receiver {config.name!r}", config.timeout_seconds,
                                    secret_url=config.url)

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r})"

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise NotifyError if it did not get through."""
        body = json.dumps(message_json(notification), ensure_ascii=False).encode("utf-8")
        self._transport.post_json(self._url, body)

"""Slack incoming webhooks: a readable message with a plain-text fallback (`text`) and Block Kit blocks.

The webhook URL is the secret (whoever has it can post to the channel), so it never appears in an error.
Slack answers 200 "ok", or 400/403/404/410 with a reason such as invalid_payload or channel_is_archived
(https://api.slack.com/messaging/webhooks#handling_errors).

Host and guest names are data, never markup: every text is `plain_text` (so `*`, `_`, `~` and backquotes stay
what they are, and `emoji` is off so `:name:` stays text), the fallback `text` is sent with `mrkdwn` off, and
`&`, `<` and `>` are escaped as Slack requires of every text (https://api.slack.com/reference/surfaces/
formatting#escaping), so a name such as `<!channel>` mentions nobody. A text cut to Slack's limits keeps its
beginning, where the diagnosis's cause sentence is, and never cuts an escape in half. An alert's `forensics`
link is also a button, whose `url` Slack takes as it is.
"""

from __future__ import annotations

import json
from typing import Any

from .config import ReceiverConfig, ReceiverType
from .model import Alert, Notification
from .transport import Transport

MAX_ALERT_BLOCKS = 10  # Slack allows 50 blocks per message (an alert takes two at most); ten are all one reads
SECTION_MAX_CHARS = 3000  # Block Kit's limit on a section's text
HEADER_MAX_CHARS = 150  # Block Kit's limit on a header's text
TEXT_MAX_CHARS = 3000  # the fallback `text` (a headline and a summary): Slack itself cuts it at 40,000
BUTTON_URL_MAX_CHARS = 3000  # Block Kit's limit on a button's url
BUTTON_TEXT_MAX_CHARS = 75  # Block Kit's limit on a button's text
CONTEXT_MAX_CHARS = 3000  # Block Kit's limit on a context element's text
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Return text with `&`, `<` and `>` escaped as Slack requires, so that Slack shows it as it is."""
    return "".join(_ESCAPES.get(char, char) for char in text)


def slack_text(text: str, limit: int) -> str:
    """Return text escaped for Slack and cut to `limit` characters (ending with "…" when cut), the cut never
    inside an escape."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[:limit - 1]
    amp = cut.rfind("&", max(0, len(cut) - len("&amp;") + 1))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": slack_text(text, limit), "emoji": False}


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
    """Return a few lines describing one alert, unescaped: status, name, host, SLO, severity, summary,
    description (the diagnosis's cause first; for a resolve, the current figures), what a resolved alert was
    firing with, and where its forensics bundle is."""
    lines = [f"{alert.status.upper()}: {alert.name}"]
    for label in ("host", "slo", "severity"):
        if label in alert.labels:
            lines.append(f"{label}: {alert.labels[label]}")
    for annotation in ("summary", "description"):
        if alert.annotations.get(annotation):
            lines.append(alert.annotations[annotation])
    if alert.annotations.get("was_summary"):
        lines.append(f"was: {alert.annotations['was_summary']}")
    if alert.annotations.get("forensics"):
        lines.append(f"forensics: {alert.annotations['forensics']}")
    return "\n".join(lines)


def forensics_url(alert: Alert) -> str | None:
    """Return the alert's forensics link when it is a URL a button can open (not a file on a host)."""
    link = alert.annotations.get("forensics", "")
    return link if link.startswith(("https://", "http://")) and len(link) <= BUTTON_URL_MAX_CHARS else None


def message_json(notification: Notification) -> dict[str, Any]:
    """Return the incoming-webhook message for a notification: text for notifications, blocks for reading."""
    alerts = notification.firing + notification.resolved
    first = alerts[0]
    text = headline(notification)
    if first.annotations.get("summary"):
        text += f": {first.annotations['summary']}"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(headline(notification), HEADER_MAX_CHARS)}]
    for alert in alerts[:MAX_ALERT_BLOCKS]:
        blocks.append({"type": "section", "text": _plain(alert_lines(alert), SECTION_MAX_CHARS)})
        url = forensics_url(alert)
        if url:
            button = {"type": "button", "text": _plain("Forensics bundle", BUTTON_TEXT_MAX_CHARS), "url": url}
            blocks.append({"type": "actions", "elements": [button]})
    if len(alerts) > MAX_ALERT_BLOCKS:
        more = f"and {len(alerts) - MAX_ALERT_BLOCKS} more"
        blocks.append({"type": "context", "elements": [_plain(more, CONTEXT_MAX_CHARS)]})
    return {"text": slack_text(text, TEXT_MAX_CHARS), "mrkdwn": False, "blocks": blocks}


class SlackNotifier:
    """POST a readable message to a Slack incoming webhook."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.name = config.name
        self._url = config.url
        self.timeout_seconds = config.timeout_seconds  # the deadline of one attempt
        self._transport = Transport(f"slack receiver {config.name!r}", config.timeout_seconds,
                                    secret_url=config.url)

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r})"

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise NotifyError if it did not get through."""
        body = json.dumps(message_json(notification), ensure_ascii=False).encode("utf-8")
        self._transport.post_json(self._url, body)


def _build(config: ReceiverConfig, _external_url: str) -> SlackNotifier:
    """Build the notifier of a slack receiver."""
    return SlackNotifier(config)


#: a slack table: the url is the credential (whoever has it posts to the channel), so it is never shown
RECEIVER_TYPE = ReceiverType("slack", build=_build)

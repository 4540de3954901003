"""The generic webhook: Alertmanager's webhook JSON (version "4"), optionally signed with HMAC-SHA256.

The body is what Alertmanager's webhook receiver posts (prometheus/alertmanager notify/webhook/webhook.go), so
anything that already consumes Alertmanager webhooks consumes ours. With a `secret`, the header
`X-Virtwatch-Signature: sha256=<hex>` carries HMAC-SHA256(secret, exact body bytes); a receiver checks it
with `verify_signature` or its own constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from tsdb.config_keys import url_host_only

from .config import ReceiverConfig, ReceiverType
from .model import Alert, Notification, format_time
from .transport import Transport

VERSION = "4"
SIGNATURE_HEADER = "X-Virtwatch-Signature"
ZERO_TIME = "0001-01-01T00:00:00Z"  # what Go's zero time.Time marshals to: Alertmanager's "no end yet"


def sign(secret: str, body: bytes) -> str:
    """Return the signature header value for body: sha256=<hex HMAC-SHA256>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header_value: str) -> bool:
    """Say whether header_value is body's signature under secret (compared in constant time)."""
    return hmac.compare_digest(sign(secret, body), header_value or "")


def alert_json(alert: Alert) -> dict[str, Any]:
    """Return one alert as an element of the webhook's alerts[]."""
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": format_time(alert.starts_at) if alert.starts_at else ZERO_TIME,
        "endsAt": format_time(alert.ends_at) if alert.ends_at else ZERO_TIME,
        "generatorURL": alert.generator_url or "",
        "fingerprint": alert.fingerprint,
    }


def webhook_json(notification: Notification, external_url: str = "") -> dict[str, Any]:
    """Return the Alertmanager webhook message (version 4) for a notification."""
    return {
        "version": VERSION,
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": notification.common_labels(),
        "commonAnnotations": notification.common_annotations(),
        "externalURL": external_url,
        "alerts": [alert_json(alert) for alert in notification.alerts],
    }


class WebhookNotifier:
    """POST the webhook JSON to the configured URL, signed when the receiver has a secret."""

    def __init__(self, config: ReceiverConfig, external_url: str = "") -> None:
        self.name = config.name
        self._url = config.url
        self._secret = config.secret
        self._external_url = external_url
        self.timeout_seconds = config.timeout_seconds  # the deadline of one attempt
        self._transport = Transport(f"webhook receiver {config.name!r}", config.timeout_seconds,
                                    secrets=(config.secret,), secret_url=config.url)

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r}, signed={self._secret is not None})"

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise NotifyError if it did not get through."""
        body = json.dumps(webhook_json(notification, self._external_url), ensure_ascii=False).encode("utf-8")
        headers = {SIGNATURE_HEADER: sign(self._secret, body)} if self._secret else {}
        self._transport.post_json(self._url, body, headers)


#: a webhook's table: `secret` signs the body; its url's path may itself be a secret, so only its host is shown
RECEIVER_TYPE = ReceiverType("webhook", build=WebhookNotifier, takes=("secret",), show_url=url_host_only)

"""Notifications out of the alert engine: one receiver per module, one retry policy, a durable outbox.

The engine's side of it:

    notifiers = {r.name: notifier_for(r) for r in config.alerts.receivers}
    outbox = Outbox(config.alerts.state_dir / "outbox")
    outbox.put(Notification(receiver="oncall", group_key=..., group_labels=..., alerts=[Alert(...)]))
    failures = drain(outbox, notifiers, Backoff())     # also at start-up: what a crash left pending

Modules: `model` (Alert, Notification, fingerprint), `retry` (is_retryable, Backoff: the only place that
decides whether to try again), `errors` (NotifyError), `transport` (a POST within a deadline for the whole
request, reading a capped answer; secret-safe errors), one per receiver type (`webhook`, `alertmanager`,
`pagerduty`, `slack`), `outbox`, and `delivery` (deliver, drain: every receiver on its own thread).

Errors: every receiver's `send` raises only `NotifyError(message, retryable)`, whose message never holds a
secret. `deliver` retries retryable ones with backoff and raises the last error; `drain` reports failures,
and waits for a slow receiver no longer than its deadline (the rest of its delivery goes on in the background).
"""

from __future__ import annotations

from typing import Protocol

from virtwatch.config import ReceiverConfig

from .alertmanager import AlertmanagerNotifier
from .delivery import Failure, deliver, drain
from .errors import NotifyError
from .model import Alert, Notification, fingerprint
from .outbox import Outbox
from .pagerduty import PagerDutyNotifier
from .retry import Backoff, is_retryable
from .slack import SlackNotifier
from .webhook import WebhookNotifier

__all__ = ["Alert", "AlertmanagerNotifier", "Backoff", "Failure", "Notification", "Notifier", "NotifyError",
           "Outbox", "PagerDutyNotifier", "SlackNotifier", "WebhookNotifier", "deliver", "drain", "fingerprint",
           "is_retryable", "notifier_for"]


class Notifier(Protocol):
    """A receiver: `send` delivers one notification or raises NotifyError; its repr holds no secret.

    A receiver that talks to a network also has `timeout_seconds`, the deadline of one attempt: `drain` waits
    that long for it.
    """

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise NotifyError if it did not get through."""


def notifier_for(receiver: ReceiverConfig, external_url: str = "") -> Notifier:
    """Build the notifier for one configured receiver; external_url (the dashboard) goes where a type has room."""
    if receiver.type == "webhook":
        return WebhookNotifier(receiver, external_url)
    if receiver.type == "alertmanager":
        return AlertmanagerNotifier(receiver)
    if receiver.type == "pagerduty":
        return PagerDutyNotifier(receiver, external_url)
    if receiver.type == "slack":
        return SlackNotifier(receiver)
    raise ValueError(f"receiver {receiver.name!r}: unknown type {receiver.type!r}")

"""Notifications out of the alert engine: one receiver per module, each with its config type beside it, a durable
outbox, delivery with tsdb.retry's backoff.

The engine's side of it:

    notifiers = {r.name: notifier_for(r) for r in config.alerts.receivers}
    outbox = Outbox(config.alerts.state_dir / "outbox")
    outbox.put(Notification(receiver="oncall", group_key=..., group_labels=..., alerts=[Alert(...)]))
    failures = drain(outbox, notifiers, NotifyBackoff())   # also at start-up: what a crash left pending

Modules: `model` (Alert, Notification, fingerprint), `errors` (NotifyError), `transport` (a POST within a deadline
for the whole request, reading a capped answer; secret-safe errors), `config` (ReceiverConfig, ReceiverType), one
per receiver type (`webhook`, `alertmanager`, `pagerduty`, `slack`, each with its RECEIVER_TYPE), `receivers`
(the types by name: notifier_for, read_receivers), `outbox`, and `delivery` (deliver, drain: every receiver on
its own thread; NotifyBackoff). Whether a failure is worth another try, and how long to wait, is tsdb.retry's.

Errors: every receiver's `send` raises only `NotifyError(message, retryable)`, whose message never holds a
secret. `deliver` retries retryable ones with backoff and raises the last error; `drain` reports failures,
and waits for a slow receiver no longer than its deadline (the rest of its delivery goes on in the background).
"""

from __future__ import annotations

from typing import Protocol

from tsdb.retry import is_retryable

from .alertmanager import AlertmanagerNotifier
from .config import ReceiverConfig, ReceiverType
from .delivery import Failure, NotifyBackoff, deliver, drain
from .errors import NotifyError
from .model import Alert, Notification, fingerprint
from .outbox import Outbox
from .pagerduty import PagerDutyNotifier
from .receivers import RECEIVER_TYPES, notifier_for, read_receivers
from .slack import SlackNotifier
from .webhook import WebhookNotifier

Backoff = NotifyBackoff  # the name the engine and its tests know: tsdb.retry.Backoff with the notifiers' defaults

__all__ = ["Alert", "AlertmanagerNotifier", "Backoff", "Failure", "Notification", "Notifier", "NotifyBackoff",
           "NotifyError", "Outbox", "PagerDutyNotifier", "RECEIVER_TYPES", "ReceiverConfig", "ReceiverType",
           "SlackNotifier", "WebhookNotifier", "deliver", "drain", "fingerprint", "is_retryable", "notifier_for",
           "read_receivers"]


class Notifier(Protocol):
    """A receiver: `send` delivers one notification or raises NotifyError; its repr holds no secret.

    A receiver that talks to a network also has `timeout_seconds`, the deadline of one attempt: `drain` waits
    that long for it.
    """

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise NotifyError if it did not get through."""

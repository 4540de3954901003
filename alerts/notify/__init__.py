"""Notifications out of the alert engine: one receiver per module, one retry policy, a durable outbox.

The engine's side of it:

    notifiers = {r.name: notifier_for(r) for r in config.alerts.receivers}
    outbox = Outbox(config.alerts.state_dir / "outbox")
    outbox.put(Notification(receiver="oncall", group_key=..., group_labels=..., alerts=[Alert(...)]))
    failures = drain(outbox, notifiers, Backoff())     # also at start-up: what a crash left pending

Modules: `model` (Alert, Notification, fingerprint), `retry` (is_retryable, Backoff: the only place that
decides whether to try again), `errors` (NotifyError), `transport` (urllib3 POST, secret-safe errors), one per
receiver type (`webhook`, `alertmanager`, `pagerduty`, `slack`), and `outbox`.

Errors: every receiver's `send` raises only `NotifyError(message, retryable)`, whose message never holds a
secret. `deliver` retries retryable ones with backoff and raises the last error; `drain` reports failures.
"""

from __future__ import annotations

import logging
from typing import Protocol

from virtwatch.config import ReceiverConfig

from .alertmanager import AlertmanagerNotifier
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

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """A receiver: `send` delivers one notification or raises NotifyError; its repr holds no secret."""

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


def deliver(notifier: Notifier, notification: Notification, backoff: Backoff) -> None:
    """Send until it gets through; retry retryable failures up to backoff.max_attempts, else raise the last."""
    for attempt in range(backoff.max_attempts):
        try:
            notifier.send(notification)
            return
        except NotifyError as err:
            last_attempt = attempt + 1 >= backoff.max_attempts
            if not err.retryable or last_attempt:
                raise
            seconds = backoff.delay(attempt)
            log.warning("%s (attempt %d of %d; next in %.1f s)", err.message, attempt + 1,
                        backoff.max_attempts, seconds)
            backoff.sleep(seconds)


class Failure:
    """A notification `drain` could not deliver: its outbox id, receiver, error, and whether it stays pending."""

    def __init__(self, outbox_id: str, receiver: str, error: NotifyError, kept: bool) -> None:
        self.outbox_id, self.receiver, self.error, self.kept = outbox_id, receiver, error, kept

    def __repr__(self) -> str:
        return f"Failure({self.outbox_id!r}, {self.receiver!r}, {self.error!r}, kept={self.kept})"


def drain(outbox: Outbox, notifiers: dict[str, Notifier], backoff: Backoff) -> list[Failure]:
    """Deliver everything pending in the outbox, oldest first; return what failed.

    A delivered notification leaves the outbox. So does one that failed for good (a non-retryable error, or a
    receiver no longer configured): it is logged as an error and returned. One that still failed after every
    retry stays pending for the next drain, so a receiver outage delays a page but never loses it; so do all
    later notifications for that receiver, untried, so that a receiver never gets a group's resolve before its
    trigger.
    """
    failures = []
    held: set[str] = set()  # receivers that kept a notification this round: later ones wait behind it
    for outbox_id, notification in outbox.pending():
        if notification.receiver in held:
            continue
        notifier = notifiers.get(notification.receiver)
        if notifier is None:
            error = NotifyError(f"receiver {notification.receiver!r} is not configured; notification dropped",
                                retryable=False)
        else:
            try:
                deliver(notifier, notification, backoff)
                outbox.done(outbox_id)
                continue
            except NotifyError as err:
                error = err
        if error.retryable:
            held.add(notification.receiver)
            log.warning("%s; kept in the outbox as %s for the next round", error.message, outbox_id)
        else:
            log.error("%s; not retried, removed from the outbox (%s)", error.message, outbox_id)
            outbox.done(outbox_id)
        failures.append(Failure(outbox_id, notification.receiver, error, kept=error.retryable))
    return failures

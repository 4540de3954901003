"""Delivery: send one notification, retrying what may pass (`deliver`); empty the outbox to every receiver at once
(`drain`).

`drain` gives each receiver with pending notifications a thread of its own, as Alertmanager's FanoutStage does,
so a receiver that drips, hangs or keeps failing delays no other receiver's page. It waits for them at most
`wait_seconds`: by default the longest deadline of one attempt among them (their `timeout_seconds`), so a receiver
holds an evaluation round no longer than that. A receiver still being delivered to when the wait ends keeps its
thread, which ends on its own (every attempt is cut at its deadline, and there are backoff.max_attempts of them);
its notification stays in the outbox and is reported as a kept Failure, and the receiver stays claimed in the
outbox until that thread ends, so no later drain sends to it at the same time. What such a thread finds out after
its drain returned is logged, not returned.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tsdb.retry import Backoff

from .errors import NotifyError
from .model import Notification
from .outbox import Outbox

if TYPE_CHECKING:
    from . import Notifier

log = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS = 10.0  # for a notifier that declares no timeout_seconds: the receivers' default deadline


class NotifyBackoff(Backoff):
    """tsdb.retry.Backoff with the notifiers' defaults: 5 attempts, waits from 1 s doubling up to 60 s, full
    jitter (replicas paging through the same outage spread out)."""

    def __init__(self, base_seconds: float = 1.0, max_seconds: float = 60.0, max_attempts: int = 5, *,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        super().__init__(base_seconds=base_seconds, max_seconds=max_seconds, max_attempts=max_attempts,
                         jitter="full", sleep=sleep, rng=rng)


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


def drain(outbox: Outbox, notifiers: dict[str, Notifier], backoff: Backoff,
          wait_seconds: float | None = None) -> list[Failure]:
    """Deliver everything pending in the outbox, each receiver on its own thread and oldest first; return what
    failed or is still under way, oldest first.

    A delivered notification leaves the outbox. So does one that failed for good (a non-retryable error, or a
    receiver no longer configured): it is logged as an error and returned. One that still failed after every
    retry stays pending for the next drain, so a receiver outage delays a page but never loses it; so do all
    later notifications for that receiver, untried, so that a receiver never gets a group's resolve before its
    trigger. wait_seconds bounds how long this call waits for the receivers (None: the longest of their
    deadlines; math.inf: until every delivery has ended).
    """
    failures: list[Failure] = []
    queues: dict[str, list[tuple[str, Notification]]] = {}
    for outbox_id, notification in outbox.pending():
        if notification.receiver in notifiers:
            queues.setdefault(notification.receiver, []).append((outbox_id, notification))
            continue
        error = NotifyError(f"receiver {notification.receiver!r} is not configured; notification dropped",
                            retryable=False)
        log.error("%s; not retried, removed from the outbox (%s)", error.message, outbox_id)
        outbox.done(outbox_id)
        failures.append(Failure(outbox_id, notification.receiver, error, kept=False))

    started: list[_Delivery] = []
    for receiver, items in queues.items():
        if not outbox.claim(receiver):
            error = NotifyError(f"receiver {receiver!r}: a delivery begun by an earlier drain is still under way; "
                                "the notification waits in the outbox", retryable=True)
            failures.append(Failure(items[0][0], receiver, error, kept=True))
            continue
        delivery = _Delivery(outbox, receiver, notifiers[receiver], items, backoff)
        try:
            delivery.thread.start()
        except RuntimeError as err:  # no thread to be had: nothing was sent, everything stays pending
            outbox.release(receiver)
            failures.append(Failure(items[0][0], receiver, NotifyError(
                f"receiver {receiver!r}: could not start its delivery ({err})", retryable=True), kept=True))
            continue
        started.append(delivery)

    if wait_seconds is None:
        wait_seconds = max((getattr(d.notifier, "timeout_seconds", DEFAULT_WAIT_SECONDS) for d in started),
                           default=0.0)
    ends = time.monotonic() + wait_seconds
    for delivery in started:
        delivery.thread.join(None if math.isinf(wait_seconds) else max(0.0, ends - time.monotonic()))
    for delivery in started:
        if delivery.thread.is_alive():
            failures.append(delivery.overran(wait_seconds))
        else:
            failures.extend(delivery.failures)
    return sorted(failures, key=lambda failure: failure.outbox_id)


class _Delivery:
    """One receiver's pending notifications, delivered in order on a thread of its own; releases the claim."""

    def __init__(self, outbox: Outbox, receiver: str, notifier: Notifier, items: list[tuple[str, Notification]],
                 backoff: Backoff) -> None:
        self.outbox, self.receiver, self.notifier, self.items, self.backoff = outbox, receiver, notifier, items, backoff
        self.failures: list[Failure] = []
        self.current = items[0][0]  # the outbox id being delivered
        self.thread = threading.Thread(target=self._run, name=f"virtwatch-notify-{receiver}", daemon=True)

    def _run(self) -> None:
        try:
            for outbox_id, notification in self.items:
                self.current = outbox_id
                if not self._one(outbox_id, notification):
                    return
        except Exception:  # the outbox itself failed (a full disk): what was not done() is sent again next round
            log.exception("delivery to receiver %r stopped at %s", self.receiver, self.current)
        finally:
            self.outbox.release(self.receiver)

    def _one(self, outbox_id: str, notification: Notification) -> bool:
        """Deliver one notification; return whether the later ones may follow it."""
        try:
            deliver(self.notifier, notification, self.backoff)
        except NotifyError as err:
            error = err
        except Exception as err:  # a fault in a receiver's own code: keep the page rather than lose it
            log.error("receiver %r failed unexpectedly on %s", self.receiver, outbox_id, exc_info=True)
            error = NotifyError(f"receiver {self.receiver!r} failed unexpectedly ({type(err).__name__})",
                                retryable=True)
        else:
            self.outbox.done(outbox_id)
            return True
        if error.retryable:
            log.warning("%s; kept in the outbox as %s for the next round", error.message, outbox_id)
            self.failures.append(Failure(outbox_id, self.receiver, error, kept=True))
            return False
        log.error("%s; not retried, removed from the outbox (%s)", error.message, outbox_id)
        self.outbox.done(outbox_id)
        self.failures.append(Failure(outbox_id, self.receiver, error, kept=False))
        return True

    def overran(self, wait_seconds: float) -> Failure:
        """Return the kept Failure of a delivery still under way when its drain stopped waiting; log it."""
        error = NotifyError(f"receiver {self.receiver!r}: not delivered within the {wait_seconds:g} s deadline; "
                            "still being tried in the background, the notification stays in the outbox",
                            retryable=True)
        if wait_seconds > 0:  # a drain that waits 0 s only starts the deliveries: nothing overran
            log.warning("%s (%s)", error.message, self.current)
        return Failure(self.current, self.receiver, error, kept=True)

"""What every receiver must do, written once and run for each: its errors and reprs never show its secret.

A receiver fails three ways: nothing listens (refused), nothing answers in time (timeout) and the far end
rejects the request and echoes it back, headers and body, in the error answer. In each case the error's
message, repr and whole formatted traceback (what `log.exception` prints), the notifier's repr and everything
`deliver` logs while retrying must hold none of the secret's fragments.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime, timezone

import pytest

from alerts.notify import Alert, Backoff, Notification, NotifyError, deliver, notifier_for
from receivers import TIMEOUT, HTTPReceiver
from servers import free_port

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def sample_notification(status: str = "firing", receiver: str = "oncall") -> Notification:
    """Return a one-alert notification about a hung libvirtd on host-a."""
    alert = Alert(labels={"alertname": "LibvirtdHung", "severity": "page", "host": "host-a", "slo": "daemon"},
                  annotations={"summary": "libvirtd on host-a answers no calls",
                               "description": "the stats probe timed out 3 times in a row"},
                  status=status, starts_at=T0, ends_at=T0.replace(hour=13) if status == "resolved" else None,
                  generator_url="http://dashboard.example/alerts")
    return Notification(receiver=receiver, group_key='{}:{alertname="LibvirtdHung",host="host-a"}',
                        group_labels={"alertname": "LibvirtdHung", "host": "host-a"}, alerts=[alert])


def no_sleep_backoff(max_attempts: int = 3) -> Backoff:
    """Return a backoff that never really sleeps."""
    return Backoff(base_seconds=0.01, max_seconds=0.01, max_attempts=max_attempts, sleep=lambda seconds: None)


def _all_text(notifier, error: NotifyError) -> str:
    """Return every string a log line or a debugger could show about a failure."""
    return "\n".join([str(error), repr(error), repr(notifier),
                      "".join(traceback.format_exception(type(error), error, error.__traceback__))])


def _failure(notifier, notification) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        notifier.send(notification)
    return caught.value


def assert_secret_never_leaks(make_config, fragments: list[str], caplog) -> None:
    """Check a receiver type's failures against fragments of its secret.

    make_config(base_url) returns the receiver's ReceiverConfig pointing below base_url (http://127.0.0.1:port).
    """
    notification = sample_notification()
    failures = []

    refused = notifier_for(make_config(f"http://127.0.0.1:{free_port()}"))
    failures.append((refused, _failure(refused, notification)))

    receiver = HTTPReceiver(free_port())
    receiver.start()
    try:
        receiver.echo = True
        receiver.script(400, TIMEOUT, 503, 503)
        notifier = notifier_for(make_config(receiver.url))
        failures.append((notifier, _failure(notifier, notification)))  # 400 echoing the request
        failures.append((notifier, _failure(notifier, notification)))  # timeout
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(NotifyError) as caught:
                deliver(notifier, notification, no_sleep_backoff(max_attempts=2))
        failures.append((notifier, caught.value))
        echoed = b"".join(r.body for r in receiver.requests).decode()
    finally:
        receiver.stop()

    assert [e.retryable for _, e in failures] == [True, False, True, True]
    texts = [_all_text(n, e) for n, e in failures] + [caplog.text]
    for fragment in fragments:
        for text in texts:
            assert fragment not in text, f"secret fragment {fragment!r} leaked into: {text}"
    return echoed

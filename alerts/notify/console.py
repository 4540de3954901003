"""A receiver that prints notifications to a stream (the console of `virtwatch demo`), readable at a glance."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from .model import Notification
from .slack import alert_lines, headline


def render(notification: Notification) -> str:
    """Return a notification as a few indented lines: the headline, then each alert."""
    lines = [f"*** {headline(notification)}"]
    for alert in notification.firing + notification.resolved:
        lines += ["    " + line for line in alert_lines(alert).splitlines()]
    return "\n".join(lines)


class ConsoleNotifier:
    """Print each notification to `stream` (stdout by default); never fails."""

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ConsoleNotifier(name={self.name!r})"

    def send(self, notification: Notification) -> None:
        """Print one notification."""
        stream = self._stream or sys.stdout
        with self._lock:
            print(render(notification), file=stream, flush=True)

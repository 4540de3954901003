"""The one error a receiver raises: `NotifyError(message, retryable)`.

The message names the receiver and what went wrong and is safe to log: it never holds a secret (a Slack URL,
a routing key, an HMAC secret, a token in a URL), because receivers build it from parts they know to be safe
and scrub anything the far end echoed back. `status_code` is the HTTP status, None when nothing answered.
"""

from __future__ import annotations


class NotifyError(Exception):
    """A notification that did not get through; `retryable` says whether sending it again may work."""

    def __init__(self, message: str, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"NotifyError({self.message!r}, retryable={self.retryable})"
